"""MQTT end to end against a real mosquitto: the simulator publishes as evcc of a given version
does (`collector/sim/evcc.py`), the source subscribes, and the points equal what REST gives for
the same state, as precisely as that version's MQTT float format allows."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from collector.sim.evcc import EvccMqttPublisher, EvccSim, mqtt_messages
from collector.sources.evcc.parse import parse_state
from collector.sources.evcc.schema import LIFETIME_METERS
from tests.servers import free_port
from tests.sources.evcc.expected import assert_same_points, points_to_json
from tests.sources.evcc.harness import T0, Clock, make_context, make_source, stored

MEASUREMENTS = ("evcc_site", "evcc_loadpoint", "evcc_pv", "evcc_battery", "evcc_statistics")
QUIET = 0.2   # the simulator's cleanup ends after this much quiet (evcc waits a second)


def all_points(ctx, time_ns: int | None = None) -> list:
    points = [p for m in MEASUREMENTS for p in stored(ctx, m)]
    return [p for p in points if time_ns is None or p.time_ns == time_ns]


def rest_points(sim: EvccSim, state: dict, now: float) -> list[dict]:
    return points_to_json(parse_state(sim._wrap(state), "home", int(now) * 1_000_000_000))


def publisher_for(sim: EvccSim, mosquitto, root: str) -> EvccMqttPublisher:
    return EvccMqttPublisher(sim, mosquitto.host, mosquitto.port, root, cleanup_quiet=QUIET)


async def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("version", ["0.300.6", "0.301.2"])   # "%.5g" and "%.3f" floats
def test_mqtt_gives_the_same_points_as_rest(tmp_path, mosquitto, version) -> None:
    clock = Clock()
    root = f"test-{version}/evcc"
    sim = EvccSim(version=version, clock=clock)
    publisher = publisher_for(sim, mosquitto, root)
    try:
        # Published (retained) before the collector subscribes: it must pick up the snapshot.
        state = publisher.publish_state()
        ctx = make_context(tmp_path, clock)
        # heartbeat 0: every snapshot whole, so both cycles compare with REST's
        source = make_source(ctx, url=None, heartbeat="0",
                             mqtt={"host": mosquitto.host, "port": mosquitto.port, "root": root,
                                   "settle": "0.3s"})
        assert source.jobs() == []                    # MQTT only: nothing to poll
        later = {}

        async def scenario():
            await source.start()
            try:
                await wait_for(lambda: stored(ctx, "evcc_site"))
                # the next evcc cycle, published while we are subscribed
                clock.advance(30)
                later["state"] = publisher.publish_state()
                await wait_for(lambda: len(stored(ctx, "evcc_site")) == 2)
            finally:
                await source.close()

        asyncio.run(scenario())
        first = points_to_json(all_points(ctx, int(T0) * 1_000_000_000))
        assert_same_points(first, rest_points(sim, state, T0), version)
        second = points_to_json(all_points(ctx, int(T0 + 30) * 1_000_000_000))
        assert_same_points(second, rest_points(sim, later["state"], T0 + 30), version)
        assert source.mqtt._client is None           # paho's thread was stopped
    finally:
        publisher.close()


def test_mqtt_snapshots_are_written_on_change(tmp_path, mosquitto) -> None:
    """With the default heartbeat, the second cycle stores only the series whose values moved
    (evcc 0.301.2 publishes REST's precision, so REST says which those are)."""
    clock = Clock()
    root = "on-change/evcc"
    sim = EvccSim(version="0.301.2", clock=clock)
    publisher = publisher_for(sim, mosquitto, root)
    try:
        state = publisher.publish_state()
        ctx = make_context(tmp_path, clock)
        source = make_source(ctx, url=None, mqtt={"host": mosquitto.host, "port": mosquitto.port,
                                                 "root": root, "settle": "0.3s"})
        later = {}

        async def scenario():
            await source.start()
            try:
                await wait_for(lambda: source.mqtt.snapshots_written == 1)
                clock.advance(30)
                later["state"] = publisher.publish_state()
                await wait_for(lambda: source.mqtt.snapshots_written == 2)
            finally:
                await source.close()

        asyncio.run(scenario())
    finally:
        publisher.close()

    def by_series(rows: list[dict]) -> dict:
        return {(r["measurement"], tuple(r["tags"].items())): r["fields"] for r in rows}

    before = by_series(rest_points(sim, state, T0))
    after = rest_points(sim, later["state"], T0 + 30)
    moved = [r for r in after
             if by_series([r])[(r["measurement"], tuple(r["tags"].items()))]
             != before.get((r["measurement"], tuple(r["tags"].items())))]
    second = points_to_json(all_points(ctx, int(T0 + 30) * 1_000_000_000))
    assert 0 < len(moved) < len(after)
    assert second == moved


def meters(points: list[dict]) -> dict:
    return {(p["measurement"], tuple(sorted(p["tags"].items()))):
            {k: v for k, v in p["fields"].items() if k in LIFETIME_METERS.get(p["measurement"], ())}
            for p in points}


@pytest.mark.parametrize("version, over_rest", [("0.207.5", True), ("0.300.7", False)])
def test_lifetime_meters_come_from_rest_where_mqtt_rounds_them(tmp_path, mosquitto, version,
                                                               over_rest) -> None:
    clock = Clock()
    root = f"meters-{version}/evcc"
    sim = EvccSim(version=version, clock=clock)
    publisher = publisher_for(sim, mosquitto, root)
    try:
        state = publisher.publish_state()
        ctx = make_context(tmp_path, clock, sim)      # REST served by the same simulator
        source = make_source(ctx, mqtt={"host": mosquitto.host, "port": mosquitto.port,
                                        "root": root, "settle": "0.3s"})

        async def scenario():
            await source.start()
            try:
                await wait_for(lambda: stored(ctx, "evcc_site"))
            finally:
                await source.close()

        asyncio.run(scenario())
    finally:
        publisher.close()
    got = points_to_json(all_points(ctx))
    rest = rest_points(sim, state, T0)
    state_reads = sum(1 for path, _ in sim.requests if path == "/api/state")
    assert state_reads == (1 if over_rest else 0)   # 0.300.7 needs no REST at all
    assert_same_points(got, rest, version)
    assert meters(got) == meters(rest)                  # to the last digit REST carries


def test_a_failed_rest_read_writes_the_snapshot_without_meters(tmp_path, mosquitto) -> None:
    clock = Clock()
    root = "meters-fail/evcc"
    sim = EvccSim(version="0.300.6", clock=clock, auth=("admin", "secret"))  # REST refuses us
    publisher = publisher_for(sim, mosquitto, root)
    try:
        publisher.publish_state()
        ctx = make_context(tmp_path, clock, sim)
        source = make_source(ctx, mqtt={"host": mosquitto.host, "port": mosquitto.port,
                                        "root": root, "settle": "0.3s"})

        async def scenario():
            await source.start()
            try:
                await wait_for(lambda: stored(ctx, "evcc_site"))
            finally:
                await source.close()

        asyncio.run(scenario())
    finally:
        publisher.close()
    got = points_to_json(all_points(ctx))
    assert got and all(not fields for fields in meters(got).values())   # none rather than rounded
    site = next(p["fields"] for p in got if p["measurement"] == "evcc_site")
    assert "grid_power_w" in site and "grid_energy_wh" not in site
    assert ctx.health.get("evcc", "errors_config") == 1                # HTTP 401, as a poll counts it


def test_evcc_restart_cleanup_gives_no_warning_and_no_point(tmp_path, mosquitto, caplog) -> None:
    # evcc empties every retained topic at shutdown and at start (`updated` too), then its
    # will says offline; the collector stays subscribed throughout.
    caplog.set_level(logging.INFO, logger="collector.sources.evcc")
    clock = Clock()
    root = "restart/evcc"
    sim = EvccSim(version="0.300.6", clock=clock)
    ctx = make_context(tmp_path, clock)
    # heartbeat 0: both snapshots whole, to compare with REST's
    source = make_source(ctx, url=None, heartbeat="0",
                         mqtt={"host": mosquitto.host, "port": mosquitto.port, "root": root,
                               "settle": "0.3s"})
    states = {}
    publishers = []

    async def scenario():
        await source.start()
        try:
            await wait_for(source.mqtt.connected.is_set)
            publisher = await asyncio.to_thread(publisher_for, sim, mosquitto, root)
            publishers.append(publisher)
            states[T0] = await asyncio.to_thread(publisher.publish_state)
            await wait_for(lambda: source.mqtt.snapshots_written == 1)
            await asyncio.to_thread(publisher.close)          # evcc stops: cleanup, will
            await wait_for(lambda: source.mqtt.online is False)
            assert source.mqtt.topics == {}                   # every retained topic emptied
            clock.advance(60)
            publisher = await asyncio.to_thread(publisher_for, sim, mosquitto, root)  # starts
            publishers.append(publisher)
            await wait_for(lambda: source.mqtt.online is True)
            await asyncio.sleep(0.6)                          # the start-up burst settles
            assert source.mqtt.snapshots_written == 1         # cleanup and header: no point
            states[T0 + 60] = await asyncio.to_thread(publisher.publish_state)
            await wait_for(lambda: source.mqtt.snapshots_written == 2)
        finally:
            await source.close()

    try:
        asyncio.run(scenario())
    finally:
        publishers[-1].close()
    times = sorted({p.time_ns for p in all_points(ctx)})
    assert times == [int(T0) * 1_000_000_000, int(T0 + 60) * 1_000_000_000]
    for when, state in states.items():
        assert_same_points(points_to_json(all_points(ctx, int(when) * 1_000_000_000)),
                           rest_points(sim, state, when), sim.version)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == ["evcc home: evcc reports itself offline over MQTT"]
    assert ctx.health.get("evcc", "errors_payload") == 0


def test_mqtt_start_never_blocks_and_reconnects_with_backoff(tmp_path) -> None:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        pytest.skip("mosquitto not installed")
    port = free_port()
    clock = Clock()
    ctx = make_context(tmp_path, clock)
    source = make_source(ctx, url=None, mqtt={"host": "127.0.0.1", "port": port, "root": "evcc",
                                             "settle": "0.2s", "reconnect_max": "2s"})
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    broker = None

    async def scenario():
        nonlocal broker
        started = time.monotonic()
        await source.start()                          # no broker yet: must return at once
        assert time.monotonic() - started < 0.5
        await asyncio.sleep(1.0)
        assert not source.mqtt.connected.is_set()
        assert ctx.health.get("evcc", "errors_transient") >= 1    # the failure is visible
        broker = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        await wait_for(source.mqtt.connected.is_set, timeout=15)
        publisher = await asyncio.to_thread(EvccMqttPublisher, EvccSim(clock=clock), "127.0.0.1",
                                            port, cleanup_quiet=QUIET)
        try:
            await asyncio.to_thread(publisher.publish_state)
            await wait_for(lambda: stored(ctx, "evcc_site"))
        finally:
            await asyncio.to_thread(publisher.close)
            await source.close()

    try:
        asyncio.run(scenario())
    finally:
        if broker is not None:
            broker.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                broker.wait(timeout=10)
            if broker.poll() is None:
                broker.kill()
                broker.wait()
    assert len(stored(ctx, "evcc_loadpoint")) == 2


def test_offline_evcc_is_not_written(tmp_path, mosquitto) -> None:
    clock = Clock()
    root = "offline/evcc"
    sim = EvccSim(clock=clock)
    publisher = publisher_for(sim, mosquitto, root)
    try:
        publisher.publish_state()
        publisher.publish(f"{root}/status", "offline")   # evcc's will after it died (no cleanup)
        ctx = make_context(tmp_path, clock)
        source = make_source(ctx, url=None, mqtt={"host": mosquitto.host, "port": mosquitto.port,
                                                 "root": root, "settle": "0.2s"})

        async def scenario():
            await source.start()
            try:
                await wait_for(source.mqtt.connected.is_set)
                await wait_for(lambda: source.mqtt.online is False)
                await asyncio.sleep(0.6)
            finally:
                await source.close()

        asyncio.run(scenario())
        assert stored(ctx, "evcc_site") == []
    finally:
        publisher.close()


def test_a_cycle_spread_over_seconds_gives_one_complete_snapshot(tmp_path, mosquitto) -> None:
    # evcc sends `updated` as a cycle begins; slow meters can spread its values over seconds.
    clock = Clock()
    root = "slow/evcc"
    sim = EvccSim(clock=clock)
    publisher = publisher_for(sim, mosquitto, root)
    ctx = make_context(tmp_path, clock)
    source = make_source(ctx, url=None, mqtt={"host": mosquitto.host, "port": mosquitto.port,
                                             "root": root, "settle": "0.5s"})
    topics = mqtt_messages(sim._state(), root, sim.version)
    third = len(topics) // 3 + 1

    async def scenario():
        await source.start()
        try:
            await wait_for(source.mqtt.connected.is_set)
            await asyncio.to_thread(publisher.publish, f"{root}/updated", str(int(T0)))
            for start in range(0, len(topics), third):
                await asyncio.sleep(0.3)                      # gaps shorter than `settle`
                for topic, payload in topics[start:start + third]:
                    await asyncio.to_thread(publisher.publish, topic, payload)
            await wait_for(lambda: source.mqtt.snapshots_written >= 1)
            await asyncio.sleep(0.7)
        finally:
            await source.close()

    try:
        asyncio.run(scenario())
    finally:
        publisher.close()
    assert source.mqtt.snapshots_written == 1
    assert_same_points(points_to_json(all_points(ctx)), rest_points(sim, sim.state(), T0),
                       sim.version)


def test_check_reports_broker_and_evcc_presence(tmp_path, mosquitto, monkeypatch) -> None:
    monkeypatch.setattr("collector.sources.evcc.mqtt.CHECK_TIMEOUT", 1.0)
    clock = Clock()
    publisher = publisher_for(EvccSim(clock=clock), mosquitto, "chk/evcc")
    try:
        publisher.publish_state()
        ctx = make_context(tmp_path, clock)

        def check(root: str, port: int = mosquitto.port):
            source = make_source(ctx, url=None, mqtt={"host": mosquitto.host, "port": port, "root": root})
            return asyncio.run(source.check())[0]

        good = check("chk/evcc")
        assert good.ok and str(int(T0)) in good.detail
        assert "no retained nowhere/updated" in check("nowhere").detail
        down = check("chk/evcc", port=free_port())
        assert not down.ok and "cannot connect" in down.detail
        publisher.close()                     # evcc stops: topics emptied, will says offline
        stopped = check("chk/evcc")
        assert stopped.ok and "evcc is offline" in stopped.detail
    finally:
        publisher.close()


def test_without_updated_the_values_alone_make_a_snapshot(tmp_path, mosquitto) -> None:
    clock = Clock()
    root = "noupdated/evcc"
    sim = EvccSim(clock=clock)
    publisher = publisher_for(sim, mosquitto, root)
    ctx = make_context(tmp_path, clock)
    source = make_source(ctx, url=None, mqtt={"host": mosquitto.host, "port": mosquitto.port,
                                             "root": root, "settle": "0.2s"})

    async def scenario():
        await source.start()
        try:
            await wait_for(source.mqtt.connected.is_set)
            for topic, payload in mqtt_messages(sim._state(), root, sim.version):
                await asyncio.to_thread(publisher.publish, topic, payload)
            await wait_for(lambda: stored(ctx, "evcc_site"))
        finally:
            await source.close()

    try:
        asyncio.run(scenario())
    finally:
        publisher.close()
    site = stored(ctx, "evcc_site")
    assert len(site) == 1 and site[0].time_ns == int(T0 * 1e9)     # the (settable) clock
