"""The history generator: counts, determinism, and one car seen alike by go-e, evcc and OVMS."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from collector.history import generate_history
from collector.sim.world import CAR_VEHICLE, EVCC_SITE, GOE_SERIAL
from collector.store import Store

END = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)   # the car left at 07:30
NS = 1_000_000_000


def _ns(when: datetime) -> int:
    return int(when.timestamp()) * NS


def _points(store: Store, measurement: str, **tags: str) -> list:
    return [p for chunk in store.query(measurement, tags=tags or None) for p in chunk]


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory):
    """Two days of history in an embedded store, and the counts the generator returned."""
    store = Store(tmp_path_factory.mktemp("history") / "s.db", synchronous="normal")
    counts = generate_history(store, END - timedelta(days=2), END, seed=1)
    yield store, counts
    store.close()


def test_counts_are_the_points_stored_for_every_source(days):
    store, counts = days
    assert counts == store.counts()
    for measurement in ("goe_status", "evcc_site", "evcc_loadpoint", "evcc_session", "evcc_tariff",
                        "evenergy_status", "evenergy_command", "ovms_charge", "ovms_vehicle",
                        "ovms_location", "ovms_tpms", "ovms_trip", "ovms_grid"):
        assert counts.get(measurement, 0) > 0, measurement
    assert counts["goe_status"] == 2 * 86400 // 10          # one charger at 10 s
    assert counts["evcc_site"] == 2 * 86400 // 30           # evcc's default state interval


def test_every_point_lies_in_the_window_except_the_forecasts(days):
    store, _ = days
    start, end = _ns(END - timedelta(days=2)), _ns(END)
    for measurement in store.counts():
        times = [p.time_ns for p in _points(store, measurement)]
        if measurement == "evcc_tariff":
            assert min(times) >= start - 3600 * NS   # the rate running at the first fetch
            continue
        if measurement.startswith("ovms_"):
            # The first poll finds the car's last message, up to 10 minutes old.
            assert start - 600 * NS <= min(times) and max(times) < end, measurement
            continue
        assert start <= min(times) and max(times) < end, measurement


def test_one_charging_session_is_the_same_in_goe_evcc_and_ovms(days):
    store, _ = days
    goe = _points(store, "goe_status", serial=GOE_SERIAL)
    start = next(n for n, p in enumerate(goe) if p.fields["car_state"] == 2)
    stop = next(n for n, p in enumerate(goe) if n > start and p.fields["car_state"] != 2)
    first, last = goe[start].time_ns, goe[stop - 1].time_ns   # the first evening's charge
    session = [p for p in _points(store, "evcc_session", site=EVCC_SITE, loadpoint_title="Garage")
               if p.time_ns <= first <= p.time_ns + p.fields["connected_duration_s"] * NS]
    assert len(session) == 1
    evcc = session[0]
    # go-e samples every 10 s: its first and last charging sample are within 10 s of evcc's.
    assert 0 <= first - evcc.time_ns < 10 * NS
    assert abs(last - (evcc.time_ns + evcc.fields["charge_duration_s"] * NS)) <= 10 * NS
    after = [p for p in goe if p.time_ns > last and p.fields["car_state"] == 4][0]
    assert after.fields["energy_session_wh"] == pytest.approx(evcc.fields["energy_wh"], rel=0.01)
    grid = [p for p in _points(store, "ovms_grid", vehicle=CAR_VEHICLE)
            if abs(p.time_ns - evcc.time_ns) < 5 * NS]
    assert [p.fields["charge_state"] for p in grid] == ["charging"]
    assert evcc.fields["soc_end_pct"] > evcc.fields["soc_start_pct"]
    # evcc's loadpoint sees the same car: charging power and the OVMS car's SoC.
    lp = [p for p in _points(store, "evcc_loadpoint", site=EVCC_SITE)
          if first < p.time_ns < last and p.fields.get("charge_power_w")]
    assert lp and all(p.fields["charge_power_w"] == pytest.approx(7200.0) for p in lp)


def test_the_same_seed_gives_the_same_points_and_another_seed_does_not(tmp_path):
    start, end = END - timedelta(hours=3), END

    def dump(seed: int, name: str) -> dict:
        store = Store(tmp_path / name, synchronous="normal")
        generate_history(store, start, end, seed=seed)
        out = {m: [(p.tags, p.time_ns, p.fields) for p in _points(store, m)] for m in store.counts()}
        store.close()
        return out

    first = dump(1, "a.db")
    assert dump(1, "b.db") == first
    assert dump(2, "c.db")["goe_status"] != first["goe_status"]


def test_overlapping_windows_agree_on_counters(days, tmp_path):
    """Counters count from a fixed anchor, so a shorter history holds the same values."""
    store, _ = days
    short = Store(tmp_path / "short.db")
    generate_history(short, END - timedelta(hours=1), END, seed=1)
    window = (_ns(END - timedelta(hours=1)), _ns(END))
    for measurement in ("goe_status", "evcc_site", "ovms_charge"):
        long = [(p.tags, p.time_ns, p.fields) for chunk in store.query(measurement, *window) for p in chunk]
        assert [(p.tags, p.time_ns, p.fields) for p in _points(short, measurement)] == long
    short.close()


def test_cursors_are_left_where_a_collector_would_carry_on(days):
    store, _ = days
    cursors = store.cursors()
    assert cursors[f"evcc:{EVCC_SITE}:sessions"] < END.strftime("%Y-%m-%dT%H:%M:%S")
    assert any(k.startswith("evenergy:") and k.endswith(":status_logs") for k in cursors)
    assert cursors[f"ovms:{CAR_VEHICLE}:units"] == "K"
    last_trip = cursors[f"ovms:{CAR_VEHICLE}:history:*-LOG-Trip"]
    assert last_trip < END.strftime("%Y-%m-%d %H:%M:%S")


def test_bounds_must_be_aware_and_ordered(tmp_path):
    store = Store(tmp_path / "s.db")
    with pytest.raises(ValueError, match="timezone-aware"):
        generate_history(store, datetime(2026, 1, 1), datetime(2026, 1, 2))
    with pytest.raises(ValueError, match="not after"):
        generate_history(store, END, END)
    assert store.counts() == {}
    store.close()
