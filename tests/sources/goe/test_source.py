"""The go-e jobs through public interfaces: limiter, dedupe on last-modified, outcomes, config."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
from freezegun import freeze_time

from collector.config import ConfigError, parse_config
from collector.config_types import Secret
from collector.health import Health
from collector.limits import Limits
from collector.schedule import JobRunner
from collector.sim.base import SimResponse, mock_transport
from collector.sim.goe import GoeSimulator
from collector.sources.base import SourceContext
from collector.sources.goe import build
from collector.sources.goe.client import Charger, GoeClient
from collector.sources.goe.source import StatusPoller
from collector.store import Store
from collector.writer import PointWriter

TOKEN = "tok-2718281828"


def context(tmp_path: Path, sim: GoeSimulator, store: Store | None = None) -> SourceContext:
    store = store or Store(tmp_path / "store.db")
    health = Health()
    # A clock looked up at each call, so freezegun drives the limiter.
    return SourceContext(cursors=store, writer=PointWriter(store, health),
                         limits=Limits(clock=lambda: time.time()), health=health,
                         http_transport=mock_transport(sim))


def goe_config(**overrides):
    section = {"chargers": [{"serial": "000001", "token": TOKEN},
                            {"serial": "000002", "api": "local", "host": "http://sim/local/000002"}]}
    section.update(overrides)
    return parse_config({"sources": {"goe": section}}).sources.goe


def stored(store: Store, serial: str | None = None) -> list:
    tags = {"serial": serial} if serial else None
    return [p for chunk in store.query("goe_status", tags=tags) for p in chunk]


def test_twenty_jobs_at_0_2_s_for_one_charger_send_at_most_one_request_per_second(tmp_path) -> None:
    sim = GoeSimulator.fleet(1, token=TOKEN)
    charger = Charger("000001", "cloud", token=Secret(TOKEN, "test"))

    async def scenario(frozen) -> list:
        ctx = context(tmp_path, sim)
        async with ctx.http_client() as http:
            client = GoeClient(http)
            # slack 0.1 (default 3/4 of the interval): the refused polls that wait it out sleep in real time
            # here, since asyncio runs on the real clock; a smaller slack keeps the test fast.
            jobs = [StatusPoller(charger, client, ctx, interval=0.2, slack=0.1).job()
                    for _ in range(20)]
            runner = JobRunner(ctx.health)
            start = time.time()
            # Each job is due every 0.2 s, the jobs spread over the first 0.2 s; the clock moves
            # in steps of 0.05 s for 6 simulated seconds.
            due = [start + 0.01 * n for n in range(20)]
            for _ in range(120):
                now = time.time()
                ready = [n for n in range(20) if due[n] <= now]
                await asyncio.gather(*(runner.run(jobs[n]) for n in ready))
                for n in ready:
                    due[n] += jobs[n].interval
                frozen.tick(0.05)
        return [ctx.health.get("goe", name) for name in ("polls", "polls_skipped")]

    with freeze_time("2026-11-21 09:30:00.000", real_asyncio=True) as frozen:
        polls, skipped = asyncio.run(scenario(frozen))
    times = sim.request_times["000001"]
    assert polls >= 20 * 25                    # every job ran about 30 times
    assert 5 <= len(times) <= 7                # ~6 simulated seconds, one request each
    assert skipped == polls - len(times)       # every other run was skipped, and counted
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= 1.0 - 1e-9
    for second in range(int(times[0]), int(times[-1]) + 1):
        assert sum(1 for t in times if second <= t < second + 1) <= 1


def test_unchanged_last_modified_is_not_written_twice_and_survives_a_restart(tmp_path) -> None:
    sim = GoeSimulator.fleet(2, token=TOKEN)

    async def poll(source, frozen, seconds: float = 1.0) -> None:
        runner = JobRunner(source.ctx.health)
        await runner.run(source.jobs()[0])
        frozen.tick(seconds)

    with freeze_time("2026-11-21 09:30:00.200") as frozen:
        store = Store(tmp_path / "store.db")
        ctx = context(tmp_path, sim, store)
        source = build(goe_config(), ctx)

        async def first_run():
            await poll(source, frozen, 0.0)        # 09:30:00 written
            sim.set_offline("000001")              # the charger stops sending
            frozen.tick(1.0)
            for _ in range(3):
                await poll(source, frozen)         # the cloud repeats the 09:30:00 status
            await source.close()

        asyncio.run(first_run())
        points = stored(store, "000001")
        assert [p.time_ns for p in points] == [1795253400_000000000]
        assert ctx.health.get("goe", "no_data") == 3
        assert ctx.health.get("goe", "points") == 1
        assert source.pollers[0].last_outcome == "unchanged"

        # A restart (new process state, same store) still knows the last time written.
        ctx2 = context(tmp_path, sim, store)
        source2 = build(goe_config(), ctx2)

        async def second_run():
            await poll(source2, frozen)
            sim.set_offline("000001", False)
            await poll(source2, frozen)
            await source2.close()

        asyncio.run(second_run())
        assert ctx2.health.get("goe", "no_data") == 1
        assert ctx2.health.get("goe", "points") == 1
        times = [p.time_ns for p in stored(store, "000001")]
        assert times == [1795253400_000000000, 1795253405_000000000]
        store.close()


def test_404_outdated_is_one_warning_per_episode_with_the_age_and_counted(tmp_path, caplog) -> None:
    sim = GoeSimulator.fleet(1, token=TOKEN)
    outdated = SimResponse.json({"success": False, "reason": "Data is outdated", "age": 25382.09}, 404)
    sim.overrides["000001"] = outdated
    ctx = context(tmp_path, sim)
    source = build(goe_config(chargers=[{"serial": "000001", "token": TOKEN}]), ctx)

    async def run():
        runner = JobRunner(ctx.health)
        with freeze_time("2026-11-21 09:30:00") as frozen:
            for second in range(12):
                if second == 5:
                    del sim.overrides["000001"]     # the charger reports again
                if second == 7:
                    sim.overrides["000001"] = outdated
                await runner.run(source.jobs()[0])
                frozen.tick(1.0)
        await source.close()

    with caplog.at_level(logging.INFO):
        asyncio.run(run())
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2, warnings                  # one per episode, not one per poll
    assert all("Data is outdated" in w and "25382.09" in w for w in warnings)
    # the second episode knows how old the newest stored status is
    assert "newest status stored is from 2026-11-21 09:30:06 UTC" in warnings[1]
    assert any("reports again" in r.getMessage() for r in caplog.records)
    assert ctx.health.get("goe", "data_outdated") == 10
    assert ctx.health.get("goe", "no_data") == 10
    assert ctx.health.get("goe", "polls_failed") == 0
    assert len(stored(ctx.writer.store)) == 2


def test_403_is_one_clear_error_line_then_asked_less_and_less_often(tmp_path, caplog) -> None:
    sim = GoeSimulator.fleet(1, token=TOKEN)
    sim.chargers["000001"].cloud_enabled = False
    ctx = context(tmp_path, sim)
    source = build(goe_config(interval="1s", chargers=[{"serial": "000001", "token": TOKEN}]), ctx)

    async def run():
        runner = JobRunner(ctx.health)
        with freeze_time("2026-11-21 09:30:00") as frozen:
            for second in range(700):       # the job fires every second
                if second == 400:
                    sim.chargers["000001"].cloud_enabled = True      # someone fixed it
                await runner.run(source.jobs()[0])
                frozen.tick(1.0)
        await source.close()

    with caplog.at_level(logging.INFO):
        asyncio.run(run())
    # asked at 0, 10, 30, 70, 150, 310 s (the interval doubles up to 5 min), fixed at 400:
    # the next try at 610 s works, and every second after it
    times = sim.request_times["000001"]
    offsets = [round(t - times[0]) for t in times[:7]]
    assert offsets == [0, 10, 30, 70, 150, 310, 610]
    assert len(times) == 7 + 89
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2               # the first, and a reminder after 5 minutes
    assert "offline" in errors[0] and "Cloud API" in errors[0] and "asking again in 10 s" in errors[0]
    assert "repeated 5 times" in errors[1]
    recovered = [r.getMessage() for r in caplog.records if "recovered" in r.getMessage()]
    # a configuration error is about the charger (all its jobs), so the line names the charger
    assert recovered == ["goe:000001: recovered from HTTP 403 (after 6 failures)"]
    assert TOKEN not in caplog.text
    assert not any(r.exc_info for r in caplog.records)
    assert ctx.health.get("goe", "errors_config") == 6
    assert len(stored(ctx.writer.store)) == 90


def test_a_poll_woken_a_little_early_by_the_event_loop_still_goes(tmp_path) -> None:
    # Event-loop timers can fire before the limiter's clock says the second is over (uvloop
    # rounds them to milliseconds). Here the limiter's clock runs 1 % slow, so every sleep ends
    # "early": the poll must wait the rest, not lose its slot.
    sim = GoeSimulator.fleet(1, token=TOKEN)
    store = Store(tmp_path / "store.db")
    health = Health()
    origin = time.monotonic()
    ctx = SourceContext(cursors=store, writer=PointWriter(store, health),
                        limits=Limits(clock=lambda: origin + (time.monotonic() - origin) * 0.99),
                        health=health, http_transport=mock_transport(sim))
    source = build(goe_config(chargers=[{"serial": "000001", "token": TOKEN}]), ctx)

    async def run():
        runner = JobRunner(health)
        job = source.jobs()[0]
        await runner.run(job)
        await asyncio.sleep(0.85)
        await runner.run(job)          # 0.16 s too soon for the limiter: waits, then sends
        await source.close()

    asyncio.run(run())
    times = sim.request_times["000001"]
    assert len(times) == 2 and health.get("goe", "polls_skipped") == 0
    assert times[1] - times[0] >= 1.0


def test_a_poll_the_limiter_refuses_does_not_end_a_failure_episode(tmp_path, caplog) -> None:
    # A refused poll sends nothing, so it says nothing about the charger: the failure after it
    # is the same episode, not a new one logged again after a false "recovered".
    sim = GoeSimulator.fleet(1, token=TOKEN)
    sim.overrides["000001"] = SimResponse.text("upstream broke", 502)
    ctx = context(tmp_path, sim)
    source = build(goe_config(interval="1s", chargers=[{"serial": "000001", "token": TOKEN}]), ctx)

    async def run():
        runner = JobRunner(ctx.health)
        job = source.jobs()[0]
        with freeze_time("2026-11-21 09:30:00") as frozen:
            for _ in range(5):
                await runner.run(job)
                frozen.tick(0.1)          # too soon: refused (0.9 s to wait is most of 1 s)
                await runner.run(job)
                frozen.tick(0.95)
        await source.close()

    with caplog.at_level(logging.INFO):
        asyncio.run(run())
    assert ctx.health.get("goe", "polls_skipped") == 5
    assert ctx.health.get("goe", "errors_transient") == 5
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1
    assert "recovered" not in caplog.text


def test_each_cause_of_failure_is_logged_once_and_recovery_names_them(tmp_path, caplog) -> None:
    sim = GoeSimulator.fleet(1, token=TOKEN)
    ctx = context(tmp_path, sim)
    source = build(goe_config(interval="1s", chargers=[{"serial": "000001", "token": TOKEN}]), ctx)
    answers = [SimResponse.text("", 500), SimResponse.text("", 500), SimResponse(200, b"<html>"),
               SimResponse.text("", 503), SimResponse.text("", 500), None]

    async def run():
        runner = JobRunner(ctx.health)
        with freeze_time("2026-11-21 09:30:00") as frozen:
            for answer in answers:
                if answer is None:
                    sim.overrides.pop("000001", None)
                else:
                    sim.overrides["000001"] = answer
                await runner.run(source.jobs()[0])
                frozen.tick(1.0)
        await source.close()

    with caplog.at_level(logging.INFO):
        asyncio.run(run())
    lines = [r.getMessage() for r in caplog.records if r.name == "collector.schedule"]
    assert [line.split(": ", 2)[-1][:20] for line in lines[:3]] == [
        "HTTP 500", "HTTP 200 but the bod", "HTTP 503"]
    assert lines[3] == ("goe:000001:status: recovered from HTTP 500, bad body, HTTP 503 "
                        "(after 5 failures)")
    assert len(lines) == 4


def test_unusable_last_modified_falls_back_to_poll_time_with_one_warning(tmp_path, caplog) -> None:
    sim = GoeSimulator.fleet(1, token=TOKEN)
    ctx = context(tmp_path, sim)
    source = build(goe_config(chargers=[{"serial": "000001", "token": TOKEN}]), ctx)
    body = {"car": 1, "eto": 100, "fwv": "058.2"}
    sim.overrides["000001"] = SimResponse.json(body, headers={"Last-Modified": "soon"})

    async def run():
        with freeze_time("2026-11-21 09:30:00.250") as frozen:
            for _ in range(3):
                await source.jobs()[0].run()
                frozen.tick(1.0)
        await source.close()

    with caplog.at_level(logging.WARNING):
        asyncio.run(run())
    # Stamped with the poll time, the same status is written on change: once, then again
    # only after the heartbeat.
    assert [p.time_ns for p in stored(ctx.writer.store)] == [1795253400_250000000]
    assert ctx.health.get("goe", "points_unchanged") == 2
    assert len([r for r in caplog.records if "last-modified" in r.getMessage()]) == 1


def test_a_local_status_is_written_on_change_with_a_heartbeat(tmp_path) -> None:
    sim = GoeSimulator.fleet(2, token=TOKEN)
    ctx = context(tmp_path, sim)
    source = build(goe_config(heartbeat="10m"), ctx)
    idle = {"car": 1, "eto": 100, "nrg": [230.1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]}

    async def run():
        with freeze_time("2026-11-21 09:30:00") as frozen:
            for second, body in enumerate([idle] * 3 + [{**idle, "eto": 101}] + [idle] * 2):
                sim.overrides["000002"] = SimResponse.json(body)
                await source.jobs()[1].run()
                frozen.tick(1.0 if second != 4 else 600.0)
        await source.close()

    asyncio.run(run())
    points = stored(ctx.writer.store, "000002")
    # 0: first; 1: unchanged; 2: unchanged, stored with the change after it (the old value's
    # end); 3: eto moved; 4: back to idle (a change); 5: 10 min later
    assert [p.time_ns // 10**9 - 1795253400 for p in points] == [0, 2, 3, 4, 604]
    assert ctx.health.get("goe", "points_unchanged") == 2


def test_local_api_points_carry_the_poll_time(tmp_path) -> None:
    sim = GoeSimulator.fleet(2, token=TOKEN)
    ctx = context(tmp_path, sim)
    source = build(goe_config(), ctx)

    async def run():
        with freeze_time("2026-11-21 09:30:00.750"):
            await source.jobs()[1].run()
        await source.close()

    asyncio.run(run())
    points = stored(ctx.writer.store, "000002")
    assert [p.time_ns for p in points] == [1795253400_750000000]
    assert points[0].fields["car_state"] in (1, 2, 3, 4)


def test_wrong_values_are_counted_and_warned_once(tmp_path, caplog) -> None:
    sim = GoeSimulator.fleet(1, token=TOKEN)
    ctx = context(tmp_path, sim)
    source = build(goe_config(chargers=[{"serial": "000001", "token": TOKEN}]), ctx)

    async def run():
        with freeze_time("2026-11-21 09:30:00") as frozen:
            for second in range(3):
                sim.overrides["000001"] = SimResponse.json(
                    {"car": "two", "eto": 5, "nrg": "broken"},
                    headers={"Last-Modified": f"Sat, 21 Nov 2026 09:30:0{second} GMT"})
                await source.jobs()[0].run()
                frozen.tick(1.0)
        await source.close()

    with caplog.at_level(logging.WARNING):
        asyncio.run(run())
    assert len(stored(ctx.writer.store)) == 3                 # eto survives in each point
    assert ctx.health.get("goe", "errors_payload") == 6  # car and nrg, three times
    warned = [r.getMessage() for r in caplog.records]
    assert sum("car_state" in m for m in warned) == 1
    assert sum("nrg" in m for m in warned) == 1


def test_jobs_one_per_owned_charger_with_its_interval(tmp_path) -> None:
    sim = GoeSimulator.fleet(2, token=TOKEN)
    ctx = context(tmp_path, sim)
    config = goe_config(interval="2s", chargers=[
        {"serial": "000001", "token": TOKEN, "interval": 1},
        {"serial": "000002", "api": "local", "host": "10.0.0.2"}])
    jobs = build(config, ctx).jobs()
    assert [(j.id, j.interval, j.device, j.source) for j in jobs] == [
        ("goe:000001:status", 1.0, "000001", "goe"), ("goe:000002:status", 2.0, "000002", "goe"),
        ("goe:000001:cards", 3600.0, "000001", "goe"), ("goe:000002:cards", 3600.0, "000002", "goe")]
    off = goe_config(cards_interval="0", chargers=[{"serial": "000001", "token": TOKEN}])
    assert [j.id for j in build(off, ctx).jobs()] == ["goe:000001:status"]
    many = goe_config(chargers=[{"serial": f"{n:06d}", "token": TOKEN} for n in range(1, 41)])
    shards = []
    for shard in range(3):
        ctx = context(tmp_path, sim)
        ctx.shard, ctx.shards = shard, 3
        shards.append({j.device for j in build(many, ctx).jobs()})
    assert set().union(*shards) == {f"{n:06d}" for n in range(1, 41)}
    assert sum(len(s) for s in shards) == 40


@pytest.mark.parametrize("section, message", [
    ({"interval": 0.2}, "at least 1s"),
    ({"interval": "500ms"}, "at least 1s"),
    ({"chargers": [{"serial": "000001", "token": TOKEN, "interval": 0.5}]}, "at least 1s"),
    ({"chargers": [{"serial": 12345, "token": TOKEN}]}, 'serial = "012345"'),
    ({"chargers": [{"serial": "12345", "token": TOKEN}]}, "6 digits"),
    ({"chargers": [{"serial": "000001"}]}, "needs token"),
    ({"chargers": [{"serial": "000001", "api": "local"}]}, "needs host"),
    ({"chargers": [{"serial": "000001", "token": TOKEN}, {"serial": "000001", "token": TOKEN}]},
     "listed twice"),
    ({"cloud_url": "https://x/?token=abc"}, "must not carry the token"),
    ({"age": 0}, "must be positive"),
    ({"chargers": []}, "at least 1"),
])
def test_config_rejects_clearly(section, message) -> None:
    base = {"chargers": [{"serial": "000001", "token": TOKEN}]}
    base.update(section)
    with pytest.raises(ConfigError) as info:
        parse_config({"sources": {"goe": base}})
    assert message in str(info.value)
    assert TOKEN not in str(info.value)


def test_config_filter_accepts_a_comma_string_and_empty_means_full_status() -> None:
    assert goe_config(filter="car, nrg,amp").filter == ["car", "nrg", "amp"]
    assert goe_config(filter=[]).filter == []


def test_local_api_v1_charger_is_polled_at_status_and_converted_to_v2_units(tmp_path) -> None:
    sim = GoeSimulator.fleet(3, token=TOKEN)
    ctx = context(tmp_path, sim)
    config = goe_config(chargers=[{"serial": "000003", "api": "local_v1",
                                   "host": "http://sim/local/000003"}])
    source = build(config, ctx)

    async def run():
        with freeze_time("2026-11-21 09:30:00.500"):
            await source.jobs()[0].run()
        await source.close()

    asyncio.run(run())
    [point] = stored(ctx.writer.store, "000003")
    charger = sim.chargers["000003"]
    v2 = charger.state(int(1795253400 - sim.epoch), 1795253400)
    assert point.time_ns == 1795253400_500000000
    assert point.fields["car_state"] == min(max(v2["car"], 1), 4)
    assert point.fields["energy_total_wh"] == v2["eto"] // 100 * 100      # 0.1 kWh resolution
    assert point.fields["energy_session_wh"] == pytest.approx(v2["wh"], abs=0.01)
    assert point.fields["power_w"] == pytest.approx(v2["nrg"][11], abs=10)  # 0.01 kW resolution
    assert point.fields["firmware_version"] == "040"
    assert sim.count("000003") == 1
    with pytest.raises(ConfigError, match="needs host"):
        goe_config(chargers=[{"serial": "000003", "api": "local_v1"}])


def test_429_from_a_proxy_pauses_the_charger_for_its_retry_after(tmp_path) -> None:
    sim = GoeSimulator.fleet(1, token=TOKEN)
    sim.overrides["000001"] = SimResponse.text("slow down", 429, headers={"Retry-After": "5"})
    ctx = context(tmp_path, sim)
    source = build(goe_config(chargers=[{"serial": "000001", "token": TOKEN}]), ctx)

    async def run():
        runner = JobRunner(ctx.health)
        with freeze_time("2026-11-21 09:30:00") as frozen:
            for _ in range(8):
                await runner.run(source.jobs()[0])
                frozen.tick(1.0)
        await source.close()

    asyncio.run(run())
    # t=0 asks and hears 429 Retry-After 5; t=1..4 send nothing; t=5 asks again (429), t=6, 7 wait.
    assert sim.count("000001") == 2
    assert ctx.health.get("goe", "errors_rate_limited") == 2
    assert ctx.health.get("goe", "polls") == 2


def test_check_says_what_works_and_what_does_not(tmp_path) -> None:
    sim = GoeSimulator.fleet(3, token=TOKEN)
    sim.chargers["000003"].cloud_enabled = False
    ctx = context(tmp_path, sim)
    config = goe_config(chargers=[
        {"serial": "000001", "token": TOKEN},
        {"serial": "000002", "api": "local", "host": "http://sim/local/000002"},
        {"serial": "000003", "token": TOKEN}])
    source = build(config, ctx)

    async def run():
        try:
            return await source.check()
        finally:
            await source.close()

    results = asyncio.run(run())
    assert [(r.target, r.ok) for r in results] == [
        ("goe charger 000001 (cloud)", True), ("goe charger 000002 (local)", True),
        ("goe charger 000003 (cloud)", False)]
    assert "last-modified" in results[0].detail and "firmware" in results[1].detail
    assert "Cloud API" in results[2].detail and TOKEN not in results[2].detail
    assert stored(ctx.writer.store) == []          # a check writes nothing


def test_check_reports_a_serial_mismatch_on_every_api(tmp_path) -> None:
    # Each configured serial reaches another charger of the simulator: the cloud through a
    # proxy URL that routes to 000001, the local APIs through hosts that now belong to others.
    sim = GoeSimulator.fleet(3, token=TOKEN)
    ctx = context(tmp_path, sim)
    config = goe_config(cloud_url="http://sim/000001", filter=["car", "nrg"], chargers=[
        {"serial": "000009", "token": TOKEN},
        {"serial": "000008", "api": "local", "host": "http://sim/local/000002"},
        {"serial": "000007", "api": "local_v1", "host": "http://sim/local/000003"}])
    source = build(config, ctx)

    async def run():
        try:
            return await source.check()
        finally:
            await source.close()

    results = asyncio.run(run())
    assert [(r.target, r.ok) for r in results] == [
        ("goe charger 000009 (cloud)", False), ("goe charger 000008 (local)", False),
        ("goe charger 000007 (local_v1)", False)]
    # `sse` is asked for although the configured filter leaves it out
    for result, other in zip(results, ("000001", "000002", "000003")):
        assert f"reports serial {other}" in result.detail, result.detail


def test_a_status_of_another_charger_is_never_written(tmp_path) -> None:
    sim = GoeSimulator.fleet(2, token=TOKEN)
    ctx = context(tmp_path, sim)
    source = build(goe_config(chargers=[
        {"serial": "000005", "api": "local", "host": "http://sim/local/000001"},
        {"serial": "000002", "api": "local", "host": "http://sim/local/000002"}]), ctx)

    async def run():
        runner = JobRunner(ctx.health)
        try:
            for job in source.jobs():
                await runner.run(job)
        finally:
            await source.close()

    asyncio.run(run())
    assert stored(ctx.writer.store, "000005") == []            # 000001's data, refused
    assert len(stored(ctx.writer.store, "000002")) == 1        # the right charger is written
    assert ctx.health.get("goe", "errors_config") == 1
