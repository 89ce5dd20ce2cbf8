"""APScheduler 3.x wiring: one job per (source, device, stream), in one asyncio process.

Every job runs on a fixed grid: at `offset + k * interval` seconds since the Unix epoch, where
the offset is a fixed share of the interval derived from a hash of the device id (spreading a
fleet so that it does not poll in lock-step). APScheduler's own jitter added each random delay
to the previous jittered time, so a 1 s job ran every ~1.05 s and lost a sample in twenty; a
grid cannot drift. Every job runs at most once at a time (`max_instances=1`), late runs
collapse into one (`coalesce`), and a run later than half its interval is skipped (misfire
grace). Provider limits are not the scheduler's business: the limiter enforces them whatever
the schedule says.

The job runner turns whatever a run ends with into one outcome: counted in health, logged
once per cause and device (then a reminder with a count), `retry_after` honoured, and
configuration errors (401/403) retried at a growing interval instead of every run.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger

from collector.health import ERROR_COUNTERS, Health
from collector.http_outcomes import Action, SourceError, redact_text
from collector.limits import Clock, Stopping, wall_clock
from collector.log_throttle import LogThrottle
from collector.poll import Outcome
from collector.sources.base import Job
from collector.store import StoreError

log = logging.getLogger(__name__)

# Configuration errors are retried after this long, doubling up to the cap: a person has to
# fix something, and the device must not be asked once a second meanwhile.
CONFIG_BACKOFF_FIRST = 10.0
CONFIG_BACKOFF_MAX = 300.0
# A 429 (or a proxy's) without Retry-After: wait this long before asking again.
DEFAULT_WAIT = 60.0

_LEVEL = {
    Action.RETRY: logging.WARNING,
    Action.WAIT: logging.INFO,
    Action.CONFIG: logging.ERROR,
    Action.DROP: logging.WARNING,
}


class FailureLog:
    """One line per cause of failure and job, then a reminder every `every` seconds with a count.

    A charger offline all night must not write 30,000 identical lines; it writes one, and a
    short "repeated N times" every few minutes. A new cause (a timeout, then HTTP 500, then a
    refused connection) is a new line at once; "recovered" names what it recovered from.
    """

    def __init__(self, every: float = 300.0) -> None:
        self._lines = LogThrottle(log, every)
        self._failures: dict[str, int] = {}

    def emit(self, job_id: str, cause: str, level: int, message: str) -> None:
        self._failures[job_id] = self._failures.get(job_id, 0) + 1
        self._lines.log((job_id, cause), level, "%s: %s", job_id, message)

    def recovered(self, job_id: str) -> None:
        failures = self._failures.pop(job_id, 0)
        gone = self._lines.forget(lambda key: isinstance(key, tuple) and key[0] == job_id)
        causes = [str(key[1]) for key, _ in gone if isinstance(key, tuple)]
        if causes:
            log.info("%s: recovered from %s%s", job_id, ", ".join(causes),
                     f" (after {failures} failures)" if failures > 1 else "")


@dataclass
class _JobState:
    not_before: float = 0.0          # no run before this (retry_after, configuration backoff)
    config_failures: int = 0


class JobRunner:
    """Runs polls: whatever happens is logged once and counted, never raised.

    It also remembers the polls in progress, so a shutdown can wait for their commits.
    """

    def __init__(self, health: Health, failures: FailureLog | None = None,
                 clock: Clock = wall_clock) -> None:
        self.health = health
        self.failures = failures or FailureLog()
        self.clock = clock
        self.running: set[asyncio.Task] = set()
        self.stopping = False
        self._state: dict[str, _JobState] = {}      # by job id: retry_after
        self._config: dict[str, _JobState] = {}     # by Job.config_scope: configuration back-off

    async def run(self, job: Job) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.running.add(task)
        try:
            await self._run(job)
        except asyncio.CancelledError:
            # Only a stop cancels a poll (one that outlasted the grace period): it commits
            # nothing, and a history stream asks again from its cursor next time.
            if not self.stopping:
                raise
            log.info("%s: stopped before it finished", job.id)
        finally:
            if task is not None:
                self.running.discard(task)

    async def _run(self, job: Job) -> None:
        state = self._state.get(job.id)
        if state is None:
            state = self._state[job.id] = _JobState()
        scope = self._config.get(job.config_scope)
        if scope is None:
            scope = self._config[job.config_scope] = _JobState()
        if self.stopping or self.clock() < max(state.not_before, scope.not_before):
            return
        health = self.health
        health.count(job.source, "polls")
        try:
            outcome = await job.run()
        except Stopping:
            return
        except SourceError as exc:
            if exc.action is not Action.NO_DATA:
                self._failed(job, state, scope, exc)
                return
            # A job that asked outside a poll step (a listing) and was told "nothing": the
            # same outcome as a poll step's.
            outcome = Outcome.NO_DATA
        except StoreError:
            # The store, not this job: the writer says so once for the whole collector and
            # once more when a commit succeeds again (collector/writer.py).
            health.count(job.source, "polls_failed")
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
        if outcome is Outcome.SKIPPED:
            return          # nothing was sent: it says nothing about the device
        if outcome is Outcome.NO_DATA:
            health.count(job.source, "no_data")
        self._succeeded(job, scope)

    def _succeeded(self, job: Job, scope: _JobState) -> None:
        self.failures.recovered(job.id)
        if scope.config_failures:
            scope.config_failures = 0
            self.failures.recovered(job.config_scope)

    def _failed(self, job: Job, state: _JobState, scope: _JobState, exc: SourceError) -> None:
        health = self.health
        health.count(job.source, "polls_failed")
        health.count(job.source, ERROR_COUNTERS[exc.action])
        message = redact_text(str(exc))
        health.error(job.source, message)
        wait = exc.retry_after or 0.0
        if exc.action is Action.CONFIG:
            # One back-off and one line for everything these credentials open: a charger's
            # status and card polls, an ev.energy client's streams.
            scope.config_failures += 1
            backoff = min(CONFIG_BACKOFF_MAX, max(CONFIG_BACKOFF_FIRST, job.interval)
                          * 2 ** (scope.config_failures - 1))
            scope.not_before = max(scope.not_before, self.clock() + max(wait, backoff))
            message += (f"; asking again in {backoff:.0f} s, then less and less often (at "
                        f"least every {CONFIG_BACKOFF_MAX / 60:.0f} min) until it works")
            self.failures.emit(job.config_scope, exc.cause, _LEVEL[exc.action], message)
            return
        if exc.action is Action.WAIT:
            wait = wait or DEFAULT_WAIT
            message += f"; waiting {wait:.0f} s"
        if wait:
            state.not_before = max(state.not_before, self.clock() + wait)
        self.failures.emit(job.id, exc.cause, _LEVEL[exc.action], message)


class GridTrigger(BaseTrigger):
    """Fires at `offset + k * interval` seconds since the Unix epoch: a fixed grid, no drift."""

    __slots__ = ("interval", "offset")

    def __init__(self, interval: float, offset: float = 0.0) -> None:
        self.interval = interval
        self.offset = offset % interval if interval > 0 else 0.0

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime:
        if previous_fire_time is not None:
            # The next grid point after the previous run (1 ms of tolerance: datetimes keep
            # microseconds, and a grid point rounded down must not come round again).
            k = math.floor((previous_fire_time.timestamp() - self.offset + 1e-3) / self.interval) + 1
        else:
            k = math.ceil((now.timestamp() - self.offset) / self.interval)
        return datetime.fromtimestamp(self.offset + k * self.interval, tz=UTC)

    def __repr__(self) -> str:
        return f"<GridTrigger (interval={self.interval:g} s, offset={self.offset:.3f} s)>"


def phase(device: str, interval: float, spread: float) -> float:
    """The fixed offset of a device's runs within its interval: a stable hash of its id."""
    digest = hashlib.sha256(device.encode("utf-8")).digest()
    return interval * spread * int.from_bytes(digest[:8], "big") / 2**64


def build_scheduler(jobs: Iterable[Job], runner: JobRunner, spread: float = 1.0) -> AsyncIOScheduler:
    """`spread`: share of each interval over which the devices' fixed offsets are spread."""
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
            GridTrigger(job.interval, phase(job.device or job.id, job.interval, spread)),
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

    Every job runs right after start instead of up to a whole interval later (then it joins
    its grid), and a fleet's first polls do not all land in the same instant.
    """
    spread = phase(job.id, min(job.interval, 5.0), 1.0)
    return datetime.fromtimestamp(time.time(), UTC) + timedelta(seconds=spread)
