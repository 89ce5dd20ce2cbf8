"""The sessions job over the local store: cursor, windows, late vehicle data, idempotence."""

from __future__ import annotations

import asyncio

from collector.health import Health
from collector.points import Point
from collector.sessions.config import SessionsSection
from collector.sessions.job import CURSOR, SessionDeriver, derive_range, store_reader
from collector.store import Store
from collector.writer import PointWriter
from tests.sessions.timelines import S, goe, ovms_grid, ts

CFG = SessionsSection(tariff="fixed", price=0.25, chargers={"garage": {"goe": "012345", "vehicles": ["ioniq"]}},
                      vehicles={"ioniq": {"ovms": "IONIQ1"}})


def _as_points(stored):
    return [Point(p.measurement, p.tags, p.fields, p.time_ns) for p in stored]


def _sessions(store):
    return [p for chunk in store.query("charging_session") for p in chunk]


def test_job_writes_sessions_with_cursor_and_late_vehicle_data_overwrites(tmp_path):
    store = Store(tmp_path / "s.db")
    start = ts("2026-03-02T18:00:00+00:00")
    store.append(_as_points(goe(start, [(300, 1, 0), (3600, 2, 11000), (300, 1, 0)])))
    now = start + 86400 * S
    deriver = SessionDeriver(CFG, store, PointWriter(store, Health()))
    asyncio.run(deriver.run(now))
    [first] = _sessions(store)
    assert first.tags == {"charger": "garage"} and "soc_end_pct" not in first.fields
    assert store.cursor(CURSOR) == str(now)     # derived up to the run's time, with the points
    # OVMS history arrives later; the next run joins it into the same point
    store.append(_as_points(ovms_grid("IONIQ1", [
        (start - 600 * S, "stopped", {"soc_pct": 30.0}),
        (start + 300 * S, "charging", {"soc_pct": 30.0}),
        (start + 3900 * S, "done", {"soc_pct": 44.0, "charge_energy_wh": 9900.0})])))
    asyncio.run(deriver.run(now))
    [joined] = _sessions(store)
    assert joined.time_ns == first.time_ns
    assert joined.fields["soc_end_pct"] == 44.0 and joined.fields["efficiency_pct"] > 0
    asyncio.run(deriver.run(now))
    assert len(_sessions(store)) == 1
    store.close()


def test_windows_cover_a_long_history_once(tmp_path):
    store = Store(tmp_path / "s.db")
    day = [(3600 * 18, 1, 0), (3600 * 3, 2, 3000), (3600 * 3, 1, 0)]
    start = ts("2026-01-01T00:00:00+00:00")
    store.append(_as_points(goe(start, day * 40, step_s=600)))
    points = derive_range(CFG, store_reader(store), start, start + 41 * 86400 * S)
    assert len(points) == 40
    assert len({p.time_ns for p in points}) == 40
    store.close()


def test_evenergy_from_the_store_booleans_survive_sql_extraction(tmp_path):
    store = Store(tmp_path / "s.db")
    t0 = ts("2026-03-02T18:00:00+00:00")
    store.append([Point("evenergy_status", {"evse": "evse1"},
                        {"plugged_in": 0 < k < 8, "charging": 0 < k < 7,
                         "meter_energy_wh": 1000.0 + 500 * min(k, 6), "soc_pct": 50.0 + k},
                        t0 + k * 300 * S)
                  for k in range(10)])
    [point] = derive_range(CFG, store_reader(store), t0, t0 + 86400 * S)
    assert point.tags == {"charger": "evenergy:evse1"}
    assert point.fields["energy_wh"] == 3000.0 and point.fields["cost"] == 0.75
    assert point.fields["charge_duration_s"] == 1800.0   # charging seen from log 1 to log 7
    store.close()
