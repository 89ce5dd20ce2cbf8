"""The forwarder in a process of its own, beside the collector's.

Shipping is Python work per point (reading rows, building line protocol): in the collector's
process it shares the interpreter lock with polling, so a large backlog (a day of a fleet
after an outage) would make polls late, and appending and shipping together top out near
70,000 points/s. In a child process it uses a core of its own: about 100,000 points/s on
two cores (docs/performance.md).

The child opens the same store (SQLite serializes the two writers: the collector's commits
and the child's marks) and runs `Forwarder.run`. Once a second it sends its health counters
to the collector over a pipe, which `Health` then reports as before. It stops and flushes the
backlog when the collector asks (or on SIGTERM, as a service manager sends to every process
of the service), and exits on its own when the collector's process is gone.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from collector.health import COLLECTOR, Health

log = logging.getLogger(__name__)

REPORT_EVERY = 1.0       # seconds between health reports to the collector
COUNTERS = ("shipped", "ship_failures")
GAUGES = ("influx_ok",)


class ForwarderProcess:
    """Starts, watches and stops the forwarder's child process; relays its health."""

    def __init__(self, store_path: str | Path, synchronous: str, influx: Any, batch_size: int,
                 health: Health, grace: float = 10.0) -> None:
        self.args = (str(store_path), synchronous, influx, batch_size, grace)
        self.health = health
        self._ctx = multiprocessing.get_context("spawn")   # no inherited threads or sockets
        self._proc: Any = None
        self._conn: Connection | None = None
        self._stop: Any = None
        self._reading: asyncio.AbstractEventLoop | None = None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def start(self) -> None:
        receive, send = self._ctx.Pipe(duplex=False)
        self._stop = self._ctx.Event()
        self._proc = self._ctx.Process(
            target=_child, name="ev-collector-forwarder", daemon=True,
            args=(*self.args, logging.getLogger().level, self._stop, send))
        self._proc.start()
        send.close()
        self._conn = receive
        try:
            loop = asyncio.get_running_loop()
            loop.add_reader(receive.fileno(), self.relay)
            self._reading = loop
        except (RuntimeError, NotImplementedError):   # no running loop, or Windows:
            self._reading = None                      # `relay` is called with health instead

    def relay(self) -> None:
        """Apply the health reports the child has sent since the last call."""
        conn = self._conn
        while conn is not None and not conn.closed and conn.poll():
            try:
                report = conn.recv()
            except (EOFError, OSError):
                self._stop_reading()
                return
            for name, amount in report.get("counts", {}).items():
                self.health.count(COLLECTOR, name, amount)
            for name, value in report.get("gauges", {}).items():
                self.health.gauge(COLLECTOR, name, value)

    def check(self) -> None:
        """Start the child again if it died (it logged why): shipping must not stop."""
        if self._proc is not None and not self._proc.is_alive() and not self._stop.is_set():
            log.error("the forwarder process exited (code %s); starting it again",
                      self._proc.exitcode)
            self.relay()
            self._stop_reading()
            self.start()

    async def stop(self) -> None:
        """Ask the child to ship what it can within its grace period, then to exit."""
        if self._proc is None:
            return
        self._stop.set()
        grace = self.args[-1]
        await asyncio.to_thread(self._proc.join, grace + 5.0)
        if self._proc.is_alive():
            log.warning("the forwarder process did not stop in %.0f s; terminating it", grace + 5)
            self._proc.terminate()
            await asyncio.to_thread(self._proc.join, 5.0)
        self.relay()
        self._stop_reading()
        if self._conn is not None:
            self._conn.close()

    def _stop_reading(self) -> None:
        if self._reading is not None and self._conn is not None and not self._conn.closed:
            try:
                self._reading.remove_reader(self._conn.fileno())
            except (ValueError, OSError):   # closed meanwhile
                pass
        self._reading = None


def _child(store_path: str, synchronous: str, influx: Any, batch_size: int, grace: float,
           level: int, stop: Any, conn: Connection) -> None:
    """The child's main: the forwarder until the collector says stop or is gone."""
    from collector.cli import setup_logging

    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C reaches the group: the parent decides
    setup_logging(logging.getLevelName(level))
    asyncio.run(_forward(store_path, synchronous, influx, batch_size, grace, stop, conn))


async def _forward(store_path: str, synchronous: str, influx: Any, batch_size: int,
                   grace: float, stop_flag: Any, conn: Connection) -> None:
    from collector.influx import Forwarder, make_target, wait_or_stop
    from collector.store import Store

    store = Store(store_path, synchronous)
    target = make_target(influx)
    health = Health()
    forwarder = Forwarder(store, target, health, batch_size=batch_size)
    stop = asyncio.Event()
    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    except NotImplementedError:   # Windows: the collector's stop flag is the only way
        log.debug("no SIGTERM handler on this platform; the forwarder stops when asked")
    parent = multiprocessing.parent_process()
    sent: dict[str, int] = {}
    task = asyncio.create_task(forwarder.run(stop), name="forwarder")
    try:
        while not stop.is_set():
            await wait_or_stop(stop, REPORT_EVERY)
            if stop_flag.is_set() or (parent is not None and not parent.is_alive()):
                stop.set()
            _report(conn, health, sent)
        await task
        if parent is None or parent.is_alive():
            empty = await forwarder.flush(time.monotonic() + grace)
            if not empty:
                log.warning("%d points not yet shipped; they stay in the local store and ship "
                            "on the next start", store.pending_count())
        _report(conn, health, sent)
    finally:
        target.close()
        store.close()


def _report(conn: Connection, health: Health, sent: dict[str, int]) -> None:
    """Counter increments since the last report, and the gauges, to the collector."""
    counts = {}
    for name in COUNTERS:
        total = health.get(COLLECTOR, name)
        if total != sent.get(name, 0):
            counts[name] = total - sent.get(name, 0)
            sent[name] = total
    gauges = {name: value for name, value in health.gauges.get(COLLECTOR, {}).items()
              if name in GAUGES}
    try:
        conn.send({"counts": counts, "gauges": gauges})
    except (BrokenPipeError, OSError):
        pass   # the collector is gone: the loop above notices and stops
