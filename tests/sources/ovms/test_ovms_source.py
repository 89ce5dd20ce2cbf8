"""Jobs against the simulator with a real store: sampling, unchanged messages, history sync."""

from __future__ import annotations

import asyncio
import time

import pytest
from freezegun import freeze_time

from collector.http_outcomes import Action, SourceError
from collector.sim.base import SimResponse
from collector.sources import ovms

from collector.poll import Outcome

from .helpers import make_config, make_sim, make_source, rows

PARKED = "2026-11-20 12:03:00"     # DEMO1 parked at work: the module reports every 600 s


def run(coro):
    return asyncio.run(coro)


def test_unchanged_message_time_writes_nothing_new(tmp_path):
    with freeze_time(PARKED) as frozen:
        sim = make_sim()
        source, ctx = make_source(tmp_path / "s.db", sim, vehicles=["DEMO1"])
        assert run(source.sample("DEMO1", "status")) is Outcome.WRITTEN          # ovms_charge + ovms_vehicle
        frozen.tick(30)
        assert run(source.sample("DEMO1", "status")) is Outcome.NO_DATA          # same m_msgtime_s / _d
        assert len(rows(ctx, "ovms_charge")) == 1 and len(rows(ctx, "ovms_vehicle")) == 1
        frozen.tick(600)
        assert run(source.sample("DEMO1", "status")) is Outcome.WRITTEN          # the next report
        assert len(rows(ctx, "ovms_charge")) == 2
        run(source.close())

        # A restart remembers what was collected: the cursor was committed with the points.
        again, ctx2 = make_source(tmp_path / "s.db", sim, vehicles=["DEMO1"])
        frozen.tick(15)
        assert run(again.sample("DEMO1", "status")) is Outcome.NO_DATA
        run(again.close())


def test_point_times_are_the_message_times(tmp_path):
    with freeze_time("2026-11-20 18:45:30"):
        sim = make_sim()
        source, ctx = make_source(tmp_path / "s.db", sim, vehicles=["DEMO1"])
        run(source.sample("DEMO1", "charge"))
        run(source.close())
    [charge] = rows(ctx, "ovms_charge")
    assert charge.time_ns == 1795200300 * 10**9            # 2026-11-20 18:45:00, not the poll time
    # 7.2 kW from the wall, of which 88-92 % reach the battery (`chargepower`)
    assert charge.fields["charge_state"] == "charging" and 7200 * 0.88 <= charge.fields["charge_power_w"] <= 7200 * 0.92


def test_no_record_on_the_server_writes_nothing(tmp_path):
    with freeze_time(PARKED):
        source, ctx = make_source(tmp_path / "s.db", make_sim(), vehicles=["DEMO3"])
        for stream in ("status", "charge", "location", "tpms"):
            assert run(source.sample("DEMO3", stream)) is Outcome.NO_DATA
        run(source.close())
    assert ctx.writer.store.measurements() == []


def test_miles_vehicle_units_are_learnt_and_used_for_location(tmp_path):
    with freeze_time("2026-11-20 07:45:30"):
        sim = make_sim()
        source, ctx = make_source(tmp_path / "s.db", sim, vehicles=["DEMO2"])
        run(source.sample("DEMO2", "status"))
        run(source.sample("DEMO2", "location"))
        run(source.close())
    assert ctx.writer.store.cursor("ovms:DEMO2:units") == "M"
    [location] = rows(ctx, "ovms_location")
    raw_mph = float(sim._location(sim.vehicles["DEMO2"], 1795160730.0)["speed"])
    assert location.fields["speed_kmh"] == pytest.approx(raw_mph * 1.609344)


def test_limiter_skips_a_second_request_within_ten_seconds(tmp_path):
    with freeze_time(PARKED):
        sim = make_sim()
        source, ctx = make_source(tmp_path / "s.db", sim, vehicles=["DEMO1"])
        assert run(source.sample("DEMO1", "tpms")) is Outcome.WRITTEN
        # a skip, not "nothing new": it sent nothing, so it must not end a failure episode
        assert run(source.sample("DEMO1", "tpms")) is Outcome.SKIPPED
        run(source.close())
    assert [p for _, p in sim.requests].count("/api/tpms/DEMO1") == 1
    assert ctx.health.get("ovms", "polls_skipped") == 1


