"""End to end: simulator on a loopback port -> the collector (scheduler, goe jobs, PointWriter,
store, forwarder) -> a real InfluxDB 1.x, read back with InfluxQL."""

from __future__ import annotations

import asyncio
import time

import pytest

from collector.app import Collector
from collector.config import parse_config
from collector.sim.base import SimServer
from collector.sim.goe import GoeSimulator
from collector.sources.goe.parse import denoise

TOKEN = "tok-e2e-1618033"


@pytest.mark.slow
def test_collector_polls_the_simulator_and_ships_to_influxdb(tmp_path, influxdb, influx_db) -> None:
    sim = GoeSimulator.fleet(3, seed=11, token=TOKEN)
    with SimServer(sim) as server:
        config = parse_config({
            "collector": {"jitter": 0.0},
            "store": {"path": str(tmp_path / "collector.db")},
            "influxdb": {"api": "v1", "url": influxdb.url, "database": influx_db},
            "sources": {"goe": {
                "interval": "1s",
                "cloud_url": server.url,          # no {serial}: routed by the Host header
                "chargers": [
                    {"serial": "000001", "token": TOKEN},
                    {"serial": "000002", "token": TOKEN},
                    {"serial": "000003", "api": "local", "host": f"{server.url}/local/000003"},
                ],
            }},
        })
        collector = Collector(config)

        async def run() -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(collector.run(stop))
            await asyncio.sleep(4.0)
            stop.set()
            await asyncio.wait_for(task, 30)

        started = time.time()
        asyncio.run(run())
        elapsed = time.time() - started

    rows = influxdb.query("SELECT * FROM goe_status", db=influx_db)
    by_serial: dict[str, list[dict]] = {}
    for row in rows:
        by_serial.setdefault(row["serial"], []).append(row)
    assert set(by_serial) == {"000001", "000002", "000003"}
    for serial, points in by_serial.items():
        # At most one request a second per charger, and at least a couple of polls in 4 s.
        assert 2 <= sim.count(serial) <= int(elapsed) + 1, serial
        assert len(points) <= sim.count(serial)
        assert len({p["time"] for p in points}) == len(points)

    for serial in ("000001", "000002"):
        charger = sim.chargers[serial]
        for point in by_serial[serial]:
            # Cloud points are stamped with last-modified (whole seconds) and carry exactly the
            # status the simulator served for that second.
            assert point["time"] % 1_000_000_000 == 0
            second = point["time"] // 1_000_000_000
            status = charger.state(int(second - sim.epoch), second)
            assert point["energy_total_wh"] == status["eto"]
            assert point["car_state"] == status["car"]
            assert point["power_w"] == pytest.approx(denoise(status["nrg"][11]))
            assert point["firmware_version"] == charger.firmware
            assert point["requested_current_a"] == charger.amp

    local = by_serial["000003"]
    assert all(isinstance(p["voltage_l1_v"], float) for p in local)
    # Local points carry the poll time (ms precision), within the run.
    assert all(started * 1e9 - 1e9 <= p["time"] <= time.time() * 1e9 for p in local)
    # The store shipped everything before the collector stopped.
    assert influxdb.count(influx_db, "goe_status", "energy_total_wh") == len(rows)
