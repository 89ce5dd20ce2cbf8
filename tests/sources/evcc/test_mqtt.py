"""MQTT end to end against a real mosquitto: the simulator publishes evcc's topics, the
source subscribes, and the points equal what REST gives for the same state."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from collector.sim.evcc import EvccMqttPublisher, EvccSim, flatten_topics
from collector.sources.evcc.parse import parse_state
from tests.servers import free_port
from tests.sources.evcc.harness import T0, Clock, make_context, make_source, stored

MEASUREMENTS = ("evcc_site", "evcc_loadpoint", "evcc_pv", "evcc_battery", "evcc_statistics")


def all_points(ctx) -> list:
    return [p for m in MEASUREMENTS for p in stored(ctx, m)]


def as_rows(points, time_ns: int | None = None) -> list[dict]:
    rows = [{"measurement": p.measurement, "tags": dict(p.tags), "fields": dict(p.fields),
             "time_ns": time_ns if time_ns is not None else p.time_ns} for p in points]
    return sorted(rows, key=lambda r: (r["measurement"], sorted(r["tags"].items()), r["time_ns"]))


async def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("version", ["0.206", "0.301"])
def test_mqtt_gives_the_same_points_as_rest(tmp_path, mosquitto, version) -> None:
    clock = Clock()
    root = f"test-{version}/evcc"
    sim = EvccSim(version=version, clock=clock)
    publisher = EvccMqttPublisher(sim, mosquitto.host, mosquitto.port, root)
    try:
        # Published (retained) before the collector subscribes: it must pick up the snapshot.
        state = publisher.publish_state()
        ctx = make_context(tmp_path, clock)
        source = make_source(ctx, url=None, mqtt={"host": mosquitto.host, "port": mosquitto.port,
                                                 "root": root, "settle": "0.3s"})
        assert source.jobs() == []                    # MQTT only: nothing to poll

        async def scenario():
            await source.start()
            try:
                await wait_for(lambda: stored(ctx, "evcc_site"))
                first = all_points(ctx)
                # the next evcc cycle, published while we are subscribed
                clock.advance(30)
                nonlocal state2
                state2 = publisher.publish_state()
                await wait_for(lambda: len(stored(ctx, "evcc_site")) == 2)
                return first
            finally:
                await source.close()

        state2 = None
        first = asyncio.run(scenario())
        rest = parse_state(sim._wrap(state), "home", int(T0 * 1e9))
        assert as_rows(first) == as_rows(rest)           # same measurements, tags, fields, time
        assert {p.time_ns for p in first} == {int(T0) * 1_000_000_000}   # evcc's `updated`
        second = [p for p in all_points(ctx) if p.time_ns == int(T0 + 30) * 1_000_000_000]
        # Written on change: a series whose fields did not move waits for its heartbeat.
        def series(row: dict) -> tuple:
            return row["measurement"], sorted(row["tags"].items())

        before = [(series(r), r["fields"]) for r in as_rows(first)]
        full = as_rows(parse_state(state2, "home", int((T0 + 30) * 1e9)))
        changed = [r for r in full if (series(r), r["fields"]) not in before]
        assert as_rows(second) == changed and 0 < len(changed) < len(full)
        assert source.mqtt._client is None           # paho's thread was stopped
    finally:
        publisher.close()


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
        publisher = await asyncio.to_thread(EvccMqttPublisher, EvccSim(clock=clock), "127.0.0.1", port)
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
    publisher = EvccMqttPublisher(sim, mosquitto.host, mosquitto.port, root)
    try:
        publisher.publish_state()
        publisher._publish(f"{root}/status", "offline")   # evcc's last will after it died
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
    publisher = EvccMqttPublisher(sim, mosquitto.host, mosquitto.port, root)
    ctx = make_context(tmp_path, clock)
    source = make_source(ctx, url=None, mqtt={"host": mosquitto.host, "port": mosquitto.port,
                                             "root": root, "settle": "0.5s"})
    topics = list(flatten_topics(sim.state(), root).items())

    async def scenario():
        await source.start()
        try:
            await wait_for(source.mqtt.connected.is_set)
            await asyncio.to_thread(publisher._publish, f"{root}/updated", str(int(T0)))
            for start in range(0, len(topics), len(topics) // 3 + 1):
                await asyncio.sleep(0.3)                      # gaps shorter than `settle`
                for topic, payload in topics[start:start + len(topics) // 3 + 1]:
                    await asyncio.to_thread(publisher._publish, topic, payload)
            await wait_for(lambda: source.mqtt.snapshots_written >= 1)
            await asyncio.sleep(0.7)
        finally:
            await source.close()

    try:
        asyncio.run(scenario())
    finally:
        publisher.close()
    assert source.mqtt.snapshots_written == 1
    rest = parse_state(sim._wrap(sim.state()), "home", int(T0 * 1e9))
    assert as_rows(all_points(ctx)) == as_rows(rest)


def test_check_reports_broker_and_evcc_presence(tmp_path, mosquitto, monkeypatch) -> None:
    monkeypatch.setattr("collector.sources.evcc.mqtt.CHECK_TIMEOUT", 1.0)
    clock = Clock()
    publisher = EvccMqttPublisher(EvccSim(clock=clock), mosquitto.host, mosquitto.port, "chk/evcc")
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
    finally:
        publisher.close()


def test_without_updated_the_values_alone_make_a_snapshot(tmp_path, mosquitto) -> None:
    clock = Clock()
    root = "noupdated/evcc"
    sim = EvccSim(clock=clock)
    publisher = EvccMqttPublisher(sim, mosquitto.host, mosquitto.port, root)
    ctx = make_context(tmp_path, clock)
    source = make_source(ctx, url=None, mqtt={"host": mosquitto.host, "port": mosquitto.port,
                                             "root": root, "settle": "0.2s"})

    async def scenario():
        await source.start()
        try:
            await wait_for(source.mqtt.connected.is_set)
            for topic, payload in flatten_topics(sim.state(), root).items():
                await asyncio.to_thread(publisher._publish, topic, payload)
            await wait_for(lambda: stored(ctx, "evcc_site"))
        finally:
            await source.close()

    try:
        asyncio.run(scenario())
    finally:
        publisher.close()
    site = stored(ctx, "evcc_site")
    assert len(site) == 1 and site[0].time_ns == int(T0 * 1e9)     # the (settable) clock
