"""Real servers for tests: influxd (InfluxDB 1.x) and mosquitto, on free loopback ports.

Each runs in its own temporary directory and is stopped (and waited for) when the fixture
ends. Tests read back with InfluxQL through `InfluxServer.query`.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(predicate, what: str, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not become ready in {timeout} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@dataclass
class InfluxServer:
    url: str
    port: int
    workdir: Path
    proc: subprocess.Popen | None = None

    def query(self, q: str, db: str | None = None) -> list[dict]:
        """Run InfluxQL; returns the rows of the first statement's series as dicts."""
        params = {"q": q, "epoch": "ns"}
        if db:
            params["db"] = db
        response = httpx.post(f"{self.url}/query", data=params, timeout=30)
        response.raise_for_status()
        result = response.json()["results"][0]
        if "error" in result:
            raise RuntimeError(f"InfluxQL error for {q!r}: {result['error']}")
        rows = []
        for series in result.get("series", []):
            for values in series["values"]:
                row = dict(zip(series["columns"], values))
                row.update(series.get("tags") or {})
                row["_measurement"] = series.get("name")
                rows.append(row)
        return rows

    def create_database(self, name: str) -> None:
        self.query(f'CREATE DATABASE "{name}"')

    def count(self, db: str, measurement: str, field: str = "*") -> int:
        rows = self.query(f'SELECT count({field}) FROM "{measurement}"', db=db)
        if not rows:
            return 0
        return max(v for k, v in rows[0].items() if k.startswith("count") and isinstance(v, int))

    def start(self) -> None:
        conf = self.workdir / "influxdb.conf"
        rpc = free_port()
        conf.write_text(f"""
reporting-disabled = true
bind-address = "127.0.0.1:{rpc}"
[meta]
  dir = "{self.workdir}/meta"
[data]
  dir = "{self.workdir}/data"
  wal-dir = "{self.workdir}/wal"
  query-log-enabled = false
  wal-fsync-delay = "0s"
[http]
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
  max-body-size = 0
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
[subscriber]
  enabled = false
[logging]
  level = "warn"
""")
        log = self.workdir / "influxd.log"
        self.proc = subprocess.Popen(["influxd", "-config", str(conf)], stdout=log.open("wb"),
                                     stderr=subprocess.STDOUT, start_new_session=True)

        def ready() -> bool:
            try:
                return httpx.get(f"{self.url}/ping", timeout=1).status_code == 204
            except httpx.HTTPError:
                return False

        _wait_for(ready, "influxd", self.proc, log)

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None


@contextlib.contextmanager
def influx_server(workdir: Path) -> Iterator[InfluxServer]:
    if shutil.which("influxd") is None:
        raise RuntimeError("influxd not found: install the Debian package 'influxdb' (see README)")
    port = free_port()
    server = InfluxServer(url=f"http://127.0.0.1:{port}", port=port, workdir=workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class MosquittoServer:
    host: str
    port: int


@contextlib.contextmanager
def mosquitto_server(workdir: Path) -> Iterator[MosquittoServer]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        raise RuntimeError("mosquitto not found: install the Debian package 'mosquitto' (see README)")
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    log = workdir / "mosquitto.log"
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)

    def ready() -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
        return False

    try:
        _wait_for(ready, "mosquitto", proc, log)
        yield MosquittoServer("127.0.0.1", port)
    finally:
        _stop(proc)
