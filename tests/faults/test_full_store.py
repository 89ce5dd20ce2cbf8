"""The store's disk fills up: a clear error naming the store, nothing corrupted, nothing lost
that was collected while it was full, and recovery when space returns."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collector.sim.base import SimServer
from collector.sim.goe import GoeSimulator
from collector.store import Store
from tests.faults.harness import (ROOT, CollectorProcess, assert_no_secrets, goe_config, last_health,
                                  read_store, wait_until)

TOKEN = "tok-full-SECRET-2718"


class FullStoreCollector(CollectorProcess):
    def __init__(self, config: Path, log: Path, max_pages: int) -> None:
        super().__init__(config, log)
        self.max_pages = max_pages

    def start(self) -> "FullStoreCollector":
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.faults.full_store_child", str(self.max_pages),
                 "run", "--config", str(self.config)],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(ROOT)})
        return self


def page_count(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute("PRAGMA page_count").fetchone()[0]
    finally:
        db.close()


@pytest.mark.slow
def test_a_full_store_says_so_loses_nothing_and_recovers(tmp_path, influxdb, influx_db):
    sim = GoeSimulator.fleet(2, seed=4, token=TOKEN)
    store = tmp_path / "store.db"
    Store(store).close()                       # the schema's pages, before the limit
    limit = page_count(store) + 3              # room for a few seconds of points
    with SimServer(sim) as server:
        cfg = goe_config(tmp_path / "c.toml", store, server.url, TOKEN, influx_url=influxdb.url,
                         database=influx_db)
        with FullStoreCollector(cfg, tmp_path / "collector.log", limit) as collector:
            wait_until(lambda: "disk is full" in collector.log.read_text(), timeout=60,
                       what="the store to fill up", proc=collector.proc, log=collector.log)
            full_at = time.time()
            time.sleep(4.0)                    # polls go on while nothing can be committed
            assert collector.alive
            collector.proc.send_signal(signal.SIGUSR1)
            wait_until(lambda: last_health(store, "goe").get("polls", 0) > 0
                       and any(k[2] > full_at * 1e9 + 3e9 for k in read_store(store, ("goe_status",))),
                       timeout=30, what="points committed after space returned",
                       proc=collector.proc, log=collector.log)
            assert collector.stop() == 0

    log = collector.log.read_text()
    assert_no_secrets([TOKEN], collector.log, store)
    lines = log.splitlines()
    full_lines = [line for line in lines if "disk is full" in line]
    # one ERROR naming the store while it stays full (not one per poll), no false "recovered"
    # while points are only held in memory, one line when a commit succeeds again
    assert len(full_lines) == 1 and " ERROR " in full_lines[0], "\n".join(full_lines) or log[-3000:]
    assert str(store) in full_lines[0]
    assert not [line for line in lines if "recovered" in line], log[-3000:]
    again = [n for n, line in enumerate(lines) if "accepts writes again" in line]
    assert len(again) == 1 and again[0] > lines.index(full_lines[0])

    check = sqlite3.connect(store)
    try:
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        orphans = check.execute("SELECT count(*) FROM points p LEFT JOIN series s "
                                "ON s.id = p.series_id WHERE s.id IS NULL").fetchone()[0]
        assert orphans == 0
    finally:
        check.close()

    # no second of a charger's clock that was served while the store was full is missing:
    # the points waited in memory and were committed when space returned
    stored = {(dict(k[1])["serial"], k[2] // 1_000_000_000) for k in read_store(store, ("goe_status",))}
    for serial in ("000001", "000002"):
        served = sorted({int(t) for t in sim.status_request_times(serial)})
        during = [t for t in served if full_at + 0.5 <= t <= full_at + 3.5]
        assert during
        assert all((serial, t) in stored or (serial, t - 1) in stored for t in during), serial
    assert influxdb.count(influx_db, "goe_status", "energy_total_wh") == len(
        read_store(store, ("goe_status",)))
