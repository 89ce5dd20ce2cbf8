"""evcc's dynamic grid tariff, as collected (`evcc_tariff`, type grid), for pricing sessions."""

from __future__ import annotations

import bisect
import logging
from collections.abc import Sequence

from collector.charges import Reader

log = logging.getLogger(__name__)
DAY_NS = 86400 * 10**9


class EvccTariff:
    """evcc's grid rates as collected (`evcc_tariff`, type grid): (start_ns, duration_s, price)."""

    name = "evcc"

    def __init__(self, rates: Sequence[tuple[int, float | None, float]],
                 fallback: float | None = None) -> None:
        ordered = sorted(rates)
        self._starts = [r[0] for r in ordered]
        self._rates = ordered
        self.fallback = fallback

    def _rate(self, t_ns: int) -> float | None:
        idx = bisect.bisect_right(self._starts, t_ns) - 1
        if idx >= 0:
            start, duration, price = self._rates[idx]
            if duration is None or t_ns < start + duration * 1e9:
                return price
        return None

    def price_at(self, t_ns: int) -> float | None:
        rate = self._rate(t_ns)
        return rate if rate is not None else self.fallback

    def source_at(self, t_ns: int) -> str:
        return "dynamic" if self._rate(t_ns) is not None else "fixed"


def grid_tariff(read: Reader, start_ns: int, end_ns: int, site: str | None,
                fallback: float | None) -> EvccTariff:
    """The grid rates of `site` (default: the only site collected) for [start_ns, end_ns)."""
    rates, sites = [], set()
    # a rate published a day ahead starts before the window it prices
    for p in read("evcc_tariff", start_ns - 2 * DAY_NS, end_ns):
        if p.tags.get("type") != "grid" or "price_per_kwh" not in p.fields:
            continue
        seen = p.tags.get("site", "")
        if site is not None and seen != site:
            continue
        sites.add(seen)
        rates.append((p.time_ns, p.fields.get("duration_s"), float(p.fields["price_per_kwh"])))
    if len(sites) > 1:
        log.warning("sessions: grid tariffs from several evcc sites %s; set [sessions] evcc_site",
                    sorted(sites))
    return EvccTariff(rates, fallback)
