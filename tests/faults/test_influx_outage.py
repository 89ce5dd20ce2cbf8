"""InfluxDB stopped for a while and started again: every point reaches it, once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

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
