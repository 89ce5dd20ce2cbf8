"""The running collector: store, sources, scheduler and forwarder wired together."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

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
        self.store = Store(config.store.path, config.store.synchronous,
                           keep_lines=config.influxdb is not None)
        self.health = Health(collector=config.collector.name, shard=config.collector.shard)
        self.limits = limits or Limits()
        self.writer = PointWriter(self.store, self.health)
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
        backlog = await asyncio.to_thread(self.store.pending_count)
        self.health.gauge(COLLECTOR, "backlog", backlog)
        stats = await asyncio.to_thread(self.store.stats)
        self.health.gauge(COLLECTOR, "dead_letters", stats.dead_letters)
        self.health.gauge(COLLECTOR, "store_bytes", stats.size_bytes)
        self.health.gauge(COLLECTOR, "store_discarded", stats.discarded)
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
        forwarder_task = (asyncio.create_task(self.forwarder.run(stop), name="forwarder")
                          if self.forwarder else None)
        log.info("collector running: %d jobs, store %s, %s", len(scheduler.get_jobs()),
                 self.store.path, self.target.description if self.target else "embedded store only")
        grace = self.config.collector.stop_grace
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
            if forwarder_task is not None and self.forwarder is not None:
                await forwarder_task
                empty = await self.forwarder.flush(time.monotonic() + grace)
                pending = self.store.pending_count()
                if not empty:
                    log.warning("%d points not yet shipped; they stay in the local store and "
                                "ship on the next start", pending)
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
