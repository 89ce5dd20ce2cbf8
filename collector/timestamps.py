"""Source timestamps as exact integer nanoseconds.

A point's identity includes its time, so the same text must always give the same integer:
no float arithmetic, all nine fractional digits kept.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

_RFC3339 = re.compile(
    r"^\s*(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9})\d*)?"
    r"\s*(Z|z|[+-]\d{2}:?\d{2})?\s*$")

NS = 1_000_000_000


def parse_rfc3339_ns(text: Any) -> int | None:
    """Unix ns from RFC 3339 with 0..9 fractional digits and `Z` or an offset; None if not one.

    A time without an offset is taken as UTC (the APIs we read write UTC). Year 1 is Go's zero
    time, which evcc sends for "unset": None.
    """
    if not isinstance(text, str):
        return None
    match = _RFC3339.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    if year <= 1:
        return None
    fraction, zone = match.group(7) or "", match.group(8)
    try:
        tz = UTC
        if zone and zone not in ("Z", "z"):
            sign = -1 if zone[0] == "-" else 1
            digits = zone[1:].replace(":", "")
            tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
        moment = datetime(year, month, day, hour, minute, second, tzinfo=tz)
    except ValueError:
        return None
    return int(moment.timestamp()) * NS + (int(fraction.ljust(9, "0")) if fraction else 0)


def format_rfc3339_ns(time_ns: int) -> str:
    """RFC 3339 in UTC with nanoseconds, the inverse of `parse_rfc3339_ns`."""
    seconds, nanos = divmod(time_ns, NS)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{nanos:09d}Z"
