"""End to end: config -> Collector -> ev.energy jobs over HTTP -> store -> forwarder -> InfluxDB."""

from __future__ import annotations

import asyncio
import time

from collector.app import Collector
from collector.config import parse_config
from collector.schedule import JobRunner
from collector.sim.base import SimServer
from collector.sim.evenergy import EvEnergySim
from collector.sources.evenergy.parse import parse_time_ns


def test_status_and_command_logs_reach_influxdb(tmp_path, influxdb, influx_db, monkeypatch):
    sim = EvEnergySim(evses=2, seed=3)
    monkeypatch.setenv("EVENERGY_SECRET", "demo-secret")
    with SimServer(sim) as server:
        config = parse_config({
            "store": {"path": str(tmp_path / "store.db")},
            "influxdb": {"api": "v1", "url": influxdb.url, "database": influx_db},
            "sources": {"evenergy": {
                "client_id": "demo-client", "client_secret": {"env": "EVENERGY_SECRET"},
                "user": sim.user, "base_url": f"{server.url}/v2", "backfill": "1d"}},
        })
        collector = Collector(config)

        async def once() -> None:
            source = collector.sources[0]
            await source.start()                       # discovers the two EVSEs
            runner = JobRunner(collector.health)
            for job in collector.jobs():
                if job.source == "evenergy":
                    await runner.run(job)
            await collector.write_health()
            assert await collector.forwarder.flush(time.monotonic() + 20)
            await source.close()

        try:
            asyncio.run(once())
        finally:
            collector.close()

    since = time.time() - 86400
    for evse in sim.evses:
        truth = sim.status_logs(evse.id, since)
        rows = influxdb.query(f"SELECT * FROM evenergy_status WHERE evse = '{evse.id}'", db=influx_db)
        assert {r["time"] for r in rows} >= {parse_time_ns(i["sampled_at"]) for i in truth[1:]}
        newest = {r["time"]: r for r in rows}[parse_time_ns(truth[1]["sampled_at"])]
        assert newest["voltage_v"] == truth[1]["voltage_millivolts"] / 1000
        assert newest["pilot_state"] == truth[1]["control_pilot_status"]
        assert newest["plugged_in"] is truth[1]["is_plugged_in"]
        commands = influxdb.query(f"SELECT reason, command_id FROM evenergy_command WHERE evse = '{evse.id}'",
                                  db=influx_db)
        assert {r["time"] for r in commands} == {parse_time_ns(i["logged_at"])
                                                  for i in sim.command_logs(evse.id, since)}
    # The tag set is the declared one, and the collector's health reports the quota left.
    assert [r["tagKey"] for r in influxdb.query("SHOW TAG KEYS FROM evenergy_status", db=influx_db)] == ["evse"]
    health = influxdb.query("SELECT quota_remaining, polls, polls_failed FROM collector_health "
                            "WHERE source = 'evenergy'", db=influx_db)
    assert health and health[-1]["polls"] == 5 and health[-1]["polls_failed"] in (None, 0)
    assert 0 < health[-1]["quota_remaining"] < 1000
