"""Session derivation on constructed timelines."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from collector.sessions.derive import Identities, derive_sessions
from collector.sources.evcc.sessions import evcc_intervals
from collector.sources.evenergy.sessions import evenergy_intervals
from collector.sources.goe.sessions import goe_card_names, goe_intervals
from collector.sources.ovms.sessions import ovms_intervals
from collector.sessions.pricing import FixedTariff, TouRule, TouTariff
from collector.sources.evcc.tariff import EvccTariff
from collector.store import StoredPoint
from tests.sessions.timelines import S, goe, ovms_grid, ts

from datetime import time

GAP = 900 * S
IDS = Identities(chargers={"garage": ["goe:012345"]}, charger_vehicles={"garage": ["ioniq"]},
                 vehicles={"ioniq": ["ovms:IONIQ1"]})


def derive(points, vehicle_points=(), now=None, ids=IDS, tariff=None, gap=GAP):
    wall = goe_intervals([p for p in points if p.measurement == "goe_status"], "012345")
    veh = ovms_intervals(vehicle_points, "IONIQ1") if vehicle_points else []
    now = now if now is not None else max(p.time_ns for p in [*points, *vehicle_points]) + 86400 * S
    return derive_sessions(wall, veh, ids, gap, now, tariff, "EUR")


def test_one_session_energy_duration_and_identity():
    start = ts("2026-03-02T18:00:00+00:00")
    pts = goe(start, [(600, 1, 0), (600, 3, 0), (3600, 2, 11000), (600, 4, 0), (600, 1, 0)])
    [s] = derive(pts)
    assert s.tags == {"charger": "garage"}
    assert s.time_ns == start + 600 * S                      # first connected observation
    assert s.fields["energy_wh"] == pytest.approx(11000.0)
    assert s.fields["charge_duration_s"] == pytest.approx(3600.0)
    assert s.fields["duration_s"] == pytest.approx(4740.0)   # last connected sample
    assert s.fields["vehicle"] == "ioniq"                    # the only car of this charger
    assert s.fields["parts"] == 1


def test_pv_pause_shorter_than_gap_merges_longer_splits():
    start = ts("2026-06-01T10:00:00+00:00")
    phases = [(300, 1, 0), (1800, 2, 4000), (600, 1, 0), (1800, 2, 4000), (300, 1, 0)]
    [merged] = derive(goe(start, phases))
    assert merged.fields["parts"] == 2
    assert merged.fields["energy_wh"] == pytest.approx(4000.0)
    split = derive(goe(start, phases), gap=300 * S)
    assert [p.fields["energy_wh"] for p in split] == pytest.approx([2000.0, 2000.0])


def test_car_leaves_mid_charge():
    start = ts("2026-03-02T18:00:00+00:00")
    [s] = derive(goe(start, [(300, 1, 0), (1800, 2, 7200), (600, 1, 0)]))
    assert s.fields["energy_wh"] == pytest.approx(3600.0)
    assert s.fields["charge_duration_s"] == pytest.approx(1740.0)


def test_open_session_waits_until_ended_and_gap_passed():
    start = ts("2026-03-02T18:00:00+00:00")
    connected = goe(start, [(300, 1, 0), (1800, 2, 7200)])
    assert derive(connected) == []                               # still connected
    ended = goe(start, [(300, 1, 0), (1800, 2, 7200), (120, 1, 0)])
    last = ended[-1].time_ns
    assert derive(ended, now=last + 60 * S) == []                # might still resume
    assert len(derive(ended, now=last + GAP)) == 1


def test_session_whose_start_we_did_not_see_is_not_emitted():
    start = ts("2026-03-02T18:00:00+00:00")
    assert derive(goe(start, [(1800, 2, 7200), (300, 1, 0)])) == []


def test_solar_split_and_cost_fixed_price():
    start = ts("2026-06-01T10:00:00+00:00")
    pts = goe(start, [(300, 1, 0), (3600, 2, 10000), (300, 1, 0)], solar_share=0.4)
    [s] = derive(pts, tariff=FixedTariff(0.30))
    f = s.fields
    assert f["solar_energy_wh"] == pytest.approx(4000.0)
    assert f["grid_energy_wh"] == pytest.approx(6000.0)
    assert f["solar_pct"] == pytest.approx(40.0)
    assert f["grid_only_cost"] == pytest.approx(3.0)
    assert f["cost"] == pytest.approx(1.8)
    assert f["savings"] == pytest.approx(1.2)
    assert f["price_source"] == "fixed" and f["currency"] == "EUR"
    assert f["price_per_kwh"] == pytest.approx(0.30)


def test_without_solar_data_cost_is_grid_only_and_solar_absent():
    start = ts("2026-06-01T10:00:00+00:00")
    [s] = derive(goe(start, [(300, 1, 0), (3600, 2, 10000), (300, 1, 0)]), tariff=FixedTariff(0.3))
    assert "solar_energy_wh" not in s.fields
    assert s.fields["cost"] == pytest.approx(s.fields["grid_only_cost"]) == pytest.approx(3.0)


def test_join_vehicle_side_soc_odometer_efficiency():
    start = ts("2026-03-02T18:00:00+00:00")
    pts = goe(start, [(300, 1, 0), (3600, 2, 11000), (300, 1, 0)])
    veh = ovms_grid("IONIQ1", [
        (start - 3600 * S, "stopped", {"soc_pct": 40.0}),
        (start + 400 * S, "charging", {"soc_pct": 40.0, "odometer_km": 12345.0}),
        (start + 3800 * S, "done", {"soc_pct": 54.0, "charge_energy_wh": 9900.0,
                                    "charge_grid_energy_wh": 10800.0, "odometer_km": 12345.0}),
    ])
    [s] = derive(pts, veh)
    f = s.fields
    assert (f["soc_start_pct"], f["soc_end_pct"], f["odometer_km"]) == (40.0, 54.0, 12345.0)
    assert f["vehicle_energy_wh"] == 9900.0
    assert f["efficiency_pct"] == pytest.approx(90.0)
    assert f["sources"] == "goe+ovms"


def test_vehicle_only_charge_elsewhere_and_missing_wallbox():
    t0 = ts("2026-03-05T12:00:00+00:00")
    veh = ovms_grid("IONIQ1", [
        (t0, "stopped", {"soc_pct": 20.0}),
        (t0 + 60 * S, "charging", {"soc_pct": 20.0}),
        (t0 + 1860 * S, "done", {"soc_pct": 70.0, "charge_energy_wh": 36000.0,
                                 "charge_grid_energy_wh": 38000.0}),
    ])
    [s] = derive_sessions([], ovms_intervals(veh, "IONIQ1"), IDS, GAP, t0 + 86400 * S,
                          FixedTariff(0.5), "EUR")
    assert s.tags == {"charger": "vehicle:ioniq"}
    assert s.fields["energy_wh"] == 38000.0            # the vehicle's estimate from the wall
    assert "efficiency_pct" in s.fields
    assert s.fields["cost"] == pytest.approx(19.0)


def test_vehicle_charge_inside_open_wallbox_session_waits():
    start = ts("2026-03-02T18:00:00+00:00")
    pts = goe(start, [(300, 1, 0), (3600, 2, 11000), (3600, 4, 0)])   # still plugged in
    veh = ovms_grid("IONIQ1", [(start, "stopped", {}), (start + 400 * S, "charging", {}),
                               (start + 3800 * S, "done", {"charge_energy_wh": 9900.0})])
    assert derive(pts, veh, now=start + 86400 * S) == []


def test_dst_fall_back_night_tou_and_duration():
    # Europe/Berlin, 25 Oct 2026: 03:00 CEST -> 02:00 CET. 00:30 CEST to 04:30 CET is 5 h.
    start = ts("2026-10-25T00:30:00+02:00")
    pts = goe(start - 300 * S, [(300, 1, 0), (5 * 3600, 2, 2000), (300, 1, 0)])
    tou = TouTariff((TouRule(time(22, 0), time(6, 0), 0.20),), ZoneInfo("Europe/Berlin"), 0.40)
    [s] = derive(pts, tariff=tou)
    assert s.fields["energy_wh"] == pytest.approx(10000.0)
    assert s.fields["charge_duration_s"] == pytest.approx(5 * 3600 - 60)
    assert s.fields["grid_only_cost"] == pytest.approx(2.0)      # all of it at the night price


def test_tou_across_price_boundary_prices_each_part():
    start = ts("2026-01-31T21:00:00+00:00")   # month end, across midnight
    pts = goe(start - 300 * S, [(300, 1, 0), (4 * 3600, 2, 3000), (300, 1, 0)])
    tou = TouTariff((TouRule(time(23, 0), time(6, 0), 0.10),), ZoneInfo("UTC"), 0.30)
    [s] = derive(pts, tariff=tou)
    assert s.time_ns == start                      # stamped at its start, in January
    # 21-23 h: 6 kWh at 0.30, 23-01 h: 6 kWh at 0.10
    assert s.fields["grid_only_cost"] == pytest.approx(1.8 + 0.6, rel=1e-3)


def test_evcc_tariff_and_missing_rate():
    start = ts("2026-03-02T18:00:00+00:00")
    pts = goe(start - 300 * S, [(300, 1, 0), (3600, 2, 10000), (300, 1, 0)])
    rates = [(start, 1800.0, 0.20), (start + 1800 * S, 1800.0, 0.40)]
    [s] = derive(pts, tariff=EvccTariff(rates))
    assert s.fields["grid_only_cost"] == pytest.approx(3.0, rel=1e-2)
    assert s.fields["price_source"] == "dynamic"
    [unpriced] = derive(pts, tariff=EvccTariff(rates[:1]))
    assert "cost" not in unpriced.fields and unpriced.fields["energy_wh"] > 0
    [filled] = derive(pts, tariff=EvccTariff(rates[:1], fallback=0.30))   # the second half at `price`
    assert filled.fields["price_source"] == "dynamic+fixed"
    assert filled.fields["price_per_kwh"] == pytest.approx(0.25, rel=1e-2)


def test_rederiving_gives_identical_points():
    start = ts("2026-03-02T18:00:00+00:00")
    pts = goe(start, [(300, 1, 0), (3600, 2, 11000), (300, 1, 0)])
    assert derive(pts) == derive(list(reversed(pts)))


def test_evcc_sessions_and_charger_with_two_sources():
    start = ts("2026-03-02T18:00:00+00:00")
    pts = goe(start - 300 * S, [(300, 1, 0), (3600, 2, 11000), (300, 1, 0)])
    evcc = [StoredPoint("evcc_session", {"site": "home", "loadpoint_title": "Garage", "vehicle": "Ioniq 5"},
                        start + 5 * S, {"connected_duration_s": 3700.0, "energy_wh": 10900.0,
                                        "solar_pct": 25.0, "soc_start_pct": 30.0, "soc_end_pct": 45.0})]
    ids = Identities(chargers={"garage": ["goe:012345", "evcc:home/Garage"]},
                     vehicles={"ioniq": ["evcc:Ioniq 5"]})
    wall = goe_intervals(pts, "012345") + evcc_intervals(evcc)
    [s] = derive_sessions(wall, [], ids, GAP, start + 86400 * S)
    assert s.fields["energy_wh"] == pytest.approx(11000.0)       # go-e is listed first
    assert s.fields["solar_pct"] == pytest.approx(25.0)          # evcc fills what go-e lacks
    assert s.fields["vehicle"] == "ioniq" and s.fields["soc_end_pct"] == 45.0
    assert s.fields["sources"] == "evcc+goe"


def test_evenergy_meter_energy_and_soc():
    t0 = ts("2026-03-02T18:00:00+00:00")
    logs = [StoredPoint("evenergy_status", {"evse": "evseX"}, t0 + k * 300 * S,
                        {"plugged_in": 0 < k < 8, "charging": 0 < k < 7, "meter_energy_wh": 1000.0 + 500 * max(0, min(k, 6) - 0),
                         "soc_pct": 50.0 + k})
            for k in range(10)]
    [iv] = evenergy_intervals(logs, "evseX")
    assert iv.complete and iv.energy_wh == pytest.approx(3000.0 - 0.0)
    assert (iv.soc_start, iv.soc_end) == (51.0, 57.0)


# -- the reimbursement record: meter readings, card, price ------------------------------------

def _with_card(points, trx):
    for p in points:
        if p.fields["car_state"] in (2, 3, 4):
            p.fields["transaction_card"] = trx
    return points


def test_meter_readings_card_name_and_price_per_kwh():
    start = ts("2026-03-02T18:00:00+00:00")
    pts = _with_card(goe(start - 300 * S, [(300, 1, 0), (3600, 2, 11000), (300, 1, 0)], eto=250_000.0), 2)
    cards = [StoredPoint("goe_card", {"serial": "012345", "card": "2"}, start - 3600 * S, {"name": "Sam"}),
             StoredPoint("goe_card", {"serial": "012345", "card": "2"}, start + 86400 * S, {"name": "Kim"})]
    wall = goe_intervals(pts, "012345", goe_card_names(cards))
    [s] = derive_sessions(wall, [], IDS, GAP, start + 86400 * S, FixedTariff(0.32), "EUR")
    f = s.fields
    assert f["card"] == "Sam"                            # the name when it charged, not a later one
    assert (f["meter_start_wh"], f["meter_end_wh"]) == (250_000.0, 261_000.0)
    assert f["meter"] == "goe:012345 eto" and f["meter_mismatch"] is False
    assert f["meter_deviation_pct"] == pytest.approx(0.0)
    assert f["price_per_kwh"] == pytest.approx(0.32) and f["price_source"] == "fixed"
    unnamed = goe_intervals(pts, "012345")
    assert derive_sessions(unnamed, [], IDS, GAP, start + 86400 * S)[0].fields["card"] == "card 2"
    by_app = goe_intervals(_with_card(pts, 0), "012345", goe_card_names(cards))
    assert derive_sessions(by_app, [], IDS, GAP, start + 86400 * S)[0].fields["card"] == "app"


def test_a_meter_that_disagrees_with_the_energy_is_flagged():
    start = ts("2026-03-02T18:00:00+00:00")
    pts = goe(start - 300 * S, [(300, 1, 0), (3600, 2, 11000), (300, 1, 0)])
    for p in pts[-5:]:                                  # the meter ran 200 Wh more than `wh`
        p.fields["energy_total_wh"] += 200
    [s] = derive(pts)
    assert s.fields["meter_mismatch"] is True
    assert s.fields["meter_deviation_pct"] == pytest.approx(200 / 11000 * 100, rel=1e-2)   # eto: whole Wh
    for p in pts[-5:]:                                  # within 1 %: not flagged
        p.fields["energy_total_wh"] -= 150
    assert derive(pts)[0].fields["meter_mismatch"] is False


def test_evcc_identifier_and_meter_readings():
    start = ts("2026-03-02T18:00:00+00:00")
    evcc = [StoredPoint("evcc_session", {"site": "home", "loadpoint_title": "Garage", "vehicle": ""},
                        start, {"connected_duration_s": 3700.0, "energy_wh": 10000.0, "identifier": "tag-7",
                                "meter_start_wh": 1_500_000.0, "meter_stop_wh": 1_510_000.0})]
    [s] = derive_sessions(evcc_intervals(evcc), [], Identities(), GAP, start + 86400 * S, FixedTariff(0.3), "EUR")
    assert s.fields["card"] == "tag-7"
    assert s.fields["meter"] == "evcc:home/Garage chargeTotalImport"
    assert (s.fields["meter_start_wh"], s.fields["meter_end_wh"]) == (1_500_000.0, 1_510_000.0)


def test_without_configuration_go_e_evcc_and_ovms_join_into_one_session():
    start = ts("2026-03-02T18:00:00+00:00")
    pts = goe(start - 300 * S, [(300, 1, 0), (3600, 2, 11000), (1800, 4, 0), (300, 1, 0)])
    evcc = [StoredPoint("evcc_session", {"site": "home", "loadpoint_title": "Garage", "vehicle": "Ioniq 5"},
                        start + 20 * S, {"connected_duration_s": 5380.0, "energy_wh": 10950.0, "solar_pct": 30.0})]
    veh = ovms_grid("IONIQ1", [(start - 3600 * S, "stopped", {"soc_pct": 40.0}),
                               (start + 60 * S, "charging", {"soc_pct": 40.0, "odometer_km": 100.0}),
                               (start + 3620 * S, "done", {"soc_pct": 57.0, "charge_energy_wh": 9900.0,
                                                          "odometer_km": 101.0})])
    # a second charger's charge at the same time with another energy stays its own session
    other = goe(start - 300 * S, [(300, 1, 0), (3600, 2, 4000), (300, 1, 0)], serial="999999")
    wall = (goe_intervals(pts, "012345") + goe_intervals(other, "999999") + evcc_intervals(evcc))
    sessions = derive_sessions(wall, ovms_intervals(veh, "IONIQ1"), Identities(), GAP, start + 86400 * S)
    by_charger = {s.tags["charger"]: s.fields for s in sessions}
    assert sorted(by_charger) == ["goe:012345", "goe:999999"]
    f = by_charger["goe:012345"]
    assert f["sources"] == "evcc+goe+ovms" and f["energy_wh"] == pytest.approx(11000.0)  # go-e's meter leads
    assert f["solar_pct"] == pytest.approx(30.0) and f["vehicle"] == "ovms:IONIQ1"
    assert f["efficiency_pct"] == pytest.approx(90.0) and f["odometer_km"] == 100.0   # at the start
    assert by_charger["goe:999999"]["sources"] == "goe" and "vehicle" not in by_charger["goe:999999"]


def test_an_unconfigured_car_does_not_join_a_charge_it_cannot_be():
    start = ts("2026-03-02T18:00:00+00:00")
    pts = goe(start - 300 * S, [(300, 1, 0), (3600, 2, 3000), (300, 1, 0)])        # 3 kWh from the wall
    veh = ovms_grid("IONIQ1", [(start - 3600 * S, "stopped", {}), (start + 60 * S, "charging", {}),
                               (start + 3620 * S, "done", {"charge_energy_wh": 9900.0})])   # 9.9 kWh in
    sessions = derive_sessions(goe_intervals(pts, "012345"), ovms_intervals(veh, "IONIQ1"),
                               Identities(), GAP, start + 86400 * S)
    assert sorted(s.tags["charger"] for s in sessions) == ["goe:012345", "vehicle:ovms:IONIQ1"]


def test_ignored_identities_give_no_sessions_and_flat_prices_every_kwh():
    start = ts("2026-03-02T18:00:00+00:00")
    evcc = [StoredPoint("evcc_session", {"site": "home", "loadpoint_title": "Heat pump", "vehicle": ""},
                        start, {"connected_duration_s": 3700.0, "energy_wh": 2000.0})]
    ids = Identities(ignore=frozenset({"evcc:home/Heat pump"}))
    assert derive_sessions(evcc_intervals(evcc), [], ids, GAP, start + 86400 * S) == []
    pts = goe(start - 300 * S, [(300, 1, 0), (3600, 2, 10000), (300, 1, 0)], solar_share=0.5)
    [s] = derive(pts, tariff=FixedTariff(0.25, name="flat"))
    assert s.fields["price_source"] == "flat" and s.fields["grid_only_cost"] == pytest.approx(2.5)


def test_two_unconfigured_cars_charging_at_once_join_by_the_flow_of_energy():
    """A car at home and another elsewhere both charge inside the home charger's overnight
    session; the one whose charge matches when the wallbox delivered is its car."""
    start = ts("2026-03-02T18:00:00+00:00")
    pts = goe(start - 300 * S, [(300, 1, 0), (4500, 2, 7200), (36000, 4, 0), (300, 1, 0)])   # 9 kWh
    home = ovms_grid("HOME1", [(start - 3600 * S, "stopped", {}), (start + 5 * S, "charging", {}),
                               (start + 4505 * S, "done", {"charge_energy_wh": 8100.0})])
    away = ovms_grid("AWAY1", [(start - 3600 * S, "stopped", {}), (start + 900 * S, "charging", {}),
                               (start + 6000 * S, "done", {"charge_energy_wh": 8500.0})])
    veh = ovms_intervals(home, "HOME1") + ovms_intervals(away, "AWAY1")
    sessions = derive_sessions(goe_intervals(pts, "012345"), veh, Identities(), GAP, start + 86400 * S)
    by_charger = {s.tags["charger"]: s.fields["vehicle"] for s in sessions}
    assert by_charger == {"goe:012345": "ovms:HOME1", "vehicle:ovms:AWAY1": "ovms:AWAY1"}
