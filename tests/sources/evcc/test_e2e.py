"""End to end: the simulator on a loopback port, the evcc jobs, PointWriter, Store and the
Forwarder into a real InfluxDB 1.x, read back with InfluxQL."""

from __future__ import annotations

import asyncio
import time

from collector.config_types import InfluxV1
from collector.health import Health
from collector.influx import Forwarder, make_target
from collector.limits import Limits
from collector.sim.base import SimServer
from collector.sim.evcc import EvccSim
from collector.sources.base import SourceContext
from collector.sources.evcc import Config
from collector.sources.evcc.parse import parse_time_ns
from collector.sources.evcc.source import EvccSource
from collector.store import Store
from collector.writer import PointWriter


def test_rest_pipeline_into_influxdb(tmp_path, influxdb, influx_db) -> None:
    now = time.time() // 3600 * 3600 + 60     # the +600 s below stays in this hour's forecast
    sim = EvccSim(version="0.206", clock=lambda: now)   # wrapped answers, over real HTTP
    store = Store(tmp_path / "store.db")
    health = Health()
    ctx = SourceContext(cursors=store, writer=PointWriter(store, health), limits=Limits(lambda: now),
                        health=health)
    target = make_target(InfluxV1(api="v1", url=influxdb.url, database=influx_db))
    forwarder = Forwarder(store, target, health)

    with SimServer(sim) as server:
        config = Config.model_validate({"name": "home", "url": server.url,
                                        "tariffs": ["grid", "co2", "planner"]})
        source = EvccSource(config, ctx)

        async def collect() -> None:
            for job in source.jobs():
                await job.run()     # planner is not configured, forecasts unchanged: no data
            assert await forwarder.flush(time.monotonic() + 30)

        async def scenario() -> tuple[list, dict]:
            nonlocal now
            await collect()
            finished = [r for r in sim.session_rows() if r["finished"]]
            sim.correct_session(finished[0]["id"], price=12.34)
            now += 600
            await collect()                            # again: the same sessions, one corrected
            await source.close()
            return [r for r in sim.session_rows() if r["finished"]], finished[0]

        finished, target_row = asyncio.run(scenario())
    target.close()
    store.close()

    q = influxdb.query
    sessions = q('SELECT * FROM evcc_session', db=influx_db)
    assert len(sessions) == len(finished)              # written once, not twice
    by_id = {row["session_id"]: row for row in sessions}
    row = by_id[target_row["id"]]
    assert row["time"] == parse_time_ns(target_row["created"])   # nanoseconds kept
    assert row["price"] == 12.34
    assert row["loadpoint_title"] == target_row["loadpoint"]
    loadpoints = q('SELECT last(charge_power_w) FROM evcc_loadpoint GROUP BY "loadpoint"', db=influx_db)
    assert sorted(r["loadpoint"] for r in loadpoints) == ["1", "2"]
    site = q('SELECT pv_power_w, grid_power_w, battery_soc_pct FROM evcc_site', db=influx_db)
    assert len(site) == 2 and all(0 <= row["battery_soc_pct"] <= 100 for row in site)
    tariffs = q('SELECT count(price_per_kwh) FROM evcc_tariff WHERE "type" = \'grid\'', db=influx_db)
    assert tariffs[0]["count"] == 24
    co2 = q('SELECT count(co2_g_per_kwh) FROM evcc_tariff WHERE "type" = \'co2\' AND time > now()',
            db=influx_db)
    assert co2[0]["count"] >= 22                      # forecast rates lie in the future
