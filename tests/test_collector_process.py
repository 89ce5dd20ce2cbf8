"""The collector as a real process: kill -9 loses nothing, SIGTERM exits cleanly, check reports."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collector.store import Store
from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent


def write_config(path: Path, store: Path, influx_url: str, db: str) -> Path:
    path.write_text(f"""
[collector]
health_interval = 1
[store]
path = "{store}"
[influxdb]
api = "v1"
url = "{influx_url}"
database = "{db}"
timeout = 2
""")
    return path


def start(config: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "collector.cli", "run", "--config", str(config)],
                            cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def wait_until(predicate, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def stored_times(store_path: Path) -> set[int]:
    store = Store(store_path)
    try:
        return {p.time_ns for chunk in store.query("collector_health") for p in chunk}
    finally:
        store.close()


@pytest.mark.slow
def test_kill_9_between_commit_and_ship_loses_nothing(tmp_path, influxdb, influx_db):
    store_path = tmp_path / "store.db"
    dead = write_config(tmp_path / "dead.toml", store_path, f"http://127.0.0.1:{free_port()}", influx_db)
    proc = start(dead, tmp_path / "run1.log")
    try:
        wait_until(lambda: store_path.exists() and len(stored_times(store_path)) >= 3,
                   what="three committed health points")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    committed = stored_times(store_path)
    assert committed, "nothing was committed before the kill"

    live = write_config(tmp_path / "live.toml", store_path, influxdb.url, influx_db)
    proc = start(live, tmp_path / "run2.log")

    def shipped() -> set[int]:
        rows = influxdb.query('SELECT * FROM collector_health WHERE "source" = \'collector\'', db=influx_db)
        return {row["time"] for row in rows}

    try:
        wait_until(lambda: committed <= shipped(), what="the backlog to reach InfluxDB")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, (tmp_path / "run2.log").read_text()
    assert committed <= shipped()
    log = (tmp_path / "run2.log").read_text()
    assert "stopping" in log


@pytest.mark.slow
def test_sigterm_flushes_and_leaves_an_empty_backlog(tmp_path, influxdb, influx_db):
    store_path = tmp_path / "store.db"
    config = write_config(tmp_path / "c.toml", store_path, influxdb.url, influx_db)
    proc = start(config, tmp_path / "run.log")
    try:
        wait_until(lambda: store_path.exists() and len(stored_times(store_path)) >= 2, what="health points")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    store = Store(store_path)
    try:
        assert store.pending_count() == 0
    finally:
        store.close()
    assert influxdb.count(influx_db, "collector_health", "polls") >= 2


def test_check_reports_what_works_and_what_does_not(tmp_path, influxdb, influx_db):
    good = write_config(tmp_path / "good.toml", tmp_path / "s.db", influxdb.url, influx_db)
    out = subprocess.run([sys.executable, "-m", "collector.cli", "check", "--config", str(good)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout and f"database {influx_db} present" in out.stdout
    bad = write_config(tmp_path / "bad.toml", tmp_path / "s.db", f"http://127.0.0.1:{free_port()}", influx_db)
    out = subprocess.run([sys.executable, "-m", "collector.cli", "check", "--config", str(bad)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "FAIL" in out.stdout and "cannot connect to 127.0.0.1:" in out.stdout and "Connection refused" in out.stdout


def test_bad_config_exits_2_with_one_clear_message(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[collector]\nhealth_intervall = 5\n")
    out = subprocess.run([sys.executable, "-m", "collector.cli", "run", "--config", str(config)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert f"{config}: invalid configuration" in out.stderr
    assert "collector.health_intervall: unknown key" in out.stderr
    assert "Traceback" not in out.stderr
