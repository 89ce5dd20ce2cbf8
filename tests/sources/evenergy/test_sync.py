"""The incremental streams against the simulator: paging, cursors, resume, tokens, quota."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import httpx
import pytest
from freezegun import freeze_time

from collector.http_outcomes import Action, SourceError
from collector.limits import Limits
from collector.sim.evenergy import EvEnergySim
from collector.sources.evenergy.client import EvEnergyClient
from collector.config_types import Secret
from collector.sources.evenergy.parse import parse_time_ns
from collector.sources.evenergy.source import COMMAND_LOGS, STATUS_LOGS
from tests.virtual_time import run_frozen

START = "2024-05-01 12:00:00"
DAY = 86400.0


def truth_times(sim: EvEnergySim, evse: str, since: float, kind: str = "status") -> set[int]:
    logs = (sim.status_logs if kind == "status" else sim.command_logs)(evse, since)
    key = "sampled_at" if kind == "status" else "logged_at"
    return {parse_time_ns(item[key]) for item in logs}


def test_a_first_sync_pages_through_the_whole_backfill_window(make_rig):
    with freeze_time(START):
        sim = EvEnergySim(evses=1)
        rig = make_rig(sim, page_size=20, backfill="2d", max_pages_per_run=1000)
        evse = sim.evses[0].id
        result = asyncio.run(rig.source.sync(evse, STATUS_LOGS))
        expected = truth_times(sim, evse, time.time() - 2 * DAY)
        assert len(expected) > 500                      # 2 days of 5-minute logs
        assert result.complete and result.pages == -(-len(expected) // 20)   # ~29 pages
        assert set(rig.stored("evenergy_status", evse)) == expected
        # The watermark is the newest log; nothing is pending.
        cursors = rig.store.cursors("evenergy:")
        assert parse_time_ns(cursors[f"evenergy:{evse}:status_logs"]) == max(expected)
        assert cursors.get(f"evenergy:{evse}:status_logs:pending", "") == ""
        # The stored fields are the simulator's values in the schema's units.
        newest = max(expected)
        item = next(i for i in sim.status_logs(evse, time.time() - 3600)
                    if parse_time_ns(i["sampled_at"]) == newest)
        fields = rig.stored("evenergy_status", evse)[newest]
        assert fields["voltage_v"] == item["voltage_millivolts"] / 1000
        assert fields["meter_energy_wh"] == item["meter_reading_watt_hours"]


def test_the_next_sync_asks_only_for_what_is_new(make_rig):
    with freeze_time(START) as clock:
        sim = EvEnergySim(evses=1)
        rig = make_rig(sim, backfill="1d")
        evse = sim.evses[0].id
        asyncio.run(rig.source.sync(evse, STATUS_LOGS))
        before = sim.stats["requests"]
        clock.tick(1800)
        result = asyncio.run(rig.source.sync(evse, STATUS_LOGS))
        assert sim.stats["requests"] - before == 1 and result.complete
        assert result.points <= 6 + 3            # 30 new minutes plus the lookback's overlap
        assert set(rig.stored("evenergy_status", evse)) == truth_times(sim, evse, time.time() - 1800 - DAY)


def test_a_backfill_larger_than_the_quota_waits_its_turns_page_by_page(make_rig):
    # A budget of 100/hour (90 usable) allows a burst of 4 pages; the backfill needs ~30. The
    # run does not give up at the quota: each page waits for its turn, none is refused by the
    # server, and every log of the day arrives.
    with freeze_time(START) as clock:
        sim = EvEnergySim(evses=1, quota=100)
        rig = make_rig(sim, page_size=10, backfill="1d", quota_limit=100, max_pages_per_run=1000)
        evse = sim.evses[0].id
        start = time.time()
        result = run_frozen(rig.source.sync(evse, STATUS_LOGS), clock)
        assert result.complete and result.pages > 25
        # past the burst of 4, a page every 40 s (3600 / 90)
        assert (result.pages - 5) * 40 <= time.time() - start <= result.pages * 40
        # (what was logged while the run waited is the next run's)
        truth = {t for t in truth_times(sim, evse, start - DAY) if t <= start * 1e9}
        assert truth <= set(rig.stored("evenergy_status", evse)) <= truth_times(sim, evse, start - DAY)
        assert sim.stats["429"] == 0


def test_an_interrupted_page_run_resumes_from_its_pending_range(make_rig):
    # A run stopped after 4 pages (the page limit here; a stop or a crash the same) commits
    # what it fetched with the range still to do; the next run finishes that range first,
    # without loss or duplicates, and only then moves the watermark.
    with freeze_time(START) as clock:
        sim = EvEnergySim(evses=1)
        rig = make_rig(sim, page_size=10, backfill="1d", max_pages_per_run=4)
        evse = sim.evses[0].id
        first = run_frozen(rig.source.sync(evse, STATUS_LOGS), clock)
        assert not first.complete and first.stopped_by == "page limit" and first.pages == 4
        pending = json.loads(rig.store.cursor(f"evenergy:{evse}:status_logs:pending"))
        assert rig.store.cursor(f"evenergy:{evse}:status_logs") is None   # watermark not moved
        assert min(rig.stored("evenergy_status", evse)) == pending["lte"]
        runs = 1
        while not run_frozen(rig.source.sync(evse, STATUS_LOGS), clock).complete:
            runs += 1
            clock.tick(120)
        # The range of the first run, [gte, hi], is complete; what came since, the next run gets.
        expected = truth_times(sim, evse, pending["gte"] / 1e9)
        assert {t for t in expected if t <= pending["hi"]} <= set(rig.stored("evenergy_status", evse))
        clock.tick(600)
        assert run_frozen(rig.source.sync(evse, STATUS_LOGS), clock).complete
        expected = truth_times(sim, evse, pending["gte"] / 1e9)
        stored = rig.stored("evenergy_status", evse)
        assert set(stored) == expected
        assert rig.count("evenergy_status") == len(stored)
        assert sim.stats["429"] == 0 and runs > 5


def test_command_logs_arrive_with_their_reasons(make_rig):
    with freeze_time(START):
        sim = EvEnergySim(evses=3)
        rig = make_rig(sim, backfill="7d")
        for evse in sim.evses:
            asyncio.run(rig.source.sync(evse.id, COMMAND_LOGS))
            expected = truth_times(sim, evse.id, time.time() - 7 * DAY, "command")
            assert set(rig.stored("evenergy_command", evse.id)) == expected
        reasons = {f.get("reason") for f in rig.stored("evenergy_command").values()}
        assert {"SMART_CHARGE_ENABLED", "SCHEDULED_CHARGING", "STOP_CHARGE", "REFRESH_SCHEDULES"} <= reasons


def test_the_token_is_renewed_before_it_expires(make_rig):
    with freeze_time(START) as clock:
        sim = EvEnergySim(evses=1, token_ttl=3600)
        rig = make_rig(sim, backfill="1h")
        evse = sim.evses[0].id
        for _ in range(8):                       # two hours at 15 minutes
            asyncio.run(rig.source.sync(evse, STATUS_LOGS))
            clock.tick(900)
        assert sim.stats["401"] == 0
        assert rig.source.client.token_fetches == 2


def test_a_refused_token_is_fetched_again_once(make_rig):
    with freeze_time(START):
        sim = EvEnergySim(evses=1)
        rig = make_rig(sim, backfill="1h")
        evse = sim.evses[0].id
        asyncio.run(rig.source.sync(evse, STATUS_LOGS))
        sim.revoke_tokens()                      # e.g. rotated on the server's side
        assert asyncio.run(rig.source.sync(evse, STATUS_LOGS)).complete
        assert sim.stats["401"] == 1 and rig.source.client.token_fetches == 2


def test_a_token_refused_twice_is_a_configuration_error(make_rig):
    with freeze_time(START):
        sim = EvEnergySim(evses=1, token_ttl=0)      # every token is expired at once
        rig = make_rig(sim, backfill="1h")
        with pytest.raises(SourceError) as info:
            asyncio.run(rig.source.sync(sim.evses[0].id, STATUS_LOGS))
        assert info.value.action is Action.CONFIG and sim.stats["401"] == 2
        assert "demo-secret" not in str(info.value)


def test_wrong_client_credentials_are_a_configuration_error(make_rig):
    with freeze_time(START):
        sim = EvEnergySim(evses=1)
        rig = make_rig(sim, client_secret="not-the-secret")
        with pytest.raises(SourceError) as info:
            asyncio.run(rig.source.sync(sim.evses[0].id, STATUS_LOGS))
        assert info.value.action is Action.CONFIG
        assert "client_secret" in str(info.value) and "not-the-secret" not in str(info.value)


def test_a_429_blocks_the_whole_client_for_retry_after(make_rig):
    with freeze_time(START) as clock:
        sim = EvEnergySim(evses=2, quota=50)
        sim.clients["demo-client"].requests.extend([time.time() - 600] * 50)   # another app spent it
        rig = make_rig(sim, backfill="1h")
        with pytest.raises(SourceError) as info:
            asyncio.run(rig.source.sync(sim.evses[0].id, STATUS_LOGS))
        assert info.value.action is Action.WAIT and info.value.retry_after == 3000
        # The other EVSE's stream waits: the budget is the client's, blocked as told (and the
        # 429 said none remain: until our own request of an hour ago leaves the window).
        start = time.time()
        result = run_frozen(rig.source.sync(sim.evses[1].id, STATUS_LOGS), clock)
        assert result.complete and sim.stats["429"] == 1
        assert 3000 <= time.time() - start <= 3601


def test_the_simulator_refuses_page_sizes_outside_1_to_100(make_rig):
    with freeze_time(START):
        sim = EvEnergySim(evses=1)
        rig = make_rig(sim)
        client = rig.source.client
        url = client.url(f"evses/{sim.evses[0].id}/status_logs")
        for size in (0, 101, "x"):
            with pytest.raises(SourceError) as info:
                asyncio.run(client.get(url, {"page_size": size}))
            assert info.value.action is Action.DROP and "page_size" in str(info.value)
        page = asyncio.run(client.get(url, {"page_size": 100}))
        assert len(page.payload) == 100
        following = httpx.URL(page.next_url)            # the next page of the same endpoint
        assert following.host == httpx.URL(url).host and following.path == httpx.URL(url).path
        assert following.params["page_size"] == "100"


def test_a_next_link_to_another_host_is_not_followed():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/o/token/":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        return httpx.Response(200, json=[], headers={
            "Link": '<https://evil.example/v2/evses?page_after=x>; rel="next"'})

    async def go():
        http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        client = EvEnergyClient(http, base_url="https://api.ev.energy/v2",
                                token_url="https://api.ev.energy/o/token/", client_id="c",
                                client_secret=Secret("s", "test"), user="u",
                                quota=Limits().fair_quota("c", 1000))
        try:
            await client.get(client.url("evses"))
        finally:
            await http.aclose()

    with pytest.raises(SourceError) as info:
        asyncio.run(go())
    assert info.value.action is Action.DROP and "evil.example" in str(info.value)


def test_discovery_finds_the_evses_and_remembers_them_when_it_fails_later(make_rig, caplog):
    with freeze_time(START):
        sim = EvEnergySim(evses=3)
        rig = make_rig(sim)
        asyncio.run(rig.source.start())
        ids = [e.id for e in sim.evses]
        job_ids = [job.id for job in rig.source.jobs()]
        assert job_ids == [f"evenergy:{e}:{s}" for e in ids for s in ("status_logs", "command_logs")] \
            + ["evenergy:demo-client:evses"]
        # Next start: /evses answers 503, the list from last time is used.
        sim.faults.append(("/v2/evses", 503))
        again = make_rig(sim, store_name="store.db")
        with caplog.at_level(logging.WARNING):
            asyncio.run(again.source.start())
        assert again.source.evse_ids() == ids
        assert "discovery failed" in caplog.text


def test_the_discovery_job_collects_evses_that_have_no_job_yet(make_rig):
    with freeze_time(START):
        sim = EvEnergySim(evses=2)
        rig = make_rig(sim, backfill="1h")
        sim.faults.append(("/v2/evses", 503))
        asyncio.run(rig.source.start())          # discovery fails, nothing known yet
        jobs = rig.source.jobs()
        assert [j.id for j in jobs] == ["evenergy:demo-client:evses"]
        asyncio.run(jobs[0].run())
        for evse in sim.evses:
            assert set(rig.stored("evenergy_status", evse.id)) == truth_times(sim, evse.id, time.time() - 3600)


def test_odd_values_are_counted_every_time_but_warned_about_once(tmp_path, caplog):
    from collector.health import Health
    from collector.limits import Limits
    from collector.sources.base import SourceContext
    from collector.sources.evenergy import Config, build
    from collector.store import Store
    from collector.writer import PointWriter

    page = [{"sampled_at": "2024-05-01T11:55:00Z", "is_plugged_in": True, "charge_rate_watts": "n/a"}]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/o/token/":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        assert request.headers["EvEnergy-Version"] == "2" and request.headers["EvEnergy-User"] == "u"
        return httpx.Response(200, json=page, headers={"Link": '<about:blank>; rel="next"',
                                                       "x-ratelimit-limit": "1000",
                                                       "x-ratelimit-remaining": "990"})

    store = Store(tmp_path / "s.db")
    health = Health()
    ctx = SourceContext(cursors=store, writer=PointWriter(store, health), limits=Limits(),
                        health=health, http_transport=httpx.MockTransport(handler))
    source = build(Config(client_id="c", client_secret="s", user="u",
                          evses=("evse01HSH04KDEWF6Z4DB2J77J74K5",)), ctx)
    try:
        with freeze_time(START), caplog.at_level(logging.WARNING):
            for _ in range(3):
                asyncio.run(source.sync("evse01HSH04KDEWF6Z4DB2J77J74K5", STATUS_LOGS))
            assert source.budget.remaining() == 990   # the server's figure, from the headers
        assert health.get("evenergy", "errors_payload") == 3
        assert caplog.text.count("left out") == 1 and "charge_power_w" in caplog.text
    finally:
        asyncio.run(source.close())
        store.close()