def history_count(sim, vehicle, kind, now):
    return len(sim.history_records(vehicle, now).get(kind, []))


def test_history_sync_is_incremental(tmp_path):
    with freeze_time("2026-11-20 12:00:00") as frozen:
        sim = make_sim(history_days=14)
        source, ctx = make_source(tmp_path / "s.db", sim, vehicles=["DEMO1"])
        first = run(source.sync_history("DEMO1"))
        now = time.time()
        first_trips = {r[0] for r in sim.history_records("DEMO1", now)["*-LOG-Trip"]}
        trips = history_count(sim, "DEMO1", "*-LOG-Trip", now)
        assert len(rows(ctx, "ovms_trip")) == trips > 40
        assert len(rows(ctx, "ovms_grid")) == history_count(sim, "DEMO1", "*-LOG-Grid", now)
        assert len(rows(ctx, "ovms_record", record_type="*-OVM-Utilisation")) == \
            history_count(sim, "DEMO1", "*-OVM-Utilisation", now)
        assert first.records == sum(len(v) for v in sim.history_records("DEMO1", now).values())
        cursor = ctx.writer.store.cursor("ovms:DEMO1:history:*-LOG-Trip")
        assert cursor == sim.history_records("DEMO1", now)["*-LOG-Trip"][-1][0]

        # Nothing new on the server: the summary says so and no type is fetched again.
        before = len(sim.requests)
        frozen.tick(60)
        assert run(source.sync_history("DEMO1")).records == 0
        assert [p for _, p in sim.requests[before:]] == ["/api/historical/DEMO1"]

        # A day later only the new records (and the overlap hour) are read.
        frozen.tick(86400)
        later = run(source.sync_history("DEMO1"))
        assert 0 < later.records < 15
        # The server expired the oldest day meanwhile; the store keeps it.
        latest = {r[0] for r in sim.history_records("DEMO1", time.time())["*-LOG-Trip"]}
        assert len(rows(ctx, "ovms_trip")) == len(first_trips | latest) > len(latest)
        run(source.close())


def test_interrupted_history_sync_resumes_where_it_stopped(tmp_path):
    import time

    with freeze_time("2026-11-20 12:00:00"):
        sim = make_sim(history_days=7)
        real_handle = sim.handle
        broken = {"on": True}

        def flaky(request):
            if broken["on"] and request.path.endswith("*-LOG-Trip"):
                return SimResponse.text("Internal Server Error\n", 500)
            return real_handle(request)

        sim.handle = flaky
        source, ctx = make_source(tmp_path / "s.db", sim, vehicles=["DEMO1"])
        with pytest.raises(SourceError) as info:
            run(source.sync_history("DEMO1"))
        assert info.value.action is Action.RETRY
        run(source.close())
        # Grid (before Trip) is committed with its cursor; Trip and Utilisation are not.
        newest_grid = max(r[0] for r in sim.history_records("DEMO1", time.time())["*-LOG-Grid"])
        assert ctx.writer.store.cursor("ovms:DEMO1:history:*-LOG-Grid") == newest_grid
        assert ctx.writer.store.cursor("ovms:DEMO1:history:*-LOG-Trip") is None
        assert rows(ctx, "ovms_trip") == []

        broken["on"] = False
        again, ctx2 = make_source(tmp_path / "s.db", sim, vehicles=["DEMO1"])
        run(again.sync_history("DEMO1"))
        run(again.close())
        now = time.time()
        for kind, measurement in (("*-LOG-Trip", "ovms_trip"), ("*-LOG-Grid", "ovms_grid")):
            assert len(rows(ctx2, measurement)) == history_count(sim, "DEMO1", kind, now)
        grid_fetches = [p for _, p in sim.requests].count("/api/historical/DEMO1/*-LOG-Grid")
        assert grid_fetches == 1       # not fetched again: its cursor was committed


def test_history_types_restrict_what_is_synced(tmp_path):
    with freeze_time("2026-11-20 12:00:00"):
        source, ctx = make_source(tmp_path / "s.db", make_sim(), vehicles=["DEMO1"],
                                  history_types=["*-LOG-Trip"])
        run(source.sync_history("DEMO1"))
        run(source.close())
    assert rows(ctx, "ovms_trip") and not rows(ctx, "ovms_grid") and not rows(ctx, "ovms_record")


