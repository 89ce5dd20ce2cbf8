"""Parse tests on payload files (the points each case gives: tests/sources/payloads.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collector.http_outcomes import Action, SourceError
from collector.measurement import CoercionReport
from collector.sim.evcc import EvccSim, float_format, mqtt_messages, parse_version
from collector.sources.evcc.parse import (format_time_ns, parse_sessions, parse_state,
                                          parse_tariff, parse_time_ns, state_from_topics)
from tests.sources.evcc.expected import assert_same_points, points_to_json
from tests.sources.payloads import EVCC_POLL_NS as POLL_NS
from tests.sources.payloads import EVCC_SITE as SITE


def _load(payloads_dir: Path, name: str):
    return json.loads((payloads_dir / name).read_text())


def _bare_state_points(payloads_dir: Path) -> list[dict]:
    """The points of state_0301_bare.json, which state_0301_bare.expected pins."""
    return points_to_json(parse_state(_load(payloads_dir, "state_0301_bare.json"), SITE, POLL_NS))


def _without_version(rows: list[dict]) -> list[dict]:
    for row in rows:
        row["fields"].pop("version", None)
    return rows


@pytest.mark.parametrize("case, version, devices", [
    # wrapper, gridPower..., chargeCurrent, vehicles array, flat battery without devices
    ("state_0130_wrapped_old_fields.json", "0.130.9", False),
    ("state_0206_wrapped.json", "0.206.1", True),              # wrapper, grid struct, battery flat + array
    ("state_0207_bare_battery_array.json", "0.207.0", True),   # bare, battery flat + array
])
def test_every_state_shape_gives_one_schema(case: str, version: str, devices: bool,
                                            payloads_dir: Path) -> None:
    # The same site state in the shapes evcc has shipped: identical points but the version
    # (and the per-device battery points, which old versions did not report).
    expected = _without_version(_bare_state_points(payloads_dir))
    if not devices:
        expected = [r for r in expected if r["measurement"] != "evcc_battery"]
    rows = points_to_json(parse_state(_load(payloads_dir, case), SITE, POLL_NS))
    site = next(r for r in rows if r["measurement"] == "evcc_site")
    assert site["fields"]["version"] == version
    assert _without_version(rows) == expected


def test_minus_zero_is_zero(payloads_dir: Path) -> None:
    raw = (payloads_dir / "state_0130_wrapped_old_fields.json").read_text()
    assert '"gridPower": -0' in raw
    site = next(p for p in parse_state(json.loads(raw), SITE, POLL_NS) if p.measurement == "evcc_site")
    assert site.fields["grid_power_w"] == 0.0 and str(site.fields["grid_power_w"]) == "0.0"


def test_nulls_everywhere_give_nothing_and_no_complaint(payloads_dir: Path) -> None:
    report = CoercionReport()
    assert parse_state(_load(payloads_dir, "state_nulls.json"), SITE, POLL_NS, report) == []
    assert report.rejected == []


def test_wrong_types_are_left_out_and_reported(payloads_dir: Path) -> None:
    report = CoercionReport()
    parse_state(_load(payloads_dir, "state_wrong_types.json"), SITE, POLL_NS, report)
    rejected = {name for name, _ in report.rejected}
    assert {"pvPower", "homePower", "grid.power", "battery.power", "greenShareHome",
            "connected", "charging", "phases_active"} <= rejected


@pytest.mark.parametrize("payload", [[1, 2], "text", 3, None])
def test_state_that_is_not_an_object_is_dropped(payload) -> None:
    with pytest.raises(SourceError) as err:
        parse_state(payload, SITE, POLL_NS)
    assert err.value.action is Action.DROP


def test_error_body_is_dropped_with_its_message() -> None:
    with pytest.raises(SourceError, match="not configured") as err:
        parse_tariff({"error": "tariff not configured"}, SITE, "grid")
    assert err.value.action is Action.DROP


def test_old_tariff_price_key_and_wrapper_equal_new_value_key(payloads_dir: Path) -> None:
    old = parse_tariff(_load(payloads_dir, "tariff_grid_0130_wrapped_price.json"), SITE, "grid")
    new = parse_tariff(_load(payloads_dir, "tariff_grid_0207.json"), SITE, "grid")
    assert old == new and len(new) == 4


def test_sessions_summary(payloads_dir: Path) -> None:
    report = CoercionReport()
    result = parse_sessions(_load(payloads_dir, "sessions.json"), SITE, None, report)
    assert (result.finished, result.running, result.unusable) == (3, 2, 2)
    # the zero-time `finished` of id 6 means running; it is older than the newest finished one
    assert format_time_ns(result.newest_finished_ns) == "2025-11-19T16:45:03.123456789Z"
    assert format_time_ns(result.oldest_running_ns) == "2025-11-20T08:00:00.000000000Z"
    assert result.watermark_ns() == result.newest_finished_ns
    assert sorted(p.fields["session_id"] for p in result.points) == [3, 4, 5]
    assert len(report.rejected) == 2


def test_sessions_since_filters_but_still_summarises(payloads_dir: Path) -> None:
    since = parse_time_ns("2025-11-19T12:00:00Z")
    result = parse_sessions(_load(payloads_dir, "sessions.json"), SITE, since)
    assert [p.fields["session_id"] for p in result.points] == [5]
    assert result.finished == 3


@pytest.mark.parametrize("text, expected", [
    ("2025-11-19T16:45:03Z", 1763570703_000000000),
    ("2025-11-19T16:45:03.1Z", 1763570703_100000000),
    ("2025-11-19T17:45:03.123456789+01:00", 1763570703_123456789),
    ("2025-11-19T17:45:03.1234567891234+01:00", 1763570703_123456789),
    ("2025-11-19T11:45:03.000001-05:00", 1763570703_000001000),
    ("2025-11-19T16:45:03+0000", 1763570703_000000000),
    ("2025-11-19T16:45:03", 1763570703_000000000),
    ("0001-01-01T00:00:00Z", None),
    ("2025-13-01T00:00:00Z", None),
    ("yesterday", None),
    (None, None),
    (1763570703, None),
])
def test_rfc3339(text, expected) -> None:
    assert parse_time_ns(text) == expected


def test_time_format_round_trips() -> None:
    for ns in (0, 1763570703_123456789, 1763570703_000000001):
        assert parse_time_ns(format_time_ns(ns)) == ns


MQTT_VERSIONS = ["0.130", "0.206", "0.207.5", "0.300.6", "0.300.7", "0.300.8", "0.301.2"]


@pytest.mark.parametrize("version", MQTT_VERSIONS)
def test_evcc_topics_give_the_rest_points(version: str) -> None:
    sim = EvccSim(version=version, clock=lambda: 1_763_737_200.0)  # afternoon, a car charging
    topics = dict(mqtt_messages(sim._state(), "home/evcc", sim.version))
    assert "home/evcc/loadpoints/1/chargeCurrents/l3" in topics
    assert "home/evcc/loadpoints/1/chargeCurrents/1" not in topics
    rest = points_to_json(parse_state(sim._wrap(sim.state()), SITE, POLL_NS))
    mqtt = points_to_json(parse_state(state_from_topics(topics, "home/evcc"), SITE, POLL_NS))
    assert len(rest) >= 8
    assert_same_points(mqtt, rest, sim.version)
    site = next(r["fields"] for r in mqtt if r["measurement"] == "evcc_site")
    rest_site = next(r["fields"] for r in rest if r["measurement"] == "evcc_site")
    # the grid meter (above 10,000 kWh) loses its last digits up to 0.300.6 only
    lost = parse_version(version) <= (0, 300, 6)
    assert (site["grid_energy_wh"] != rest_site["grid_energy_wh"]) == lost


@pytest.mark.parametrize("version, text", [
    ("0.207.5", "1.1823e+06"), ("0.300.6", "1.1823e+06"),     # "%.5g"
    ("0.300.7", "1182321.351"), ("0.301.2", "1182321.351")])  # "%.3f"
def test_float_format_by_version(version: str, text: str) -> None:
    assert float_format(parse_version(version))(1182321.351) == text


def test_trailing_zeros_by_version() -> None:
    assert float_format((0, 300, 6))(230.0) == "230"
    assert float_format((0, 300, 7))(230.0) == "230.000"     # 0.300.7 printed them all
    assert float_format((0, 300, 8))(230.0) == "230"
    assert float_format((0, 300, 8))(0.5) == "0.5"


def test_evcc_topic_rules_struct_names_arrays_and_phases() -> None:
    sim = EvccSim(version="0.207.5", clock=lambda: 1_763_737_200.0)
    topics = dict(mqtt_messages(sim._state(), "evcc", sim.version))
    # struct fields under their Go names; zero omitempty fields published empty
    assert topics["evcc/site/grid/excessDCPower"] == ""
    assert not any("excessdcpower" in t for t in topics)
    # a nested []float64 is an array (count and /1..n), a top-level one phases and their sum
    assert topics["evcc/site/grid/powers"] == "3" and "evcc/site/grid/powers/l1" not in topics
    phases = [float(topics[f"evcc/loadpoints/1/chargeVoltages/l{n}"]) for n in (1, 2, 3)]
    assert float(topics["evcc/loadpoints/1/chargeVoltages"]) == pytest.approx(sum(phases))
    # Go integers stay integers, durations whole seconds; floats "%.5g"
    assert topics["evcc/loadpoints/1/phasesActive"] == "3"
    assert topics["evcc/loadpoints/1/minCurrent"] == "6"
    assert topics["evcc/vehicles/model3/repeatingPlans"] == "0"
    old = dict(mqtt_messages(EvccSim(version="0.130", clock=lambda: 1_763_737_200.0)._state(),
                             "evcc", "0.130.9"))
    # before 0.133 the grid's phases were top-level values of their own
    assert "evcc/site/gridPowers/l2" in old and "evcc/site/gridPowers/2" not in old


def test_mqtt_phase_values_published_as_l1_to_l3_with_their_sum() -> None:
    # current evcc: a 3-phase value's sum at the topic, the phases at /l1../l3, no /1../3
    topics = {"evcc/site/grid/currents": "21.5", "evcc/site/grid/currents/l1": "10",
              "evcc/site/grid/currents/l2": "11.5", "evcc/site/grid/currents/l3": "0",
              "evcc/site/pv": "1", "evcc/site/pv/0": "", "evcc/site/pv/1/power": "800",
              "evcc/site/pv/2": "", "evcc/vehicles": "1", "evcc/vehicles/model3/title": "Model 3"}
    state = state_from_topics(topics)
    assert state == {"grid": {"currents": ["10", "11.5", "0"]}, "pv": [{"power": "800"}],
                     "vehicles": {"model3": {"title": "Model 3"}}}


def test_mqtt_tree_ignores_stale_loadpoints_and_reads_empty_as_null() -> None:
    topics = {"evcc/loadpoints": "1", "evcc/loadpoints/1/title": "Garage",
              "evcc/loadpoints/1/chargePower": "", "evcc/loadpoints/1/charging": "true",
              "evcc/loadpoints/2/title": "Removed", "evcc/loadpoints/2/chargePower": "5",
              "evcc/site/grid/powers": "3", "evcc/site/grid/powers/1": "1.5",
              "evcc/site/grid/powers/2": "2", "evcc/site/grid/powers/3": "-0",
              "evcc/site/grid/powers/l1": "1.5", "other/site/pvPower": "9"}
    state = state_from_topics(topics)
    assert state == {"grid": {"powers": ["1.5", "2", "-0"]},
                     "loadpoints": [{"title": "Garage", "chargePower": None, "charging": "true"}]}
    points = parse_state(state, SITE, POLL_NS)
    lp = next(p for p in points if p.measurement == "evcc_loadpoint")
    assert lp.fields == {"charging": True}
    site = next(p for p in points if p.measurement == "evcc_site")
    assert site.fields["grid_power_l3_w"] == 0.0


def test_mqtt_topic_dump_gives_the_rest_points(payloads_dir: Path) -> None:
    # evcc's topics for the state in state_0301_bare.json, with what a broker also holds: the
    # cleared /0../9 array items, a removed loadpoint's stale topic, a pre-0.133 grid topic.
    topics = _load(payloads_dir, "mqtt_0301_topics.json")
    points = points_to_json(parse_state(state_from_topics(topics), SITE, POLL_NS))
    expected = _bare_state_points(payloads_dir)
    assert [(r["measurement"], r["tags"], r["time_ns"]) for r in points] == \
        [(r["measurement"], r["tags"], r["time_ns"]) for r in expected]
    for got, want in zip(points, expected):
        # MQTT carries at most three decimals: REST's float noise (5168.000000000575) is gone
        assert got["fields"].keys() == want["fields"].keys()
        for name, value in want["fields"].items():
            if isinstance(value, float):
                assert got["fields"][name] == pytest.approx(value, rel=1e-9, abs=1e-3), name
            else:
                assert got["fields"][name] == value, name


def _loadpoint_fields(state: dict) -> dict:
    return next(p for p in parse_state(state, SITE, POLL_NS) if p.measurement == "evcc_loadpoint").fields


def test_target_soc_of_old_evcc_is_the_limit(payloads_dir: Path) -> None:
    # recorded from evcc 0.111.1: the limit was called `targetSoc` before 0.123
    state = _load(payloads_dir, "state_0111_target_soc.json")
    assert "limitSoc" not in state["result"]["loadpoints"][0]
    assert _loadpoint_fields(state)["limit_soc_pct"] == 100.0
    # the newest name wins; a null one falls through to the next
    lp = {"title": "Garage", "effectiveLimitSoc": None, "limitSoc": 80, "targetSoc": 100}
    assert _loadpoint_fields({"loadpoints": [lp]})["limit_soc_pct"] == 80.0
    lp["effectiveLimitSoc"] = 70
    assert _loadpoint_fields({"loadpoints": [lp]})["limit_soc_pct"] == 70.0


def test_session_identifier_loses_its_nul_padding(payloads_dir: Path) -> None:
    rows = _load(payloads_dir, "sessions_2026_identifier_nul.json")
    assert rows[0]["identifier"].endswith("\x00")
    points = parse_sessions(rows, SITE).points
    assert {p.fields["identifier"] for p in points} == {"#FreeCharging"}


def test_session_reference_price_and_co2(payloads_dir: Path) -> None:
    rows = _load(payloads_dir, "sessions_0304_reference_constructed.json")
    points = {p.fields["session_id"]: p.fields for p in parse_sessions(rows, SITE).points}
    assert points[58]["reference_price_per_kwh"] == pytest.approx(0.2712541666666667)
    assert points[58]["reference_co2_g_per_kwh"] == pytest.approx(356.0833333333333)
    # sessions from before evcc 0.304 carry null: no field, no complaint
    assert "reference_price_per_kwh" not in points[57] and "reference_co2_g_per_kwh" not in points[57]


def test_durations_of_evcc_before_0_127_are_nanoseconds(payloads_dir: Path) -> None:
    # a loadpoint cut from a recorded evcc 0.11x state: 21,690 s of charging, sent in ns
    lp = _load(payloads_dir, "loadpoint_0114_excerpt.json")
    assert lp["chargeDuration"] == 21_690_000_000_000
    fields = _loadpoint_fields({"loadpoints": [lp]})
    assert fields["charge_duration_s"] == 21690.0 and fields["connected_duration_s"] == 0.0
    assert fields["limit_soc_pct"] == 100.0 and fields["charged_energy_wh"] == pytest.approx(14923.3446)
    # seconds, as evcc sends them since 0.127 and over MQTT, stay seconds
    assert _loadpoint_fields({"loadpoints": [{"chargeDuration": 21690}]})["charge_duration_s"] == 21690.0
