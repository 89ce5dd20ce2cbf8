"""APScheduler 3.x wiring: one job per (source, device, stream), in one asyncio process.

Every job runs at most once at a time (`max_instances=1`), late runs collapse into one
(`coalesce`), a run later than half its interval is skipped (misfire grace), and each interval
gets a little jitter so a fleet does not poll in lock-step. Provider limits are not the
scheduler's business: the limiter enforces them whatever the schedule says.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import datetime, timedelta, timezone
from typing import Iterable

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from collector.health import COLLECTOR, Health
from collector.http_outcomes import Action, SourceError, redact_text
from collector.log_throttle import LogThrottle
from collector.sources.base import SKIPPED, Job
from collector.store import StoreError

log = logging.getLogger(__name__)

STORE_KEY = "collector"

_HEALTH_COUNTER = {
    Action.RETRY: "errors_transient",
    Action.WAIT: "errors_rate_limited",
    Action.CONFIG: "errors_config",
    Action.DROP: "errors_payload",
}
_LEVEL = {
    Action.RETRY: logging.WARNING,
    Action.WAIT: logging.INFO,
    Action.CONFIG: logging.ERROR,
    Action.DROP: logging.WARNING,
}


class FailureLog:
    """One line per kind of failure, then a reminder every `every` seconds with a count.

    A charger offline all night must not write 30,000 identical lines; it writes one, and a
    short "still failing (N times)" every few minutes.
    """

    def __init__(self, every: float = 300.0) -> None:
        self._lines = LogThrottle(log, every)

    def emit(self, job_id: str, kind: str, level: int, message: str) -> None:
        self._lines.log((job_id, kind), level, "%s: %s", job_id, message)

    def recovered(self, job_id: str) -> None:
        for (_, kind), failures in self._lines.forget(lambda key: key[0] == job_id):
            log.info("%s: recovered from %s%s", job_id, kind,
                     f" (after {failures} failures)" if failures > 1 else "")


class JobRunner:
    """Runs polls: whatever happens is logged once and counted, never raised.

    It also remembers the polls in progress, so a shutdown can wait for their commits.
    """

    def __init__(self, health: Health, failures: FailureLog | None = None) -> None:
        self.health = health
        self.failures = failures or FailureLog()
        self.running: set[asyncio.Task] = set()
        self._store_failing = False

    async def run(self, job: Job) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.running.add(task)
        try:
            await self._run(job)
        finally:
            if task is not None:
                self.running.discard(task)

    async def _run(self, job: Job) -> None:
        health = self.health
        health.count(job.source, "polls")
        try:
            outcome = await job.run()
        except SourceError as exc:
            if exc.action is Action.NO_DATA:
                health.count(job.source, "no_data")
                return
            health.count(job.source, "polls_failed")
            health.count(job.source, _HEALTH_COUNTER[exc.action])
            message = redact_text(str(exc))
            health.error(job.source, message)
            self.failures.emit(job.id, exc.action.value, _LEVEL[exc.action], message)
            return
        except StoreError as exc:
            # The store, not this job: one line for the whole collector, not one per device.
            health.count(job.source, "polls_failed")
            message = redact_text(str(exc))
            health.error(COLLECTOR, message)
            self._store_failing = True
            self.failures.emit(STORE_KEY, "StoreError", logging.ERROR,
                               f"{message}; new points are held in memory (collector_health."
                               "held_points) and committed when it accepts writes again")
            return
        except Exception as exc:  # a bug or an unforeseen payload: report it, keep the schedule
            health.count(job.source, "polls_failed")
            health.count(job.source, "errors_payload")
            message = redact_text(f"{type(exc).__name__}: {exc}")
            health.error(job.source, message)
            self.failures.emit(job.id, type(exc).__name__, logging.ERROR,
                               f"failed unexpectedly: {message}")
            log.debug("%s: traceback", job.id, exc_info=True)
            return
        if outcome is SKIPPED:
            return
        self.failures.recovered(job.id)
        if self._store_failing:
            self._store_failing = False
            self.failures.recovered(STORE_KEY)


def build_scheduler(jobs: Iterable[Job], runner: JobRunner, jitter: float = 0.1) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone="UTC")
    jobs = list(jobs)
    source_of = {job.id: job.source for job in jobs}

    def late(event: JobEvent) -> None:
        # APScheduler logs each of these as a warning (silenced in cli.setup_logging): a
        # charger that hangs past its interval would write one a second. Counted instead.
        source = source_of.get(event.job_id)
        if source is not None:
            runner.health.count(source, "polls_late")

    scheduler.add_listener(late, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
    for job in jobs:
        scheduler.add_job(
            runner.run,
            IntervalTrigger(seconds=job.interval, jitter=job.interval * jitter or None),
            args=(job,),
            id=job.id,
            name=job.id,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(job.interval / 2)),
            next_run_time=_first_run(job),
        )
    return scheduler


def _first_run(job: Job) -> datetime:
    """Start soon, spread over up to one interval (at most 5 s) by a stable hash of the id.

    Every job runs right after start instead of a whole interval later, and a fleet's first
    polls do not all land in the same instant.
    """
    digest = hashlib.sha256(job.id.encode("utf-8")).digest()
    spread = min(job.interval, 5.0) * int.from_bytes(digest[:4], "big") / 2**32
    return datetime.now(timezone.utc) + timedelta(seconds=spread)
