"""The running collector: store, sources, scheduler and forwarder wired together."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from collector.forwarder_process import ForwarderProcess
from collector.health import COLLECTOR, Health
from collector.influx import Forwarder, InfluxTarget, WriteError, make_target
from collector.limits import Limits
from collector.rollups import MEASUREMENTS as ROLLUPS
from collector.rollups.job import RollupJob, names_from
from collector.schedule import JobRunner, build_scheduler
from collector.sessions.job import SessionDeriver
from collector.sources import instances, load_all_sources
from collector.sources.base import CheckResult, Job, Source, SourceContext
from collector.store import Store, StoreError
from collector.writer import PointWriter

try:
    import fcntl
except ImportError:          # Windows: no flock; a second process on one store is not refused
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

HOUSEKEEPING_INTERVAL = 600.0
SHARD_LAYOUT = "collector:shard"      # cursor: "<shard>/<shards>" this store last ran as


class StoreInUse(StoreError):
    """Another collector process runs on this store."""


def lock_store(path: Path) -> IO[bytes]:
    """Hold `<store>.lock` while the collector runs: two processes on one store (shards that
    share a config whose `[store] path` lacks `{shard}`) would poll one device twice."""
    handle = open(f"{path}.lock", "a+b")  # noqa: SIM115  (held until the collector stops)
    if fcntl is None:
        return handle
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise StoreInUse(f"another collector is running on the local store {path}; each process "
                         f"needs its own (with shards, put {{shard}} in [store] path)") from None
    return handle


class Collector:
    def __init__(self, config: Any, limits: Limits | None = None) -> None:
        self.config = config
        self.store = Store(config.store.path, config.store.synchronous)
        self.health = Health(collector=config.collector.name, shard=config.collector.shard)
        self.limits = limits or Limits()
        self.writer = PointWriter(self.store, self.health,
                                  commit_interval=config.store.commit_interval)
        self.context = SourceContext(cursors=self.store, writer=self.writer, limits=self.limits,
                                     health=self.health, shard=config.collector.shard,
                                     shards=config.collector.shards)
        self.sources: list[Source] = []
        for name, module in load_all_sources().items():
            for section in instances(config.sources, name):
                self.sources.append(module.build(section, self.context))
        self.target: InfluxTarget | None = make_target(config.influxdb) if config.influxdb else None
        self.sessions = (SessionDeriver(config.sessions, self.store, self.writer)
                         if config.sessions.enabled else None)
        self.rollups = (RollupJob(config.rollups, self.store, self.writer, names_from(config.sessions))
                        if config.rollups.enabled else None)
        self.forwarder = (Forwarder(self.store, self.target, self.health,
                                    batch_size=config.influxdb.batch_size)
                          if self.target else None)
        self.shipper: ForwarderProcess | None = None

    def jobs(self) -> list[Job]:
        jobs = [job for source in self.sources for job in source.jobs()]
        jobs.append(Job(id="collector:health", interval=self.config.collector.health_interval,
                        run=self.write_health, source=COLLECTOR))
        if self.sessions is not None:
            jobs.append(Job(id="collector:sessions", interval=self.config.sessions.interval,
                            run=self.sessions.run, source=COLLECTOR))
        if self.rollups is not None:
            jobs.append(Job(id="collector:rollups", interval=self.config.rollups.interval,
                            run=self.rollups.run, source=COLLECTOR))
        jobs.append(Job(id="collector:housekeeping", interval=HOUSEKEEPING_INTERVAL,
                        run=self.housekeeping, source=COLLECTOR))
        return jobs

    async def write_health(self) -> None:
        if self.shipper is not None:
            self.shipper.relay()
            self.shipper.check()
        if self.target is not None:   # without InfluxDB nothing ships: no backlog to count
            backlog = await asyncio.to_thread(self.store.pending_count)
            self.health.gauge(COLLECTOR, "backlog", backlog)
        figures = await asyncio.to_thread(self.store.figures)
        self.health.gauge(COLLECTOR, "dead_letters", figures.dead_letters)
        self.health.gauge(COLLECTOR, "store_bytes", figures.size_bytes)
        self.health.gauge(COLLECTOR, "store_discarded", figures.discarded)
        self.health.gauge(COLLECTOR, "nonfinite_dropped", self.store.nonfinite_dropped)
        self.health.gauge(COLLECTOR, "shards", self.config.collector.shards)
        await self.writer.write(self.health.points())

    async def housekeeping(self) -> None:
        if self.target is not None and self.config.store.retention > 0:
            cutoff = time.time_ns() - int(self.config.store.retention * 1e9)
            # the daily rollups stay: each month is summed from them
            pruned = await asyncio.to_thread(self.store.prune_shipped, cutoff, ROLLUPS)
            if pruned:
                log.info("pruned %d shipped points older than the store retention", pruned)
        if self.config.store.max_size_mb:
            await asyncio.to_thread(self.store.enforce_size, int(self.config.store.max_size_mb * 1e6))
        await asyncio.to_thread(self.store.checkpoint)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set, then commit in-flight work and flush what we can."""
        lock = lock_store(self.store.path)
        try:
            await self._run(stop)
        finally:
            lock.close()

    async def _note_shard_layout(self) -> None:
        """Say so when this store last ran as another shard or with another `shards`: units
        moved between processes, and the moved ones start again in their new store."""
        now = f"{self.config.collector.shard}/{self.config.collector.shards}"
        before = self.store.cursor(SHARD_LAYOUT)
        if before is not None and before != now:
            shard, _, shards = before.partition("/")
            log.warning("this store last ran as shard %s of %s, now as shard %s of %s: chargers, "
                        "clients, accounts and sites moved between shards. What moved here starts "
                        "from its source's backfill window (no gap, some requests to re-read); every "
                        "process of the fleet must now run with shards = %d (docs/operations.md)",
                        shard, shards, self.config.collector.shard, self.config.collector.shards,
                        self.config.collector.shards)
        if before != now:
            await self.writer.write([], cursors={SHARD_LAYOUT: now})

    async def _run(self, stop: asyncio.Event) -> None:
        await self._note_shard_layout()
        for source in self.sources:
            await source.start()
        runner = JobRunner(self.health)
        scheduler = build_scheduler(self.jobs(), runner, self.config.collector.jitter)
        scheduler.start()
        grace = self.config.collector.stop_grace
        # The forwarder ships from a process of its own (collector/forwarder_process.py); a
        # store in memory cannot be shared, so there it runs as a task of this process.
        shipper = forwarder_task = None
        if self.forwarder is not None and str(self.store.path) != ":memory:":
            shipper = self.shipper = ForwarderProcess(
                self.store.path, self.config.store.synchronous, self.config.influxdb,
                self.config.influxdb.batch_size, self.health, grace=grace)
            shipper.start()
        elif self.forwarder is not None:
            forwarder_task = asyncio.create_task(self.forwarder.run(stop), name="forwarder")
        log.info("collector running: %d jobs, store %s, %s", len(scheduler.get_jobs()),
                 self.store.path, self.target.description if self.target else "embedded store only")
        try:
            await stop.wait()
        finally:
            log.info("stopping: letting running polls finish and commit (up to %g s)", grace)
            # Pause, not shut down: APScheduler's shutdown cancels the runs in progress.
            scheduler.pause()
            runner.stopping = True
            self.limits.stop()            # polls waiting for their turn have sent nothing: done
            await self._finish(runner, grace)
            scheduler.shutdown(wait=False)
            try:
                # The counters as they stand at the stop, shipped with the flush below: without
                # it the last health sample predates the stop's own work (a backlog drained).
                await self.write_health()
            except Exception as exc:  # the flush below must still run
                log.warning("the last health sample could not be written: %s", exc)
            for source in self.sources:
                try:
                    await source.close()
                except Exception as exc:  # closing must not hide the flush below
                    log.warning("closing source %s failed: %s", getattr(source, "name", source), exc)
            try:
                # write on change: each series' last unchanged sample, so its value ends at
                # the stop (shipped with the flush below), not up to a heartbeat before it
                await asyncio.to_thread(self.store.store_left_out)
            except StoreError as exc:
                log.error("%s: the last unchanged samples are not stored", exc)
            if shipper is not None:
                await shipper.stop()          # it ships what it can first, and says so
            elif forwarder_task is not None and self.forwarder is not None:
                await forwarder_task
                if not await self.forwarder.flush(time.monotonic() + grace):
                    log.warning("%d points not yet shipped; they stay in the local store and "
                                "ship on the next start", self.store.pending_count())
            self.close()

    async def _finish(self, runner: JobRunner, grace: float) -> None:
        """Wait up to `grace` for the polls in flight; cancel what is still running then."""
        if not runner.running:
            return
        _, late = await asyncio.wait(set(runner.running), timeout=grace)
        if late:
            log.warning("stopping: %d polls still running after %g s are cancelled (what they "
                        "had not committed is asked for again next time)", len(late), grace)
            for task in late:
                task.cancel()
            await asyncio.wait(late, timeout=5.0)

    async def check(self) -> list[CheckResult]:
        results: list[CheckResult] = []
        if self.target is None:
            results.append(CheckResult("InfluxDB", True, "not configured: the local store is the database"))
        else:
            try:
                detail = await asyncio.to_thread(self.target.ping)
                results.append(CheckResult(self.target.description, True, detail))
            except WriteError as exc:
                results.append(CheckResult(self.target.description, False, str(exc)))
        for source in self.sources:
            try:
                results.extend(await source.check())
            except Exception as exc:
                results.append(CheckResult(getattr(source, "name", "source"), False,
                                           f"check failed: {type(exc).__name__}: {exc}"))
            finally:
                await source.close()
        return results

    def close(self) -> None:
        if self.target is not None:
            self.target.close()
        self.store.close()


def format_checks(results: Sequence[CheckResult]) -> str:
    width = max((len(r.target) for r in results), default=10)
    lines = [f"{'target':<{width}}  status  detail", f"{'-' * width}  ------  ------"]
    for r in results:
        lines.append(f"{r.target:<{width}}  {'ok' if r.ok else 'FAIL':<6}  {r.detail}")
    return "\n".join(lines)
