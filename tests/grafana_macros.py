"""Expand a dashboard's InfluxQL the way Grafana does before InfluxDB sees it.

Two stages, as in Grafana 10/11 with the InfluxDB datasource in proxy mode:
1. the frontend's template service replaces dashboard variables: `$var`, `${var}`,
   `${var:format}`, `[[var]]`; a multi-value selection or All becomes `(a|b)` in the `regex`
   format, each value regex-escaped (`/` too, which is why tz() takes `${timezone:raw}`);
2. the backend (pkg/tsdb/influxdb/influxql) replaces `$timeFilter` with
   `time >= <from>ms and time <= <to>ms`, then `$interval`, `$__interval_ms`, `$__interval`
   with the interval Grafana computed from the time range and the panel's width.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)(?::(\w+))?\]\]")
_REGEX_SPECIAL = re.compile(r"[\\^$*+?.()|\[\]{}/]")

# Grafana's rangeutil.roundInterval: (upper bound in ms, interval in ms)
_ROUND = [(15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1_500, 1_000),
          (3_500, 2_000), (7_500, 5_000), (12_500, 10_000), (17_500, 15_000), (25_000, 20_000),
          (45_000, 30_000), (90_000, 60_000), (210_000, 120_000), (450_000, 300_000),
          (750_000, 600_000), (1_050_000, 900_000), (1_500_000, 1_200_000), (2_700_000, 1_800_000),
          (5_400_000, 3_600_000), (9_000_000, 7_200_000), (16_200_000, 10_800_000),
          (32_400_000, 21_600_000), (86_400_000, 43_200_000), (604_800_000, 86_400_000),
          (1_814_400_000, 604_800_000)]


def regex_escape(value: str) -> str:
    return _REGEX_SPECIAL.sub(lambda m: "\\" + m.group(0), value)


def format_value(values: list[str], fmt: str | None, *, multi: bool) -> str:
    """One variable's text. Without a format, the InfluxDB datasource's own escaping applies:
    a single-value variable is regex-escaped unless it is a number; a multi-value one as `regex`."""
    if fmt in ("raw", "csv"):
        return ",".join(values)
    if fmt is None and not multi:
        return values[0] if _is_number(values[0]) else regex_escape(values[0])
    if fmt in ("regex", None):
        escaped = [regex_escape(v) for v in values]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
    raise ValueError(f"format {fmt!r} not emulated")


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def round_interval_ms(ms: float) -> int:
    for bound, interval in _ROUND:
        if ms <= bound:
            return interval
    return 2_592_000_000


def format_interval(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return int(self.end.timestamp() * 1000)

    def interval_ms(self, max_data_points: int = 1000) -> int:
        return round_interval_ms((self.end_ms - self.start_ms) / max_data_points)


def relative_range(expression: str, now: datetime, tz: str) -> TimeRange:
    """`now-24h`, `now/d` (today so far), `now/M` (this month), `now/y` (this year), or a panel's `30d`."""
    local = now.astimezone(ZoneInfo(tz))
    if expression == "now/d":
        return TimeRange(local.replace(hour=0, minute=0, second=0, microsecond=0), now)
    if expression == "now/M":
        return TimeRange(local.replace(day=1, hour=0, minute=0, second=0, microsecond=0), now)
    if expression == "now/y":
        return TimeRange(local.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0), now)
    match = re.fullmatch(r"(?:now-)?(\d+)([smhdwMy])", expression)
    if not match:
        raise ValueError(f"time expression {expression!r} not emulated")
    amount, unit = int(match.group(1)), match.group(2)
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2_592_000, "y": 31_536_000}[unit]
    return TimeRange(now - timedelta(seconds=amount * seconds), now)


def expand(text: str, variables: dict[str, list[str]], time_range: TimeRange, *,
           multi: frozenset[str] = frozenset(), max_data_points: int = 1000) -> str:
    """The query InfluxDB receives. Unknown `$names` are left alone (Grafana leaves them too)."""

    def replace(match: re.Match) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        fmt = match.group(3) or match.group(5)
        if name not in variables:
            return match.group(0)
        return format_value(variables[name], fmt, multi=name in multi)

    text = _VARIABLE.sub(replace, text)
    interval = time_range.interval_ms(max_data_points)
    text = text.replace("$timeFilter", f"time >= {time_range.start_ms}ms and time <= {time_range.end_ms}ms")
    text = text.replace("$interval", format_interval(interval))
    text = text.replace("$__interval_ms", str(interval))
    return text.replace("$__interval", format_interval(interval))
