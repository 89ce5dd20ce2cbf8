"""The evcc jobs against the simulator: state, sessions (first, incremental, corrected,
running), tariffs, auth, limits and config validation. Real Store; a settable clock."""

from __future__ import annotations

import asyncio
import re
import logging

import pytest

from collector.config import ConfigError, parse_config
from collector.poll import Outcome
from collector.http_outcomes import Action, SourceError
from collector.sim.evcc import EvccSim
from collector.sources.evcc.parse import format_time_ns, parse_time_ns
from tests.sources.evcc.harness import T0, Clock, make_context, make_source, stored

CURSOR = "evcc:home:sessions"


def run(coro):
    return asyncio.run(coro)


def finished_ids(sim: EvccSim, now: float) -> list[int]:
    return sorted(s.id for s in sim.sessions(now) if s.finished <= now)


def session_ids(ctx) -> list[int]:
    return sorted(p.fields["session_id"] for p in stored(ctx, "evcc_session"))


@pytest.fixture
def clock() -> Clock:
    return Clock()


# -- state ----------------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["0.130", "0.206", "0.207", "0.301"])
def test_state_poll_writes_site_and_loadpoints_at_poll_time(tmp_path, clock, version) -> None:
    sim = EvccSim(version=version, clock=clock)
    ctx = make_context(tmp_path, clock, sim)
    source = make_source(ctx)
    run(source.poll_state())
    site = stored(ctx, "evcc_site")
    assert len(site) == 1 and site[0].time_ns == int(T0 * 1e9)
    state = sim.state()
    assert site[0].fields["pv_power_w"] == state["pvPower"]
    assert site[0].fields["grid_energy_wh"] == pytest.approx(1000 * (state.get("grid") or {}).get(
        "energy", state.get("gridEnergy")))
    loadpoints = stored(ctx, "evcc_loadpoint")
    assert sorted((p.tags["loadpoint"], p.tags["loadpoint_title"]) for p in loadpoints) == [
        ("1", "Garage"), ("2", "Heat pump")]
    assert ctx.health.get("evcc", "errors_payload") == 0
    run(source.close())


def test_state_poll_twice_in_one_instant_is_refused_by_the_limiter(tmp_path, clock) -> None:
    sim = EvccSim(clock=clock)
    ctx = make_context(tmp_path, clock, sim)
    source = make_source(ctx)

    async def twice():
        await source.poll_state()
        await source.poll_state()
        clock.advance(1.0)
        await source.poll_state()

    run(twice())
    assert [path for path, _ in sim.requests].count("/api/state") == 2
    assert ctx.health.get("evcc", "polls_skipped") == 1


