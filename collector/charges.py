"""A charge as one source observed it (`Interval`), what a source's extractor is made of, and
the `Tariff` a charge is priced by.

The sessions job (`collector/sessions/`) merges and joins the intervals every registered
source extracts from its stored points; each source's extractor lives in its package
(`sessions.py`) and is reached through the registry. Nothing here names a source.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

# A sample counts towards charging time only up to this long after the previous one, so a
# hole in the data is not booked as charging.
MAX_SAMPLE_GAP_NS = 300 * 10**9


@dataclass
class Interval:
    """One observed charge, from one source, before merging and joining.

    `profile` holds (time_ns, cumulative wall Wh, cumulative grid Wh or None) samples, so a
    time-of-use tariff prices each part of the energy at its own time.
    """

    source: str
    start_ns: int
    end_ns: int
    charger: str | None = None        # wallbox identity, e.g. "goe:012345"
    vehicle: str | None = None        # vehicle identity, e.g. "ovms:IONIQ1"
    start_seen: bool = True           # the transition into the session was observed
    end_seen: bool = True             # the transition out of it was observed
    energy_wh: float | None = None
    solar_wh: float | None = None
    grid_wh: float | None = None
    battery_wh: float | None = None
    solar_pct: float | None = None    # when only a share is known (evcc)
    charge_s: float | None = None
    soc_start: float | None = None
    soc_end: float | None = None
    vehicle_energy_wh: float | None = None
    vehicle_grid_wh: float | None = None  # the vehicle's estimate of energy from the wall
    odometer_km: float | None = None
    card: str | None = None           # what started it: an RFID card's name, evcc's identifier
    meter_start_wh: float | None = None   # the charger's lifetime meter at the start
    meter_end_wh: float | None = None     # ... and at the end
    meter: str | None = None          # which meter, e.g. "goe:012345 eto"
    parts: int = 1
    sources: frozenset[str] = frozenset()
    profile: list[tuple[int, float, float | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.sources:
            self.sources = frozenset({self.source})

    @property
    def complete(self) -> bool:
        return self.start_seen and self.end_seen


class PointLike(Protocol):
    """A stored point as the extractors read it (read only)."""

    @property
    def time_ns(self) -> int: ...

    @property
    def tags(self) -> Mapping[str, str]: ...

    @property
    def fields(self) -> Mapping[str, Any]: ...


def by_tag(points: Iterable[PointLike], tag: str) -> dict[str, list[PointLike]]:
    """The points of each device (the value of `tag`), in the order read: an extractor's
    intervals are per charger, EVSE or vehicle."""
    out: dict[str, list[PointLike]] = {}
    for p in points:
        out.setdefault(p.tags.get(tag, ""), []).append(p)
    return out


def first(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


def num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return None


class CounterSum:
    """Sum of increments of a counter that may reset to zero (go-e `wh` at each connection).

    A drop is a reset: the new value is the energy since the reset.
    """

    def __init__(self, baseline: float | None = 0.0) -> None:
        self.last = baseline
        self.total: float | None = None

    def add(self, value: float | None) -> None:
        if value is None:
            return
        if self.last is None:
            self.last = value
            self.total = self.total or 0.0
            return
        step = value - self.last if value >= self.last else value
        self.total = (self.total or 0.0) + step
        self.last = value


# measurement, start_ns, end_ns -> its stored points in that range (any order)
Reader = Callable[[str, int, int], Iterable[PointLike]]


class Tariff(Protocol):
    @property
    def name(self) -> str: ...

    def price_at(self, t_ns: int) -> float | None:
        """Price per kWh at `t_ns`, or None when unknown."""

    def source_at(self, t_ns: int) -> str:
        """Where the price at `t_ns` comes from: fixed, time-of-use, dynamic or flat."""


# (reader, start_ns, end_ns, instance or None: all, fallback price) -> the grid rates a source
# published for that window, as a Tariff (`[sessions] tariff = "<source name>"`)
PublishedRates = Callable[[Reader, int, int, str | None, float | None], Tariff]


@dataclass(frozen=True)
class ChargeExtractor:
    """What a source contributes to the charging sessions."""

    # (reader, start_ns, end_ns) -> the charges it saw in that window: (wallbox side, vehicle side)
    intervals: Callable[[Reader, int, int], tuple[list[Interval], list[Interval]]]
    # the measurements its charges are seen in (the sessions job starts at the earliest point)
    measurements: tuple[str, ...]
    # measurement -> (fields the extractor reads, those of them that are booleans): read by
    # SQLite instead of decoding each point, so a run over days of 10 s samples stays cheap
    fields: Mapping[str, tuple[tuple[str, ...], frozenset[str]]] = field(default_factory=dict)
