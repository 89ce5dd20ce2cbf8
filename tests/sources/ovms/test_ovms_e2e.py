"""End to end: OVMS jobs -> PointWriter -> Store -> Forwarder -> real InfluxDB (v1), read back
with InfluxQL; and the `backfill` command against the simulator on a loopback port."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from collector import cli
from collector.backfill import run_backfill
from collector.config import load_config, parse_config
from collector.influx import Forwarder, make_target
from collector.sim.base import SimServer

from .helpers import PASSWORD, make_sim, make_source

FIXED = 1795200330.0   # 2026-11-20 18:45:30 UTC: DEMO1 charging at home


def ship(ctx, influxdb, db) -> None:
    cfg = parse_config({"influxdb": {"api": "v1", "url": influxdb.url, "database": db}}).influxdb
    target = make_target(cfg)
    try:
        assert asyncio.run(Forwarder(ctx.writer.store, target, ctx.health).flush(time.monotonic() + 30))
    finally:
        target.close()


def test_jobs_to_influxdb_and_back(tmp_path, influxdb, influx_db):
    sim = make_sim(clock=lambda: FIXED, history_days=3)
    source, ctx = make_source(tmp_path / "s.db", sim, vehicles=["DEMO1", "DEMO2", "DEMO3"])

    async def poll_all():
        for job in source.jobs():
            await job.run()
        await source.close()

    asyncio.run(poll_all())
    ship(ctx, influxdb, influx_db)

    [charge] = influxdb.query("SELECT soc_pct, charge_power_w, charge_state FROM ovms_charge "
                              "WHERE vehicle = 'DEMO1'", db=influx_db)
    assert charge["time"] == 1795200300 * 10**9           # m_msgtime_s, 18:45:00
    # 7.2 kW from the wall, of which 88-92 % reach the battery (`chargepower`)
    assert charge["charge_state"] == "charging" and 7200 * 0.88 <= charge["charge_power_w"] <= 7200 * 0.92
    [flags] = influxdb.query("SELECT charging, locked, odometer_km FROM ovms_vehicle WHERE vehicle = 'DEMO1'",
                             db=influx_db)
    assert flags["charging"] is True and flags["odometer_km"] > 10000
    wheels = influxdb.query("SELECT pressure_kpa FROM ovms_tpms WHERE vehicle = 'DEMO2'", db=influx_db)
    assert sorted(round(w["pressure_kpa"]) for w in wheels) == [250, 251, 261, 262]
    for vehicle in ("DEMO1", "DEMO2"):
        records = sim.history_records(vehicle, FIXED)
        trips = influxdb.query(f"SELECT count(trip_km) FROM ovms_trip WHERE vehicle = '{vehicle}'", db=influx_db)
        assert trips[0]["count"] == len(records["*-LOG-Trip"])
        grids = influxdb.query(f"SELECT count(record_number) FROM ovms_grid WHERE vehicle = '{vehicle}'",
                               db=influx_db)
        assert grids[0]["count"] == len(records["*-LOG-Grid"])
        raw = influxdb.query(f"SELECT count(data) FROM ovms_record WHERE vehicle = '{vehicle}'", db=influx_db)
        assert raw[0]["count"] == len(records["*-OVM-Utilisation"])   # two per day, same second
    assert influxdb.query("SELECT * FROM ovms_charge WHERE vehicle = 'DEMO3'", db=influx_db) == []

    # Polling again changes nothing: no new rows to ship.
    again, ctx2 = make_source(tmp_path / "s.db", sim, vehicles=["DEMO1", "DEMO2", "DEMO3"])

    async def poll_again():
        for job in again.jobs():
            await job.run()
        await again.close()

    asyncio.run(poll_again())
    assert ctx2.writer.store.pending_count() == 0


def write_config(path: Path, url: str, store: Path, influx: tuple[str, str] | None = None) -> Path:
    text = f'[store]\npath = "{store}"\n'
    if influx:
        text += f'[influxdb]\napi = "v1"\nurl = "{influx[0]}"\ndatabase = "{influx[1]}"\n'
    text += (f'[sources.ovms]\nurl = "{url}"\nusername = "demo"\n'
             f'password = {{ env = "OVMS_TEST_PASSWORD" }}\n')
    path.write_text(text)
    return path


def test_backfill_command_end_to_end(tmp_path, influxdb, influx_db, monkeypatch, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    logging.getLogger("httpx").setLevel(logging.DEBUG)
    monkeypatch.setenv("OVMS_TEST_PASSWORD", PASSWORD)

    def said() -> str:
        """What the backfill command has logged since the last call (its report)."""
        text = caplog.text
        caplog.clear()
        return text

    sim = make_sim(history_days=5)
    with SimServer(sim) as server:
        config = write_config(tmp_path / "c.toml", server.url, tmp_path / "store.db", (influxdb.url, influx_db))
        assert cli.main(["backfill", "--config", str(config), "--source", "ovms", "--no-progress"]) == 0
        now = time.time()
        expected = {v: sim.history_records(v, now) for v in ("DEMO1", "DEMO2")}
        total = sum(len(rows) for records in expected.values() for rows in records.values())
        err = said()
        assert f"{total} records read" in err and "shipped to InfluxDB" in err
        for vehicle, records in expected.items():
            trips = influxdb.query(f"SELECT count(trip_km) FROM ovms_trip WHERE vehicle = '{vehicle}'", db=influx_db)
            assert trips[0]["count"] == len(records["*-LOG-Trip"])

        # Resumable: a second run finds the cursors and reads nothing again.
        assert cli.main(["backfill", "--config", str(config), "--source", "ovms", "--no-progress"]) == 0
        assert "0 records read" in said()

        # --reread reads it all again; the same points change nothing, so nothing is re-shipped.
        assert cli.main(["backfill", "--config", str(config), "--source", "ovms", "--reread",
                         "--no-progress"]) == 0
        err = said()
        assert f"{total} records read" in err and "shipped to InfluxDB" in err
        from collector.store import Store

        store = Store(tmp_path / "store.db")
        try:
            assert store.stats().shipped == total and store.pending_count() == 0
        finally:
            store.close()

        # --since into a fresh store takes only the newer records.
        recent = write_config(tmp_path / "r.toml", server.url, tmp_path / "recent.db")
        since = time.strftime("%Y-%m-%d", time.gmtime(now - 2 * 86400))
        assert cli.main(["backfill", "--config", str(recent), "--source", "ovms", "--since", since,
                         "--no-progress"]) == 0
        store = Store(tmp_path / "recent.db")
        try:
            trips = [p for chunk in store.query("ovms_trip") for p in chunk]
        finally:
            store.close()
        wanted = [r for r in expected["DEMO1"]["*-LOG-Trip"] + expected["DEMO2"]["*-LOG-Trip"] if r[0] >= since]
        assert len(trips) == len(wanted) > 0
    assert sim.logouts == 4
    assert PASSWORD not in caplog.text and "s3cret" not in caplog.text
    assert "s3cret" not in capsys.readouterr().err


class CountingProgress:
    def __init__(self) -> None:
        self.total = 0
        self.done = 0
        self.notes: list[str] = []

    def add_total(self, records: int) -> None:
        self.total += records

    def advance(self, records: int, note: str = "") -> None:
        self.done += records
        self.notes.append(note)


def test_backfill_reports_progress_per_vehicle_and_type(tmp_path, monkeypatch):
    monkeypatch.setenv("OVMS_TEST_PASSWORD", PASSWORD)
    sim = make_sim(clock=lambda: FIXED, history_days=2)
    config = load_config(write_config(tmp_path / "c.toml", "http://ovms.test:6868", tmp_path / "s.db"))
    from collector.sim.base import mock_transport

    progress = CountingProgress()
    assert asyncio.run(run_backfill(config, "ovms", None, progress, http_transport=mock_transport(sim))) == 0
    assert progress.total == progress.done > 0
    assert "DEMO2 *-LOG-Grid" in progress.notes


def test_backfill_of_an_unconfigured_source_is_a_clear_error(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text(f'[store]\npath = "{tmp_path / "s.db"}"\n')
    assert cli.main(["backfill", "--config", str(config), "--source", "ovms"]) == 2
    assert "not configured" in capsys.readouterr().err
