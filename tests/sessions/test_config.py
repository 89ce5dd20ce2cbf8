"""`[sessions]`: the documented example parses, mistakes are named, the collector runs the job."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from collector.app import Collector
from collector.config import ConfigError, parse_config

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_documented_example_parses():
    text = DOCS.read_text().split("```toml")[1].split("```")[0]
    cfg = parse_config(tomllib.loads(text)).sessions
    assert cfg.tariff == "tou" and cfg.tou[0].rule().price == 0.22
    assert cfg.chargers["garage"].identities() == ["goe:012345"]


@pytest.mark.parametrize("section, message", [
    ({"tariff": "fixed"}, 'tariff = "fixed" needs price'),
    ({"tariff": "flat"}, 'tariff = "flat" needs price'),
    ({"ignore": ["Heat pump"]}, "not source identities"),
    ({"vehicles": {"car": {"holder": "A", "plates": "X"}}}, "sessions.vehicles.car.plates: unknown key"),
    ({"tariff": "tou", "price": 1}, "needs a [[sessions.tou]] table"),
    ({"tou": [{"start": "25:00", "end": "06:00", "price": 1}]}, "expected a time as HH:MM"),
    ({"tou": [{"start": "22:00", "end": "06:00", "price": 1, "days": ["monday"]}]}, "unknown day"),
    ({"timezone": "Mars/Olympus"}, "unknown time zone"),
    ({"chargers": {"g": {"goe": "1", "vehicles": ["nope"]}}}, "not in [sessions.vehicles]"),
    ({"gapp": "5m"}, "sessions.gapp: unknown key"),
])
def test_mistakes_are_named(section, message):
    with pytest.raises(ConfigError) as err:
        parse_config({"sessions": section})
    assert message in str(err.value)


def test_collector_schedules_the_sessions_job(tmp_path):
    config = parse_config({"store": {"path": str(tmp_path / "s.db")}, "sessions": {"interval": "2m"}})
    collector = Collector(config)
    try:
        [job] = [j for j in collector.jobs() if j.id == "collector:sessions"]
        assert job.interval == 120.0
    finally:
        collector.close()
    # on by default: without the section, every 5 minutes; enabled = false stops it
    plain = Collector(parse_config({"store": {"path": str(tmp_path / "t.db")}}))
    try:
        assert [j.interval for j in plain.jobs() if j.id == "collector:sessions"] == [300.0]
    finally:
        plain.close()
    off = Collector(parse_config({"store": {"path": str(tmp_path / "u.db")}, "sessions": {"enabled": False}}))
    try:
        assert not [j for j in off.jobs() if j.id == "collector:sessions"]
    finally:
        off.close()
