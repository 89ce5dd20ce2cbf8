"""Local days and months as UTC instants: where a period starts, how long it is, its label.

A rollup's day is a day on the wall clock of the configured time zone, so it starts at local
midnight and lasts 23 or 25 hours on the days the clocks change. Months start at local
midnight of the 1st. Everything here works in integer nanoseconds since the epoch (UTC).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

NS = 10**9


@dataclass(frozen=True, order=True)
class Period:
    """One local day or month: [start_ns, end_ns) and its label (2026-03-29 or 2026-03)."""

    start_ns: int
    end_ns: int
    label: str

    @property
    def hours(self) -> float:
        return (self.end_ns - self.start_ns) / (3600 * NS)


def midnight_ns(day: date, tz: ZoneInfo) -> int:
    """Local midnight of `day` in `tz` as UTC ns. Where the clocks jump over midnight, the
    day starts at the first local time that exists (zoneinfo resolves a missing time with
    the offset before the jump, which lands after it)."""
    return int(datetime.combine(day, time(0), tzinfo=tz).timestamp()) * NS


def local_date(time_ns: int, tz: ZoneInfo) -> date:
    return datetime.fromtimestamp(time_ns // NS, UTC).astimezone(tz).date()


def day(d: date, tz: ZoneInfo) -> Period:
    return Period(midnight_ns(d, tz), midnight_ns(d + timedelta(days=1), tz), d.isoformat())


def month_start(d: date) -> date:
    return d.replace(day=1)


def next_month(d: date) -> date:
    return (d.replace(day=28) + timedelta(days=4)).replace(day=1)


def month(d: date, tz: ZoneInfo) -> Period:
    first = month_start(d)
    return Period(midnight_ns(first, tz), midnight_ns(next_month(first), tz), f"{first:%Y-%m}")


def days(start_ns: int, end_ns: int, tz: ZoneInfo) -> list[Period]:
    """The local days that overlap [start_ns, end_ns), in order."""
    if end_ns <= start_ns:
        return []
    out = []
    d = local_date(start_ns, tz)
    last = local_date(end_ns - 1, tz)
    while d <= last:
        out.append(day(d, tz))
        d += timedelta(days=1)
    return out


def months_of(periods: Iterator[Period] | list[Period], tz: ZoneInfo) -> list[Period]:
    """The months the given days fall in, in order, each once."""
    seen: dict[str, Period] = {}
    for p in periods:
        m = month(date.fromisoformat(p.label[:10]), tz)
        seen.setdefault(m.label, m)
    return sorted(seen.values())
