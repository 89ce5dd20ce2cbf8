"""`collector_health`: one series per source instance and per process of a fleet."""

from __future__ import annotations

import asyncio

from collector.app import Collector
from collector.config import parse_config
from collector.health import COLLECTOR, HEALTH, Health, origin


def evse(n: int) -> str:
    return f"evse{n:026d}"


def test_each_source_instance_counts_in_a_series_of_its_own():
    health = Health(collector="depot", shard=2)
    health.count(origin("evcc", "home"), "polls", 3)
    health.count(origin("evcc", "cabin"), "polls", 5)
    health.count(origin("goe", "goe"), "polls", 7)
    health.count(COLLECTOR, "shipped", 11)
    series = {(p.tags["source"], p.tags["instance"]): (p.tags, p.fields) for p in health.points(10**18)}
    assert set(series) == {("evcc", "home"), ("evcc", "cabin"), ("goe", "goe"), ("collector", "collector")}
    assert series[("evcc", "cabin")][1] == {"polls": 5}
    assert all(tags["collector"] == "depot" and tags["shard"] == "2" for tags, _ in series.values())
    assert all(set(tags) == {t.name for t in HEALTH.tags} for tags, _ in series.values())
    # a source type's total is still at hand (the demo's view, tests)
    assert health.get("evcc", "polls") == 8 and health.get("evcc:home", "polls") == 3
    assert health.get("goe", "polls") == 7


def test_a_default_instance_is_counted_under_its_source_name():
    assert origin("evcc", "evcc") == "evcc" and origin("evcc", "home") == "evcc:home"


def test_a_watched_gauge_is_read_when_health_is_written():
    health, left = Health(), [900]
    health.watch("evenergy:a", "quota_remaining", lambda: left[0])
    left[0] = 850
    [point] = health.points(1)
    assert point.fields == {"quota_remaining": 850} and point.tags["instance"] == "a"


def test_the_collector_writes_quota_per_client_and_its_shard_identity(tmp_path):
    """Two ev.energy clients: each reports its own quota (they used to overwrite each other)."""
    config = parse_config({
        "collector": {"name": "depot", "shards": 1},
        "store": {"path": str(tmp_path / "s.db")},
        "sources": {"evenergy": [
            {"name": "a", "client_id": "a", "client_secret": "s", "user": "u", "evses": [evse(1)],
             "quota_limit": 1000},
            {"name": "b", "client_id": "b", "client_secret": "s", "user": "u", "evses": [evse(2)],
             "quota_limit": 500}]}})
    collector = Collector(config)
    try:
        asyncio.run(collector.write_health())
        points = [p for chunk in collector.store.query("collector_health") for p in chunk]
    finally:
        for source in collector.sources:
            asyncio.run(source.close())
        collector.close()
    quota = {p.tags["instance"]: p.fields["quota_remaining"] for p in points if "quota_remaining" in p.fields}
    assert quota == {"a": 1000, "b": 500}
    [pipeline] = [p for p in points if p.tags["source"] == COLLECTOR]
    assert pipeline.tags == {"source": "collector", "instance": "collector", "collector": "depot", "shard": "0"}
    assert pipeline.fields["shards"] == 1
