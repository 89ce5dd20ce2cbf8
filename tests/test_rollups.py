"""Daily and monthly rollups: energy by interpolated meter deltas, local days, months, late data.

The job runs over a real local store through its public interface (`RollupJob.run`), and the
expected values are worked out independently from the samples the test wrote.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from collector.config import ConfigError, parse_config
from collector.health import Health
from collector.points import Point
from collector.rollups import ROLLUP_DAILY, ROLLUP_MONTHLY
from collector.rollups.compute import Names
from collector.rollups.config import RollupsSection
from collector.rollups.job import MARK, RollupJob, names_from
from collector.rollups.periods import day, days, month
from collector.rollups.series import counter_cumulative, parked_per_period
from collector.sessions.config import SessionsSection
from collector.store import Store
from collector.writer import PointWriter

S = 10**9
BERLIN = ZoneInfo("Europe/Berlin")


def ts(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp()) * S


def goe_meter(times_s: list[int], wh: list[float], serial: str = "012345") -> list[Point]:
    return [Point("goe_status", {"serial": serial}, {"energy_total_wh": int(v)}, int(t) * S)
            for t, v in zip(times_s, wh)]


def run(store: Store, now_ns: int, zone: str = "Europe/Berlin", names: Names | None = None) -> None:
    job = RollupJob(RollupsSection(timezone=zone), store, PointWriter(store, Health()), names)
    asyncio.run(job.run(now_ns))


def stored(store: Store, measurement: str) -> dict[tuple, Point]:
    """(kind, name, period) -> point."""
    out = {}
    for chunk in store.query(measurement):
        for p in chunk:
            key = (p.tags["kind"], p.tags["name"], p.fields["period"])
            assert key not in out, f"two points for {key}"
            out[key] = Point(p.measurement, p.tags, p.fields, p.time_ns)
    return out


def interpolated(times_s: np.ndarray, wh: np.ndarray, at_ns: int) -> float:
    """The meter at `at_ns`, linear between the samples either side, worked out by hand."""
    at = at_ns / S
    after = int(np.searchsorted(times_s, at))
    t0, t1, v0, v1 = times_s[after - 1], times_s[after], wh[after - 1], wh[after]
    return float(v0 + (v1 - v0) * (at - t0) / (t1 - t0))


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "r.db")
    yield s
    s.close()


def irregular_meter(start_s: int, end_s: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Samples 3 to 17 minutes apart; power changes at every sample (0 to 11 kW)."""
    rng = np.random.default_rng(seed)
    times, wh, t, v = [], [], start_s, 1_000_000.0
    while t < end_s:
        times.append(t)
        wh.append(float(int(v)))
        step = int(rng.integers(180, 1020))
        v += rng.choice([0.0, 3700.0, 11000.0]) * step / 3600
        t += step
    return np.array(times), np.array(wh)