def test_jobs_for_all_vehicles_discover_them(tmp_path):
    with freeze_time(PARKED):
        sim = make_sim()
        source, ctx = make_source(tmp_path / "s.db", sim)
        ids = [job.id for job in source.jobs()]
        assert ids == ["ovms:all:status", "ovms:all:charge", "ovms:all:location", "ovms:all:tpms",
                       "ovms:all:history"]
        run(source.jobs()[0].run())
        assert {p.tags["vehicle"] for p in rows(ctx, "ovms_charge")} == {"DEMO1", "DEMO2"}
        run(source.start())
        assert "ovms:DEMO2:location" in [job.id for job in source.jobs()]
        run(source.close())
    assert sim.logouts == 1


def test_check_reports_each_vehicle(tmp_path):
    with freeze_time(PARKED):
        source, _ = make_source(tmp_path / "s.db", make_sim())
        results = run(source.check())
        run(source.close())
    assert [r.ok for r in results] == [True, True, True, True]
    assert "last status 2026-11-20 12:00:00" in results[1].detail
    assert "no status record" in results[3].detail


def test_check_with_a_wrong_password_fails_clearly(tmp_path):
    with freeze_time(PARKED):
        source, _ = make_source(tmp_path / "s.db", make_sim(users={"demo": "other"}))
        results = run(source.check())
        run(source.close())
    assert not results[0].ok and "check the username and the password" in results[0].detail


def test_config_rejects_intervals_below_the_limits():
    from collector.config import ConfigError

    with pytest.raises(ConfigError, match="interval: must be at least 10 s"):
        make_config(interval="5s")
    with pytest.raises(ConfigError, match="history_interval: must be at least 60 s"):
        make_config(history_interval=30)
    with pytest.raises(ConfigError, match="url"):
        make_config(url="https://user:pw@api.openvehicles.com:6869")
    assert ovms.Config is type(make_config())


def test_location_first_learns_the_units_before_converting(tmp_path):
    with freeze_time("2026-11-20 07:45:30"):
        sim = make_sim()
        source, ctx = make_source(tmp_path / "s.db", sim, vehicles=["DEMO2"], streams=["location"])
        run(source.sample("DEMO2", "location"))
        run(source.close())
    [location] = rows(ctx, "ovms_location")
    raw = sim._location(sim.vehicles["DEMO2"], 1795160730.0)
    assert location.fields["trip_km"] == pytest.approx(int(raw["tripmeter"]) / 10 * 1.609344)
    assert ctx.writer.store.cursor("ovms:DEMO2:units") == "M"


def test_config_refuses_repeated_vehicles():
    from collector.config import ConfigError

    with pytest.raises(ConfigError, match="must not repeat"):
        make_config(vehicles=["A", "A"])


def test_late_records_beyond_the_overlap_need_a_reread(tmp_path):
    with freeze_time("2026-11-20 12:00:00"):
        sim = make_sim(history_days=3)
        source, ctx = make_source(tmp_path / "s.db", sim, vehicles=["DEMO1"], history_overlap="1h")
        run(source.sync_history("DEMO1"))
        cursor = ctx.writer.store.cursor("ovms:DEMO1:history:*-LOG-Trip")
        real = sim.history_records

        def with_late_record(vid, now):
            records = real(vid, now)
            # A module that was offline uploads a trip from yesterday, later than a newer one.
            late = ("2026-11-19 09:00:00", "1", "1,52.0,4.8,0.0,Somewhere,62000.0,5.0,600,0,80.0")
            records["*-LOG-Trip"] = sorted(records["*-LOG-Trip"] + [late])
            records["*-LOG-Trip"].append(("2026-11-20 11:59:00", "1", "0,,,,,62700.0"))  # and a new one
            return records

        sim.history_records = with_late_record
        before = len(rows(ctx, "ovms_trip"))
        run(source.sync_history("DEMO1"))
        assert len(rows(ctx, "ovms_trip")) == before + 1            # the new one only
        assert ctx.writer.store.cursor("ovms:DEMO1:history:*-LOG-Trip") == "2026-11-20 11:59:00" > cursor
        run(source.sync_history("DEMO1", reread=True))
        assert len(rows(ctx, "ovms_trip")) == before + 2            # the late one too, no duplicates
        assert ctx.writer.store.cursor("ovms:DEMO1:history:*-LOG-Trip") == "2026-11-20 11:59:00"
        run(source.close())