@pytest.mark.parametrize("heartbeat,expected", [("15m", [0, 900]), ("0", [0, 30, 60, 900])])
def test_unchanged_statistics_are_stored_again_only_after_the_heartbeat(
        tmp_path, clock, heartbeat, expected) -> None:
    sim = EvccSim(clock=clock)
    ctx = make_context(tmp_path, clock, sim)
    source = make_source(ctx, heartbeat=heartbeat)

    async def polls():
        for step in (0, 30, 30, 840):
            clock.advance(step)
            await source.poll_state()

    run(polls())
    statistics = [p for p in stored(ctx, "evcc_statistics") if p.tags["period"] == "total"]
    assert [p.time_ns // 10**9 - int(T0) for p in statistics] == expected
    assert len(stored(ctx, "evcc_site")) == 4          # the site's meters move at every poll
    run(source.close())


# -- sessions -------------------------------------------------------------------------------

def test_first_sync_writes_every_finished_session_and_no_running_one(tmp_path, clock) -> None:
    sim = EvccSim(clock=clock)
    ctx = make_context(tmp_path, clock, sim)
    run(make_source(ctx).sync_sessions())
    assert sim.requests == [("/api/sessions", {})]      # the whole history, once
    expected = finished_ids(sim, clock.now)
    assert len(expected) >= 5
    assert session_ids(ctx) == expected
    all_sessions = sim.sessions(clock.now)
    running = [s for s in all_sessions if s.finished > clock.now]
    # every point sits at its session's `created`, to the nanosecond evcc gave
    rows = {r["id"]: r for r in sim.session_rows()}
    for point in stored(ctx, "evcc_session"):
        assert point.time_ns == parse_time_ns(rows[point.fields["session_id"]]["created"])
    newest = max(parse_time_ns(rows[i]["created"]) for i in expected)
    oldest_running = min([parse_time_ns(rows[s.id]["created"]) for s in running], default=newest)
    assert ctx.writer.store.cursor(CURSOR) == format_time_ns(min(newest, oldest_running))


def test_incremental_sync_asks_only_for_recent_months(tmp_path, clock) -> None:
    sim = EvccSim(clock=clock, start=T0 - 90 * 86400)  # three months of history
    ctx = make_context(tmp_path, clock, sim)
    source = make_source(ctx, session_lookback="2d")
    run(source.sync_sessions())
    first = session_ids(ctx)
    clock.advance(2 * 86400)
    sim.requests.clear()
    run(source.sync_sessions())
    months = {(q["year"], q["month"]) for path, q in sim.requests}
    assert all(path == "/api/sessions" for path, _ in sim.requests)
    assert months <= {("2025", "11"), ("2025", "12")}, months   # not the whole history again
    assert session_ids(ctx) == finished_ids(sim, clock.now)
    assert len(session_ids(ctx)) > len(first)


def test_cursor_survives_a_restart(tmp_path, clock) -> None:
    sim = EvccSim(clock=clock)
    ctx = make_context(tmp_path, clock, sim)
    run(make_source(ctx).sync_sessions())
    ctx.writer.store.close()
    clock.advance(3600)
    sim.requests.clear()
    ctx2 = make_context(tmp_path, clock, sim)        # same store file, a new process
    run(make_source(ctx2).sync_sessions())
    assert sim.requests and all(q for _, q in sim.requests)   # month-filtered, not a full refetch


def test_running_session_is_written_once_it_has_finished(tmp_path, clock) -> None:
    sim = EvccSim(clock=clock)
    running = next(s for s in reversed(sim.sessions(clock.now)) if s.finished > clock.now)
    ctx = make_context(tmp_path, clock, sim)
    source = make_source(ctx)
    run(source.sync_sessions())
    assert running.id not in session_ids(ctx)
    clock.now = running.finished + 60
    run(source.sync_sessions())
    assert running.id in session_ids(ctx)
    point = next(p for p in stored(ctx, "evcc_session") if p.fields["session_id"] == running.id)
    assert point.time_ns // 1_000_000_000 == int(running.created)


def test_a_running_session_older_than_the_lookback_is_still_caught(tmp_path, clock) -> None:
    # A car left plugged in for days: newer sessions finish on another loadpoint meanwhile.
    sim = EvccSim(clock=clock)
    ctx = make_context(tmp_path, clock, sim)
    source = make_source(ctx, session_lookback="0s")
    sessions = sim.sessions(clock.now)
    long_one = next(s for s in reversed(sessions) if s.finished > clock.now)
    original_finished = long_one.finished
    sim.correct_session(long_one.id, finished=None)   # keep it running for now
    run(source.sync_sessions())
    assert long_one.id not in session_ids(ctx)
    assert parse_time_ns(ctx.writer.store.cursor(CURSOR)) <= int(long_one.created * 1e9)
    clock.advance(5 * 86400)
    del sim.corrections[long_one.id]
    assert original_finished < clock.now
    run(source.sync_sessions())
    assert long_one.id in session_ids(ctx)


def test_a_corrected_session_overwrites_its_point(tmp_path, clock) -> None:
    sim = EvccSim(clock=clock)
    ctx = make_context(tmp_path, clock, sim)
    source = make_source(ctx)
    run(source.sync_sessions())
    target = finished_ids(sim, clock.now)[-1]
    before = {p.fields["session_id"]: p for p in stored(ctx, "evcc_session")}
    sim.correct_session(target, chargedEnergy=42.5, price=9.99)
    clock.advance(600)
    run(source.sync_sessions())
    after = {p.fields["session_id"]: p for p in stored(ctx, "evcc_session")}
    assert len(after) == len(before)
    assert after[target].time_ns == before[target].time_ns
    assert after[target].tags == before[target].tags
    assert after[target].fields["energy_wh"] == 42500.0 and after[target].fields["price"] == 9.99
    assert after[target].fields.get("meter_stop_wh") == before[target].fields.get("meter_stop_wh")


def test_an_evcc_that_ignores_the_month_filter_gives_no_duplicates(tmp_path, clock) -> None:
    sim = EvccSim(clock=clock)
    sim.ignore_month_filter = True
    ctx = make_context(tmp_path, clock, sim)
    source = make_source(ctx, session_lookback="1d")
    run(source.sync_sessions())
    clock.advance(86400)
    run(source.sync_sessions())
    ids = session_ids(ctx)
    assert ids == finished_ids(sim, clock.now) and len(ids) == len(set(ids))


def test_no_sessions_is_no_data(tmp_path, clock) -> None:
    sim = EvccSim(clock=clock, start=T0 + 86400)   # history starts tomorrow
    ctx = make_context(tmp_path, clock, sim)
    assert run(make_source(ctx).sync_sessions()) is Outcome.NO_DATA
    assert ctx.writer.store.cursor(CURSOR) is None


# -- tariffs --------------------------------------------------------------------------------

def test_tariff_rates_land_at_their_start_and_are_rewritten_when_the_forecast_changes(tmp_path, clock) -> None:
    sim = EvccSim(clock=clock)
    ctx = make_context(tmp_path, clock, sim)
    source = make_source(ctx, tariffs=["grid", "solar"])
    run(source.poll_tariff("grid"))
    first = {p.time_ns: p.fields["price_per_kwh"] for p in stored(ctx, "evcc_tariff")}
    assert len(first) == 24 and min(first) == int(T0 // 3600 * 3600 * 1e9)
    clock.advance(6 * 3600)                          # the simulator revises its forecast
    run(source.poll_tariff("grid"))
    second = {p.time_ns: p.fields["price_per_kwh"] for p in stored(ctx, "evcc_tariff")}
    overlap = set(first) & set(second) - {min(second)}
    assert overlap and any(first[t] != second[t] for t in overlap)
    run(source.poll_tariff("solar"))
    solar = [p for p in stored(ctx, "evcc_tariff") if p.tags["type"] == "solar"]
    assert len(solar) == 48 and all("power_w" in p.fields for p in solar)


def test_unconfigured_tariff_is_no_data(tmp_path, clock) -> None:
    sim = EvccSim(clock=clock, tariffs=("grid",))
    ctx = make_context(tmp_path, clock, sim)
    assert run(make_source(ctx).poll_tariff("co2")) is Outcome.NO_DATA


def test_tariff_jobs_and_intervals(tmp_path, clock) -> None:
    ctx = make_context(tmp_path, clock)
    jobs = {j.id: j.interval for j in make_source(ctx, tariffs=["grid", "co2", "grid"]).jobs()}
    assert jobs == {"evcc:home:state": 30.0, "evcc:home:sessions": 300.0,
                    "evcc:home:tariff-grid": 900.0, "evcc:home:tariff-co2": 900.0}


# -- auth, errors, config -------------------------------------------------------------------

def test_basic_auth(tmp_path, clock, caplog) -> None:
    sim = EvccSim(clock=clock, auth=("admin", "s3cr3t-pw"))
    ctx = make_context(tmp_path, clock, sim)
    run(make_source(ctx, username="admin", password="s3cr3t-pw").poll_state())
    assert stored(ctx, "evcc_site")
    clock.advance(10)
    with pytest.raises(SourceError) as err:
        run(make_source(ctx, username="admin", password="wrong-pw").poll_state())
    assert err.value.action is Action.CONFIG and "401" in str(err.value)
    assert "wrong-pw" not in str(err.value)


def test_check_reports_version_and_tariffs(tmp_path, clock) -> None:
    sim = EvccSim(clock=clock, tariffs=("grid",))
    ctx = make_context(tmp_path, clock, sim)
    results = run(make_source(ctx, tariffs=["grid", "co2"]).check())
    assert [r.ok for r in results] == [True, True, True]
    assert "0.301.1" in results[0].detail and "2 loadpoint" in results[0].detail
    assert results[2].detail == "not configured in evcc"


def test_non_json_answer_is_dropped(tmp_path, clock) -> None:
    class Proxy(EvccSim):
        def handle(self, request):
            from collector.sim.base import SimResponse
            return SimResponse.text("<html>login</html>", content_type="text/html")

    ctx = make_context(tmp_path, clock, Proxy(clock=clock))
    with pytest.raises(SourceError) as err:
        run(make_source(ctx).poll_state())
    assert err.value.action is Action.DROP


@pytest.mark.parametrize("section, message", [
    ({}, "set `url` (REST) or an [mqtt] section"),
    ({"url": "http://e:7070", "state_interval": "500ms"}, "state_interval: must be at least 1 s"),
    ({"url": "http://e:7070", "tariff_interval": "30s"}, "tariff_interval: must be at least 60 s"),
    ({"url": "http://e:7070", "tariffs": ["gas"]}, "tariffs"),
    ({"url": "e:7070"}, "must start with http"),
    ({"url": "http://me:pw@e:7070"}, "must not contain credentials"),
    ({"mqtt": {"host": "b", "root": "evcc/#"}}, "no wildcards"),
    ({"url": "http://e:7070", "password": "x"}, "without `username`"),
])
def test_config_is_validated(section, message) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config({"sources": {"evcc": section}})


def test_payload_problems_are_counted_and_logged_once(tmp_path, clock, caplog) -> None:
    class Odd(EvccSim):
        def state(self, now=None):
            state = super().state(now)
            state["pvPower"] = "n/a"
            return state

    ctx = make_context(tmp_path, clock, Odd(clock=clock))
    source = make_source(ctx)
    with caplog.at_level(logging.WARNING, logger="collector.sources.evcc.source"):
        run(source.poll_state())
        clock.advance(30)
        run(source.poll_state())
    assert ctx.health.get("evcc", "errors_payload") == 2
    assert sum("pvPower" in r.getMessage() for r in caplog.records) == 1


def test_a_failed_commit_leaves_the_cursor_where_it_was(tmp_path, clock, monkeypatch) -> None:
    sim = EvccSim(clock=clock)
    ctx = make_context(tmp_path, clock, sim)
    source = make_source(ctx)
    from collector.store import StoreError

    async def broken(*args, **kwargs):
        raise StoreError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(ctx.writer, "write", broken)
        with pytest.raises(StoreError):
            run(source.sync_sessions())
    assert ctx.writer.store.cursor(CURSOR) is None and session_ids(ctx) == []
    clock.advance(60)
    run(source.sync_sessions())                      # resumes with the full first sync
    assert session_ids(ctx) == finished_ids(sim, clock.now)
    assert sim.requests[-1] == ("/api/sessions", {})


def test_unchanged_sessions_and_rates_are_not_sent_again(tmp_path, clock) -> None:
    sim = EvccSim(clock=clock)
    ctx = make_context(tmp_path, clock, sim)
    source = make_source(ctx)
    run(source.sync_sessions())
    run(source.poll_tariff("grid"))
    committed = ctx.health.get("evcc", "points")
    clock.advance(60)
    for job in (source.sync_sessions(), source.poll_tariff("grid")):
        assert run(job) is Outcome.NO_DATA
    assert ctx.health.get("evcc", "points") == committed


def test_backfill_reads_every_session_from_since_and_sets_the_cursor(tmp_path, clock) -> None:
    from datetime import datetime, timezone

    sim = EvccSim(clock=clock, start=T0 - 60 * 86400)
    ctx = make_context(tmp_path, clock, sim)
    source = make_source(ctx)

    class Progress:
        total = done = 0

        def add_total(self, n):
            self.total += n

        def advance(self, n, note=""):
            self.done += n

    progress = Progress()
    since = datetime.fromtimestamp(T0 - 10 * 86400, timezone.utc)
    result = run(source.backfill(since, progress))
    expected = [s.id for s in sim.sessions(clock.now)
                if s.finished <= clock.now and s.created >= since.timestamp()]
    assert session_ids(ctx) == sorted(expected) and result.points == len(expected)
    assert progress.total == progress.done == len(sim.sessions(clock.now))
    # the cursor stands where the running sync would continue: the newest finished session's
    # `created`, or the oldest running one's if that is older
    rows = {r["id"]: r for r in sim.session_rows()}
    running = [parse_time_ns(rows[s.id]["created"]) for s in sim.sessions(clock.now)
               if s.finished > clock.now]
    newest = max(parse_time_ns(rows[i]["created"]) for i in expected)
    assert ctx.writer.store.cursor(CURSOR) == format_time_ns(min([newest, *running]))
