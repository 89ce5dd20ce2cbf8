"""Collector health samples as a running collector writes them, for dashboards and their tests."""

from __future__ import annotations

from datetime import datetime, timedelta

from collector.health import COLLECTOR, Health
from collector.points import Point

# points per sample interval and the polls they took, per source (a small home installation)
_SOURCES = {"goe": (30, 30), "evcc": (40, 10), "evenergy": (2, 1), "ovms": (8, 5)}


def health_points(start: datetime, end: datetime, step: timedelta = timedelta(minutes=5)) -> list[Point]:
    """Cumulative counters and gauges every `step`, with a few errors along the way."""
    health, out, k, shipped = Health(), [], 0, 0
    t = start
    while t < end:
        for source, (points, polls) in _SOURCES.items():
            health.count(source, "polls", polls)
            health.count(source, "points", points)
            health.count(source, "no_data", k % 3)
            if k % 7 == 3:
                health.count(source, "errors_transient")
                health.count(source, "polls_failed")
                health.error(source, f"{source}: timed out after 10 s")
        health.count("evenergy", "errors_rate_limited", int(k % 11 == 5))
        health.count("evenergy", "polls_skipped", int(k % 11 == 5))
        health.gauge("evenergy", "quota_remaining", 1000 - (k * 12) % 1000)
        produced = sum(points for points, _ in _SOURCES.values())
        shipped += produced
        health.count(COLLECTOR, "shipped", produced)
        health.gauge(COLLECTOR, "backlog", (k % 5) * 17)
        health.gauge(COLLECTOR, "dead_letters", 0)
        health.gauge(COLLECTOR, "store_bytes", 4_000_000 + shipped * 60)
        health.gauge(COLLECTOR, "store_discarded", 0)
        health.gauge(COLLECTOR, "influx_ok", True)
        out.extend(health.points(int(t.timestamp()) * 1_000_000_000))
        t += step
        k += 1
    return out
