"""The collector as a subprocess, for the fault suite: start, kill, read its store and log."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from collector.store import Store

ROOT = Path(__file__).resolve().parents[2]


def goe_config(path: Path, store: Path, sim_url: str, token: str, chargers: int = 2, *,
               influx_url: str | None = None, database: str = "", collector: str = "",
               influxdb: str = "", goe: str = "") -> Path:
    """A config that polls `chargers` simulated cloud chargers (000001, ...) every second,
    shipping to InfluxDB 1.x when `influx_url` is given; `collector`, `influxdb` and `goe` are
    extra lines for those sections."""
    influx = (f'[influxdb]\napi = "v1"\nurl = "{influx_url}"\ndatabase = "{database}"\n'
              f'timeout = "2s"\n{influxdb}\n' if influx_url else "")
    fleet = "".join(f'[[sources.goe.chargers]]\nserial = "{n:06d}"\ntoken = "{token}"\n'
                    for n in range(1, chargers + 1))
    path.write_text(f"""[collector]
health_interval = 1
{collector}
[store]
path = "{store}"
{influx}[sources.goe]
interval = "1s"
cloud_url = "{sim_url}/{{serial}}"
{goe}
{fleet}""")
    return path


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition",
               proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
            raise AssertionError(f"the collector exited ({proc.returncode}) waiting for {what}:\n{tail}")
        time.sleep(0.1)
    tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{tail}")


@dataclass
class CollectorProcess:
    config: Path
    log: Path
    proc: subprocess.Popen | None = None

    def start(self) -> "CollectorProcess":
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "collector.cli", "run", "--config", str(self.config)],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(ROOT)})
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code (the process is killed if it hangs)."""
        if self.proc is None:
            raise RuntimeError("stop() of a collector process that was never started")
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"the collector ignored SIGTERM for {timeout} s")
        return self.proc.returncode

    def lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines() if self.log.exists() else []

    def __enter__(self) -> "CollectorProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


def read_store(path: Path, measurements: tuple[str, ...] | None = None) -> dict[tuple, dict]:
    """{(measurement, sorted tags, time_ns): fields} for every stored point (read-only use)."""
    store = Store(path)
    try:
        out = {}
        for measurement in measurements or tuple(store.measurements()):
            for chunk in store.query(measurement):
                for p in chunk:
                    out[(measurement, tuple(sorted(p.tags.items())), p.time_ns)] = p.fields
        return out
    finally:
        store.close()


def read_cursors(path: Path, prefix: str = "") -> dict[str, str]:
    store = Store(path)
    try:
        return store.cursors(prefix)
    finally:
        store.close()


def last_health(path: Path, source: str) -> dict[str, object]:
    """The newest collector_health fields for `source` in the store ({} if none yet)."""
    store = Store(path)
    try:
        latest: tuple[int, dict] = (-1, {})
        for chunk in store.query("collector_health", tags={"source": source}):
            for p in chunk:
                if p.time_ns > latest[0]:
                    latest = (p.time_ns, p.fields)
        return latest[1]
    finally:
        store.close()


_LEVEL = re.compile(r"^\S+ \S+ (WARNING|ERROR|CRITICAL)\s")


def problem_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if _LEVEL.match(line)]


def assert_no_secrets(secrets: list[str], log: Path, store: Path) -> None:
    """No secret in the log, nor in any stored string (health's last_error carries messages)."""
    text = log.read_text(errors="replace")
    stored = [v for fields in read_store(store).values() for v in fields.values() if isinstance(v, str)]
    for secret in secrets:
        assert secret not in text, "a secret reached the log"
        assert not any(secret in value for value in stored), "a secret reached the store"
