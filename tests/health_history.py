"""Collector health samples as a running collector writes them, for dashboards and their tests."""

from __future__ import annotations

from datetime import datetime, timedelta

from collector.health import COLLECTOR, Health
from collector.points import Point

# points per sample interval and the polls they took, per source instance (a small fleet in
# two processes: chargers and sites in shard 0, the ev.energy client and the OVMS account in 1)
_SHARDS = ({"goe": (30, 30), "evcc:home": (40, 10)}, {"evenergy:fleet": (2, 1), "ovms": (8, 5)})


def health_points(start: datetime, end: datetime, step: timedelta = timedelta(minutes=5)) -> list[Point]:
    """Cumulative counters and gauges every `step` from each shard, with a few errors."""
    out: list[Point] = []
    for shard, sources in enumerate(_SHARDS):
        health, k, shipped = Health(collector="default", shard=shard), 0, 0
        t = start
        while t < end:
            for source, (points, polls) in sources.items():
                health.count(source, "polls", polls)
                health.count(source, "points", points)
                health.count(source, "no_data", k % 3)
                health.count(source, "polls_late", int(k % 13 == 4))
                if k % 7 == 3:
                    health.count(source, "errors_transient")
                    health.count(source, "polls_failed")
                    health.error(source, f"{source}: timed out after 10 s")
            if "evenergy:fleet" in sources:
                health.count("evenergy:fleet", "errors_rate_limited", int(k % 11 == 5))
                health.count("evenergy:fleet", "polls_skipped", int(k % 11 == 5))
                health.gauge("evenergy:fleet", "quota_remaining", 1000 - (k * 12) % 1000)
            produced = sum(points for points, _ in sources.values())
            shipped += produced
            health.count(COLLECTOR, "shipped", produced)
            health.gauge(COLLECTOR, "backlog", (k % 5) * 17)
            health.gauge(COLLECTOR, "dead_letters", 0)
            health.gauge(COLLECTOR, "store_bytes", 4_000_000 + shipped * 60)
            health.gauge(COLLECTOR, "store_discarded", 0)
            health.gauge(COLLECTOR, "influx_ok", True)
            health.gauge(COLLECTOR, "shards", len(_SHARDS))
            out.extend(health.points(int(t.timestamp()) * 1_000_000_000))
            t += step
            k += 1
    return out
