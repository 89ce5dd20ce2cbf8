"""InfluxDB stopped for a while and started again: every point reaches it, once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from collector.config_types import InfluxV1
from collector.health import COLLECTOR, Health
from collector.influx import Forwarder, V1Target
from collector.points import Point
from collector.sim.base import SimServer
from collector.sim.goe import GoeSimulator
from collector.schema import all_measurements
from collector.store import Store
from tests.faults.harness import (CollectorProcess, assert_no_secrets, goe_config, last_health,
                                  read_store, wait_until)
from tests.servers import influx_server

TOKEN = "tok-outage-SECRET-31337"
DB = "outage"


def measurement_named(name: str):
    return next(m for m in all_measurements() if m.name == name)


def pending(store: Path) -> int:
    s = Store(store)
    try:
        return s.pending_count()
    finally:
        s.close()


@pytest.mark.slow
def test_influxdb_down_for_a_while_every_point_arrives_once(tmp_path):
    sim = GoeSimulator.fleet(3, seed=8, token=TOKEN)
    store = tmp_path / "store.db"
    (tmp_path / "influx").mkdir()
    with influx_server(tmp_path / "influx") as influx, SimServer(sim) as server:
        influx.create_database(DB)
        cfg = goe_config(tmp_path / "c.toml", store, server.url, TOKEN, chargers=3,
                         influx_url=influx.url, database=DB, influxdb="batch_size = 50")
        with CollectorProcess(cfg, tmp_path / "collector.log") as collector:
            wait_until(lambda: influx.count(DB, "goe_status", "energy_total_wh") >= 3,
                       what="first points in InfluxDB", proc=collector.proc, log=collector.log)
            influx.stop()
            time.sleep(6.0)                                  # the chargers go on meanwhile
            assert pending(store) > 0
            assert last_health(store, "collector").get("influx_ok") is False
            influx.start()
            wait_until(lambda: pending(store) == 0, timeout=60, what="the backlog to drain",
                       proc=collector.proc, log=collector.log)
            assert collector.stop() == 0

        stored = read_store(store)
        shipped = {}
        measurements = ("goe_status", "collector_health", "rollup_daily", "rollup_monthly")
        assert set(measurements) >= {key[0] for key in stored}
        for measurement in measurements:
            names = tuple(sorted(t.name for t in measurement_named(measurement).tags))
            for row in influx.query(f'SELECT * FROM "{measurement}"', db=DB):
                key = (measurement, tuple((tag, row[tag]) for tag in names), row["time"])
                shipped[key] = {k: v for k, v in row.items()
                                if v is not None and k not in ("time", "_measurement", *names)}

    assert len(stored) > 20
    assert stored.keys() == shipped.keys()      # nothing lost, nothing extra
    for key, fields in stored.items():
        got = shipped[key]
        assert got.keys() == fields.keys(), key
        for name, value in fields.items():
            if isinstance(value, float):
                assert got[name] == pytest.approx(value, rel=1e-12), (key, name)
            else:
                assert got[name] == value, (key, name)
    health = last_health(store, "collector")
    assert health["ship_failures"] >= 1
    # every shipped count is a distinct stored point: no batch was sent twice after success
    assert health["shipped"] <= len(stored)
    assert_no_secrets([TOKEN], tmp_path / "collector.log", store)
    log = (tmp_path / "collector.log").read_text()
    assert "InfluxDB writes work again" in log


class OutageClock:
    """The forwarder's sense of time: while `virtual`, each of its waits passes at once and
    moves this clock on, so an outage of many minutes takes a second; then real waits."""

    def __init__(self) -> None:
        self.now = 0.0
        self.virtual = True

    def clock(self) -> float:
        return self.now

    async def wait(self, stop: asyncio.Event, seconds: float) -> None:
        self.now += seconds
        if self.virtual:
            await asyncio.sleep(0)
            return
        try:
            await asyncio.wait_for(stop.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass


@pytest.mark.slow
def test_after_a_ten_minute_outage_shipping_resumes_within_15_s(tmp_path):
    """InfluxDB down for ten minutes of the forwarder's time (it probes and backs off as it
    would in real time: waits are virtual while the real influxd is down), then up again:
    the first write lands within 15 s of InfluxDB answering, and the backlog drains."""
    store = Store(tmp_path / "store.db")
    points = [Point("charge", {"dev": f"d{k % 10}"}, {"power_w": float(k), "n": k},
                    1_700_000_000_000_000_000 + k * 10**9) for k in range(20_000)]
    store.append(points)
    health = Health()
    time_ = OutageClock()
    (tmp_path / "influx").mkdir()
    with influx_server(tmp_path / "influx") as influx:
        influx.create_database(DB)
        target = V1Target(InfluxV1(api="v1", url=influx.url, database=DB, timeout=2.0))
        forwarder = Forwarder(store, target, health, clock=time_.clock, wait=time_.wait)
        influx.stop()

        async def scenario() -> float:
            stop = asyncio.Event()
            task = asyncio.create_task(forwarder.run(stop))
            while time_.now < 600:                       # ten minutes, for the forwarder
                await asyncio.sleep(0.01)
            time_.virtual = False
            await asyncio.to_thread(influx.start)        # returns once influxd answers
            back = time.monotonic()
            while health.get(COLLECTOR, "shipped") == 0:
                assert time.monotonic() - back < 30, "no write 30 s after InfluxDB came back"
                await asyncio.sleep(0.05)
            resumed = time.monotonic() - back
            while store.pending_count():
                await asyncio.sleep(0.05)
            stop.set()
            await task
            return resumed

        try:
            resumed = asyncio.run(scenario())
            assert resumed < 15.0
            assert health.get(COLLECTOR, "ship_failures") >= 1
            assert influx.count(DB, "charge", "power_w") == len(points)
        finally:
            target.close()
            store.close()
