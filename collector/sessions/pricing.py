"""What a session's energy cost: a fixed or flat price, a time-of-use table, or a source's
published grid rates (a `Tariff` its package declares, e.g. evcc's).

Energy is priced where it was drawn: a session's cumulative energy profile is cut into slices
of at most `SLICE_NS` (linear between samples) and each slice takes the price at its middle.
Solar and home-battery energy cost nothing; `grid_only_cost` prices all of it as grid energy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from collector.charges import Tariff

SLICE_NS = 900 * 10**9


@dataclass(frozen=True)
class FixedTariff:
    """One price for every kWh: the driver's own contract price (`fixed`), or a published flat
    price per kWh an employer reimburses (`flat`), which prices the same way."""

    price: float
    name: str = "fixed"

    def price_at(self, t_ns: int) -> float | None:
        return self.price

    def source_at(self, t_ns: int) -> str:
        return self.name


@dataclass(frozen=True)
class TouRule:
    start: time
    end: time             # exclusive; end <= start wraps past midnight
    price: float
    weekdays: frozenset[int] = frozenset(range(7))  # Monday = 0

    def matches(self, local: datetime) -> bool:
        t = local.time()
        if self.start < self.end:
            inside, day = self.start <= t < self.end, local.weekday()
        else:  # wraps midnight: after midnight it belongs to the previous day's rule
            inside = t >= self.start or t < self.end
            day = local.weekday() if t >= self.start else (local.weekday() - 1) % 7
        return inside and day in self.weekdays


@dataclass(frozen=True)
class TouTariff:
    rules: tuple[TouRule, ...]
    tz: ZoneInfo
    fallback: float | None = None
    name: str = "tou"

    def _rule(self, t_ns: int) -> TouRule | None:
        local = datetime.fromtimestamp(t_ns / 1e9, tz=UTC).astimezone(self.tz)
        return next((rule for rule in self.rules if rule.matches(local)), None)

    def price_at(self, t_ns: int) -> float | None:
        rule = self._rule(t_ns)
        return rule.price if rule is not None else self.fallback

    def source_at(self, t_ns: int) -> str:
        return "time-of-use" if self._rule(t_ns) is not None else "fixed"


@dataclass(frozen=True)
class Cost:
    cost: float
    grid_only_cost: float
    sources: frozenset[str] = frozenset()   # where the prices of the slices came from

    @property
    def source(self) -> str:
        """`dynamic`, or `dynamic+fixed` when the fallback price filled some slices."""
        return "+".join(sorted(self.sources, key=lambda s: (s == "fixed", s)))


def price_profile(profile: Sequence[tuple[int, float, float | None]], tariff: Tariff,
                  grid_fraction: float) -> Cost | None:
    """Price a cumulative (time_ns, wall Wh, grid Wh | None) profile starting at 0 Wh.

    Where the grid part is not sampled, `grid_fraction` of each slice is grid energy.
    Returns None when the tariff has no price for some slice that drew energy.
    """
    cost = grid_only = 0.0
    sources: set[str] = set()
    prev_t, prev_wall = profile[0][0], 0.0
    prev_grid: float | None = 0.0
    for t, wall, grid in profile:
        d_wall = wall - prev_wall
        d_grid = (grid - prev_grid) if grid is not None and prev_grid is not None else None
        if d_wall > 0 or (d_grid or 0) > 0:
            slices = max(1, -(-(t - prev_t) // SLICE_NS))
            for k in range(slices):
                mid = prev_t + (t - prev_t) * (2 * k + 1) // (2 * slices)
                price = tariff.price_at(mid)
                if price is None:
                    return None
                sources.add(tariff.source_at(mid))
                part_wall = d_wall / slices
                part_grid = (d_grid / slices) if d_grid is not None else part_wall * grid_fraction
                cost += part_grid / 1000 * price
                grid_only += part_wall / 1000 * price
        prev_t, prev_wall, prev_grid = t, wall, grid if grid is not None else None
    return Cost(cost, grid_only, frozenset(sources))
