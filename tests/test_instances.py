"""Several instances of a source type in one file: `[[sources.evcc]]`, `[[sources.evenergy]]`,
`[[sources.ovms]]`, each with its own `name`."""

from __future__ import annotations

import asyncio
import logging

import pytest

from collector.app import Collector
from collector.config import ConfigError, parse_config

EVCC = {"url": "http://evcc.invalid:7070"}
EVENERGY = {"client_id": "a", "client_secret": "s", "user": "u",
            "evses": ["evse" + "0" * 26]}
OVMS = {"username": "u", "password": "p", "vehicles": ["CAR1"]}


def config(tmp_path, sources: dict) -> object:
    return parse_config({"store": {"path": str(tmp_path / "s.db")}, "sources": sources})


def test_each_instance_is_a_source_of_its_own_with_its_own_jobs(tmp_path):
    cfg = config(tmp_path, {
        "evcc": [{"name": "home", **EVCC}, {"name": "cabin", **EVCC}],
        "evenergy": [{"name": "fleet-a", **EVENERGY},
                     {"name": "fleet-b", **EVENERGY, "client_id": "b",
                      "evses": ["evse" + "1" * 26]}],
        "ovms": [{"name": "public", **OVMS}, {"name": "mine", **OVMS, "vehicles": ["CAR2"]}]})
    collector = Collector(cfg)
    try:
        assert [s.name for s in collector.sources] == ["evcc", "evcc", "evenergy", "evenergy",
                                                       "ovms", "ovms"]
        ids = [job.id for job in collector.jobs()]
        assert len(ids) == len(set(ids))
        assert {"evcc:home:state", "evcc:cabin:state", "ovms:CAR1:status", "ovms:CAR2:status"} <= set(ids)
        # each OAuth client has its own quota
        assert set(collector.limits.quotas()) == {"evenergy:a", "evenergy:b"}
    finally:
        for source in collector.sources:
            asyncio.run(source.close())
        collector.close()


def test_the_single_table_form_is_one_instance(tmp_path):
    cfg = config(tmp_path, {"evcc": EVCC, "ovms": OVMS})
    assert cfg.sources.evcc.name == "evcc" and cfg.sources.ovms.name == "ovms"


@pytest.mark.parametrize("kind, section", [("evcc", EVCC), ("evenergy", EVENERGY), ("ovms", OVMS)])
def test_two_instances_with_one_name_are_refused_naming_both(tmp_path, kind, section):
    with pytest.raises(ConfigError) as info:
        config(tmp_path, {kind: [{"name": "x", **section}, {**section}, {"name": "x", **section}]})
    assert f"[[sources.{kind}]] number 1 and number 3 are both named 'x'" in str(info.value)
    with pytest.raises(ConfigError, match="both named"):
        config(tmp_path, {kind: [section, section]})            # both take the default name


def test_an_unknown_key_in_one_instance_names_that_instance(tmp_path):
    with pytest.raises(ConfigError) as info:
        config(tmp_path, {"evcc": [{"name": "a", **EVCC}, {"name": "b", "urll": "x"}]})
    assert "sources.evcc[1].urll: unknown key" in str(info.value)


def test_a_vehicle_two_ovms_instances_both_list_is_collected_once(tmp_path, caplog):
    cfg = config(tmp_path, {"ovms": [{"name": "public", **OVMS, "vehicles": ["CAR1", "CAR2"]},
                                     {"name": "mine", **OVMS, "vehicles": ["CAR2", "CAR3"]}]})
    with caplog.at_level(logging.ERROR):
        collector = Collector(cfg)
    try:
        ids = [job.id for job in collector.jobs() if job.id.endswith(":status")]
        assert ids == ["ovms:CAR1:status", "ovms:CAR2:status", "ovms:CAR3:status"]
        assert "vehicle CAR2 is collected by [[sources.ovms]] 'public' already" in caplog.text
    finally:
        for source in collector.sources:
            asyncio.run(source.close())
        collector.close()


def test_goe_api_v1_is_held_to_five_seconds(tmp_path):
    charger = {"serial": "000003", "api": "local_v1", "host": "10.0.0.3"}
    with pytest.raises(ConfigError) as info:
        config(tmp_path, {"goe": {"interval": "1s", "chargers": [charger]}})
    assert 'charger 000003: api = "local_v1" is polled at most every 5 s' in str(info.value)
    assert 'interval = "5s"' in str(info.value)
    assert config(tmp_path, {"goe": {"chargers": [charger]}}).sources.goe.interval == 5.0
    mixed = {"interval": "1s", "chargers": [{**charger, "interval": "10s"},
                                            {"serial": "000001", "token": "t"}]}
    assert config(tmp_path, {"goe": mixed}).sources.goe.chargers[0].interval == 10.0
