"""Times as people read them: exact epoch text, local ISO times, local days and months."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pandas as pd

from collector.query.readers import QueryError

NS = 10**9
DAY_NS = 86400 * NS


def epoch_text(time_ns: pd.Series) -> pd.Series:
    """Unix seconds as exact decimal text: "1700000000" or "1700000000.25"."""
    ns = time_ns.astype("int64")
    whole = (ns // NS).astype(str)
    frac = (ns % NS)
    has = frac != 0
    out = whole.copy()
    if has.any():
        out[has] = whole[has] + "." + frac[has].map(lambda v: f"{v:09d}".rstrip("0"))
    return out


def local_text(time_ns: pd.Series, tz: ZoneInfo) -> pd.Series:
    """ISO 8601 local time with its UTC offset, so a repeated hour at DST is never ambiguous."""
    local = pd.to_datetime(time_ns.astype("int64"), utc=True).dt.tz_convert(tz)
    text = local.dt.strftime("%Y-%m-%dT%H:%M:%S%z")
    return text.str[:-2] + ":" + text.str[-2:]


def period_start(time_ns: pd.Series, tz: ZoneInfo, period: str) -> pd.Series:
    """Local midnight (day) or local first-of-month midnight, as UTC ns."""
    local = pd.to_datetime(time_ns.astype("int64"), utc=True).dt.tz_convert(tz)
    naive = local.dt.tz_localize(None)
    start = naive.dt.normalize() if period == "day" else naive.dt.to_period("M").dt.start_time
    aware = start.dt.tz_localize(tz, ambiguous=True, nonexistent="shift_forward")
    return aware.dt.tz_convert("UTC").dt.as_unit("ns").astype("int64")


def parse_when(text: str, tz: ZoneInfo) -> int:
    """A date or date-time; without an offset it is local time in `tz`."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise QueryError(f"not a date or time: {text!r} (use 2026-03-01 or 2026-03-01T06:00)") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return int(value.timestamp()) * NS + value.microsecond * 1000