def test_a_days_energy_is_the_meter_delta_between_the_interpolated_midnights(store):
    times, wh = irregular_meter(ts("2026-03-02T18:00:00+01:00") // S, ts("2026-03-06T02:00:00+01:00") // S)
    store.append(goe_meter(list(times), list(wh)))
    run(store, ts("2026-03-06T02:00:00+01:00"))
    points = stored(store, "rollup_daily")
    for label in ("2026-03-03", "2026-03-04", "2026-03-05"):
        d = day(datetime.fromisoformat(label).date(), BERLIN)
        expected = interpolated(times, wh, d.end_ns) - interpolated(times, wh, d.start_ns)
        point = points[("charger", "goe:012345", label)]
        assert point.time_ns == d.start_ns                  # local midnight, Berlin
        assert point.fields["energy_wh"] == pytest.approx(expected, abs=1e-3)
    # nothing lost between days: the days add up to the meter's interpolated span
    span = interpolated(times, wh, day(datetime(2026, 3, 5).date(), BERLIN).end_ns) - \
        interpolated(times, wh, day(datetime(2026, 3, 3).date(), BERLIN).start_ns)
    assert sum(points[("charger", "goe:012345", f"2026-03-0{k}")].fields["energy_wh"]
               for k in (3, 4, 5)) == pytest.approx(span, abs=1e-3)


def test_the_days_of_a_month_add_up_to_the_month(store):
    times, wh = irregular_meter(ts("2026-02-26T00:00:00+01:00") // S, ts("2026-04-03T00:00:00+02:00") // S)
    store.append(goe_meter(list(times), list(wh)))
    run(store, ts("2026-04-03T00:00:00+02:00"))
    daily = stored(store, "rollup_daily")
    monthly = stored(store, "rollup_monthly")
    march = month(datetime(2026, 3, 1).date(), BERLIN)
    march_days = [v for (kind, _, label), v in daily.items() if label.startswith("2026-03")]
    assert len(march_days) == 31
    total = monthly[("charger", "goe:012345", "2026-03")]
    assert total.time_ns == march.start_ns and total.fields["hours"] == 743.0     # one DST day
    assert total.fields["energy_wh"] == pytest.approx(sum(p.fields["energy_wh"] for p in march_days), abs=1e-3)
    assert total.fields["energy_wh"] == pytest.approx(
        interpolated(times, wh, march.end_ns) - interpolated(times, wh, march.start_ns), abs=1e-3)
    assert {label for (_, _, label) in monthly} == {"2026-02", "2026-03", "2026-04"}


def test_dst_days_have_23_and_25_hours(store):
    """1 kWh per hour all year: the days the clocks change hold 23 and 25 kWh."""
    start, end = ts("2026-03-27T00:00:00+01:00") // S, ts("2026-10-28T00:00:00+01:00") // S
    hours = np.arange(start, end, 3600)
    store.append(goe_meter(list(hours), [1000.0 * k for k in range(len(hours))]))
    run(store, end * S)
    daily = stored(store, "rollup_daily")
    for label, length in (("2026-03-28", 24), ("2026-03-29", 23), ("2026-03-30", 24),
                          ("2026-10-25", 25), ("2026-10-26", 24)):
        point = daily[("charger", "goe:012345", label)]
        assert point.fields["hours"] == length
        assert point.fields["energy_wh"] == pytest.approx(1000.0 * length)


def test_late_data_recomputes_the_day_and_overwrites_the_same_point(store):
    """The collector was down from 20:00 to 08:00: the first run books the gap's energy where
    it sees it; the hours that arrive later (a backfill) move it to the right day."""
    base = ts("2026-03-10T00:00:00+01:00") // S
    before = [base + 20 * 3600 + k * 600 for k in range(6)]            # 20:00-20:50
    after = [base + 32 * 3600 + k * 600 for k in range(6)]             # next day 08:00-08:50
    store.append(goe_meter(before + after, [1000.0 + 100 * k for k in range(6)] +
                           [5000.0 + 100 * k for k in range(6)]))
    run(store, (base + 33 * 3600) * S)
    first = stored(store, "rollup_daily")
    day10, day11 = ("charger", "goe:012345", "2026-03-10"), ("charger", "goe:012345", "2026-03-11")
    # the jump of 3,500 Wh between 20:50 and 08:00 is spread over that time: 3h10 before midnight
    assert first[day10].fields["energy_wh"] == pytest.approx(500 + 3500 * 190 / 670, abs=1e-3)
    late = [base + 21 * 3600 + k * 600 for k in range(6 * 11)]         # 21:00 to 07:50, late
    store.append(goe_meter(late, [1500.0 + 50 * k for k in range(len(late))]))
    run(store, (base + 33 * 3600) * S)
    second = stored(store, "rollup_daily")
    assert second[day10].time_ns == first[day10].time_ns                 # the same point, overwritten
    # now the meter is known every 10 minutes: 2,400 Wh at midnight
    assert second[day10].fields["energy_wh"] == pytest.approx(2400.0 - 1000.0, abs=1e-3)
    assert second[day10].fields["energy_wh"] + second[day11].fields["energy_wh"] == pytest.approx(
        first[day10].fields["energy_wh"] + first[day11].fields["energy_wh"], abs=1e-3)
    [march] = [p for k, p in stored(store, "rollup_monthly").items() if k[2] == "2026-03"]
    assert march.fields["energy_wh"] == pytest.approx(5500.0 - 1000.0, abs=1e-3)
    # nothing new: the next run writes nothing (same values, nothing shipped again)
    # (the mark may move past the rollups' own rewrites: a changed row takes a new seq)
    pending = store.pending_count()
    assert pending > 0
    before_count = store.counts()
    run(store, (base + 33 * 3600) * S)
    assert store.counts() == before_count and store.pending_count() == pending
    mark = store.cursor(MARK)
    run(store, (base + 33 * 3600) * S)
    assert store.cursor(MARK) == mark


def test_a_counter_that_restarts_adds_its_increments(store):
    """A meter that drops by more than noise restarted (a replaced meter, go-e's per-connection
    counters): the value after the drop is energy since the restart; small drops are noise."""
    values = np.array([0.0, 500, 1200, 1199.5, 1200, 0, 300, 900, 20])
    assert list(counter_cumulative(values)) == [0, 500, 1200, 1200, 1200, 1200, 1500, 2100, 2120]
    t0 = ts("2026-05-04T12:00:00+02:00")
    store.append([Point("evcc_site", {"site": "home"}, {"pv_energy_wh": float(5000.0 + v if k < 5 else v)},
                        t0 + k * 900 * S) for k, v in enumerate(values)])
    run(store, t0 + 9 * 900 * S)
    [point] = [p for k, p in stored(store, "rollup_daily").items() if k[:2] == ("site", "home")]
    assert point.fields["pv_energy_wh"] == 2120.0


def test_lifetime_meters_are_read_around_midnight_only(store):
    """A charger polled every second: the job reads the samples either side of each midnight,
    not the 86,400 of each day, and gets the same energy."""
    from collector.query.samples import store_samples

    start = ts("2026-05-03T22:00:00+02:00") // S
    seconds = list(range(start, start + 26 * 3600 + 2))
    store.append(goe_meter(seconds, [1000.0 + k * 0.5 for k in range(len(seconds))]))
    midnight = day(datetime(2026, 5, 4).date(), BERLIN)
    [series] = store_samples(store)("goe_status", ["energy_total_wh"], midnight.start_ns, midnight.end_ns,
                                    at=[midnight.start_ns, midnight.end_ns])
    assert len(series.t_ns) == 4 and series.t_ns[1] == midnight.start_ns
    run(store, (start + 26 * 3600) * S)
    assert stored(store, "rollup_daily")[("charger", "goe:012345", "2026-05-04")].fields["energy_wh"] == \
        pytest.approx(0.5 * 86400, abs=1.0)                 # the meter counts whole Wh


def test_names_follow_the_sessions_configuration_and_the_first_identity_wins(store):
    t0 = ts("2026-05-04T10:00:00+02:00")
    store.append(goe_meter([t0 // S, t0 // S + 3600], [1000.0, 4000.0], serial="012345"))
    store.append([Point("evcc_loadpoint", {"site": "home", "loadpoint": "1", "loadpoint_title": "Garage"},
                        {"charge_total_import_wh": v}, t) for t, v in ((t0, 50_000.0), (t0 + 3600 * S, 53_100.0))])
    store.append([Point("charging_session", {"charger": "garage"},
                        {"energy_wh": 3000.0, "solar_energy_wh": 1000.0, "grid_energy_wh": 2000.0,
                         "cost": 0.6, "vehicle": "car", "vehicle_energy_wh": 2700.0, "currency": "EUR"},
                        t0)])
    sessions = SessionsSection(chargers={"garage": {"goe": "012345", "evcc": "home/Garage", "vehicles": ["car"]}},
                               vehicles={"car": {"ovms": "CAR1"}})
    run(store, t0 + 2 * 3600 * S, names=names_from(sessions))
    daily = {(k[0], k[1]): p.fields for k, p in stored(store, "rollup_daily").items()}
    assert daily[("charger", "garage")]["energy_wh"] == 3000.0         # go-e, configured first
    assert daily[("charger", "garage")]["sessions"] == 1 and daily[("charger", "garage")]["cost"] == 0.6
    assert daily[("loadpoint", "home/Garage")]["energy_wh"] == 3100.0  # evcc's own view stays
    vehicle = daily[("vehicle", "car")]
    assert vehicle["session_energy_wh"] == 3000.0 and vehicle["efficiency_pct"] == 90.0
    assert vehicle["currency"] == "EUR"


def test_vampire_drain_counts_parked_stretches_only():
    h = 3600 * S
    t = np.array([0, 1, 2, 3, 4, 5, 6], dtype=np.int64) * h
    soc = np.array([80.0, 79.0, 78.5, 70.0, 69.0, 69.2, 68.0])
    # the car is switched on from 2.5 h to 2.9 h: the 8.5 % used from 2 h to 3 h is not drain
    car_on = (np.array([1800, 9000, 10440], dtype=np.int64) * S, np.array([False, True, False]))
    bounds = np.array([0, 6], dtype=np.int64) * h
    hours, lost, _ = parked_per_period(t, soc, [], [car_on], bounds, 86400.0)
    assert hours[0] == pytest.approx(4.0)       # 0-1: state not known yet; 2-3: driving
    assert lost[0] == pytest.approx(0.5 + 1.0 - 0.2 + 1.2)     # a rise while parked offsets drops


def test_a_session_rewritten_in_place_is_rolled_up_again(store):
    """The sessions job joins late vehicle data into an existing session: the same row, so no
    new row id, yet the day's cost and efficiency must follow."""
    t0 = ts("2026-05-04T19:00:00+02:00")
    session = {"energy_wh": 3000.0, "cost": 0.6, "vehicle": "car"}
    store.append([Point("charging_session", {"charger": "garage"}, session, t0)])
    run(store, t0 + 3600 * S)
    store.append([Point("charging_session", {"charger": "garage"},
                        {**session, "cost": 0.75, "vehicle_energy_wh": 2700.0}, t0)])
    run(store, t0 + 2 * 3600 * S)
    daily = {k[:2]: p.fields for k, p in stored(store, "rollup_daily").items()}
    assert daily[("charger", "garage")]["cost"] == 0.75
    assert daily[("vehicle", "car")]["efficiency_pct"] == 90.0
    assert stored(store, "rollup_monthly")[("vehicle", "car", "2026-05")].fields["cost"] == 0.75


def test_an_unchanged_week_of_sessions_recomputes_nothing_as_time_passes(store):
    """The digests cover whole local days: a week-old session leaving the window as time moves
    on must not look like a rewrite."""
    t0 = ts("2026-05-04T19:00:00+02:00")
    store.append([Point("charging_session", {"charger": "garage"}, {"energy_wh": 1000.0 * k}, t0 + k * 86400 * S)
                  for k in range(1, 9)])
    job = RollupJob(RollupsSection(timezone="Europe/Berlin"), store, None)
    job.run_now(t0 + 9 * 86400 * S)
    for hours in range(1, 30, 4):
        points, _ = job.compute(t0 + 9 * 86400 * S + hours * 3600 * S)
        assert points == [], hours
        job.run_now(t0 + 9 * 86400 * S + hours * 3600 * S)


def test_days_older_than_the_store_keeps_are_not_recomputed(store, caplog):
    """With InfluxDB the store prunes samples after store.retention: a backfill of older data
    must not overwrite a complete day with one computed from what is left."""
    day1 = ts("2026-05-01T00:00:00+02:00") // S
    store.append(goe_meter([day1 - 600, day1 + 86400 + 600], [1000.0, 25_000.0]))
    now = (day1 + 3 * 86400) * S
    job = RollupJob(RollupsSection(timezone="Europe/Berlin"), store, PointWriter(store, Health()))
    asyncio.run(job.run(now))
    [before] = [p for k, p in stored(store, "rollup_daily").items() if k[2] == "2026-05-01"]
    later = (day1 + 10 * 86400) * S
    store.mark_shipped(store.next_batch(1000))
    assert store.prune_shipped(later - 7 * 86400 * S, keep=(ROLLUP_DAILY.name, ROLLUP_MONTHLY.name)) == 2
    store.append(goe_meter([day1 + 43200], [2000.0]))         # arrives ten days later
    with caplog.at_level(logging.INFO, logger="collector.rollups.job"):
        asyncio.run(job.run(later))
    [after] = [p for k, p in stored(store, "rollup_daily").items() if k[2] == "2026-05-01"]
    assert after.fields == before.fields
    assert "no longer holds every sample" in caplog.text


def test_rows_the_rollups_do_not_read_trigger_nothing(store):
    t0 = ts("2026-05-04T10:00:00+02:00")
    store.append(goe_meter([t0 // S, t0 // S + 3600], [1000.0, 4000.0]))
    run(store, t0 + 2 * 3600 * S)
    counts = store.counts()
    store.append([Point("collector_health", {"source": "goe"}, {"polls": 3}, t0 + 3 * 3600 * S)])
    job = RollupJob(RollupsSection(timezone="Europe/Berlin"), store, None)
    points, cursors = job.compute(t0 + 4 * 3600 * S)
    assert points == [] and int(cursors[MARK]) > 0
    assert store.counts() == {**counts, "collector_health": 1}


def test_a_store_without_new_rows_costs_nothing_and_rollups_survive_pruning(store):
    t0 = ts("2026-05-04T10:00:00+02:00")
    store.append(goe_meter([t0 // S, t0 // S + 3600], [1000.0, 4000.0]))
    run(store, t0 + 2 * 3600 * S)
    batch = store.next_batch(1000)
    store.mark_shipped(batch)
    assert store.pruned_before() is None
    assert store.prune_shipped(t0 + 10 * 86400 * S, keep=(ROLLUP_DAILY.name, ROLLUP_MONTHLY.name)) == 2
    assert set(store.counts()) == {"rollup_daily", "rollup_monthly"}
    assert store.pruned_before() == t0 + 10 * 86400 * S          # what later runs must not redo
    assert store.prune_shipped(t0 - 30 * 86400 * S) == 0                  # nothing that old: unchanged
    assert store.pruned_before() == t0 + 10 * 86400 * S


def test_a_changed_time_zone_recomputes_at_the_new_midnights(store, caplog):
    t0 = ts("2026-05-04T10:00:00+02:00")
    store.append(goe_meter([t0 // S, t0 // S + 3600], [1000.0, 4000.0]))
    run(store, t0 + 2 * 3600 * S, zone="Europe/Berlin")
    with caplog.at_level(logging.WARNING):
        run(store, t0 + 2 * 3600 * S, zone="America/New_York")
    assert "time zone changed from Europe/Berlin to America/New_York" in caplog.text
    starts = {p.time_ns for chunk in store.query("rollup_daily") for p in chunk}
    assert day(datetime(2026, 5, 4).date(), ZoneInfo("America/New_York")).start_ns in starts


def test_local_days_cover_a_range_in_order():
    labels = [p.label for p in days(ts("2026-10-24T12:00:00+02:00"), ts("2026-10-26T01:00:00+01:00"), BERLIN)]
    assert labels == ["2026-10-24", "2026-10-25", "2026-10-26"]


def test_rollups_are_on_by_default_and_a_bad_zone_is_named():
    config = parse_config({})
    assert config.rollups.enabled and config.rollups.interval == 300.0
    with pytest.raises(ConfigError, match=r"rollups.timezone: unknown time zone 'Mars/Olympus'"):
        parse_config({"rollups": {"timezone": "Mars/Olympus"}})


def test_the_collector_runs_the_rollup_job(tmp_path):
    from collector.app import Collector

    config = parse_config({"store": {"path": str(tmp_path / "c.db")}, "rollups": {"interval": "10m"}})
    collector = Collector(config)
    try:
        [job] = [j for j in collector.jobs() if j.id == "collector:rollups"]
        assert job.interval == 600.0
    finally:
        collector.close()
    config = parse_config({"store": {"path": str(tmp_path / "d.db")}, "rollups": {"enabled": False}})
    collector = Collector(config)
    try:
        assert not [j for j in collector.jobs() if j.id == "collector:rollups"]
    finally:
        collector.close()
