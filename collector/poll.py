"""The poll step: the middle of the pipeline, one place for every source.

    acquire (a limiter, or a turn of a shared quota) -> fetch (the source's I/O)
    -> parse (the source's pure function) -> report payload problems
    -> commit points and cursors together -> one outcome

A source supplies the fetch and the parse (and `committed`, when it keeps state in memory
that may only move once the commit is durable); the step owns the rest, so a refusal, a
payload problem, a commit and the outcome mean the same in every source. Failures are
`SourceError`s, raised to the job runner (`collector/schedule.py`), which logs each cause once,
honours `retry_after` and backs off from configuration errors.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from collector.health import Health
from collector.http_outcomes import Action, SourceError
from collector.limits import IntervalLimiter, Limits, Stopping
from collector.log_throttle import PAYLOAD_WARN_EVERY, LogThrottle
from collector.points import Point
from collector.writer import PointWriter

log = logging.getLogger(__name__)

T = TypeVar("T")


class Outcome(enum.Enum):
    """What one run of a job did (a failure is a `SourceError` instead).

    `NO_DATA` is the one way to say a run found nothing: a parse that gives no points and no
    cursors, and an answer the status table classifies `Action.NO_DATA`, both end here.
    """

    WRITTEN = "written"     # points or cursors were committed
    NO_DATA = "no data"     # the device answered, with nothing new
    SKIPPED = "skipped"     # nothing was sent: a limit said wait, or the collector is stopping


@dataclass(slots=True)
class Parsed:
    """What a parse function makes of one answer."""

    points: Sequence[Point] = ()
    cursors: Mapping[str, str] = field(default_factory=dict)
    rejected: Sequence[tuple[str, str]] = ()   # (field, reason): values left out of a point
    skipped: Sequence[str] = ()                # records left out whole, each with the reason
    notes: Mapping[str, str] = field(default_factory=dict)   # kind -> warning, not an error
    nothing: str = ""                          # why there is nothing to commit, for the debug log
    # Write on change, for points stamped with the poll time: a point equal to its series'
    # last stored point is stored again only this many seconds after it (None: every point).
    heartbeat: float | None = None


class Gate(Protocol):
    """What a poll acquires before it sends: a limiter's grant or a quota's turn."""

    async def acquire(self) -> bool:
        """True when the request may go now; False: skip it (nothing is sent)."""

    def release(self) -> None:
        """The answer is in (or the request failed)."""


# A refused poll sleeps this much past the time the limiter named, and tries a few times:
# event-loop timers (uvloop rounds them to milliseconds) can fire a little early.
TIMER_RESOLUTION = 0.001
WAKE_RETRIES = 3


class IntervalGate:
    """One key of the interval limiter; a refusal within `slack` seconds is waited out.

    Waiting keeps a sample that skipping would lose (the poll after a late one is refused by
    a fraction of a second); beyond the slack the next scheduled run is closer, so skip.
    """

    def __init__(self, limits: Limits, key: str, interval: float, slack: float = 0.0) -> None:
        self.limits = limits
        self.key = key
        self.slack = slack
        limits.intervals.set_interval(key, interval)

    @property
    def _limiter(self) -> IntervalLimiter:
        return self.limits.intervals

    async def acquire(self) -> bool:
        wait = self._limiter.try_acquire(self.key)
        if wait > self.slack:
            return False
        for _ in range(WAKE_RETRIES):
            if wait <= 0:
                return True
            await self.limits.sleep(wait + TIMER_RESOLUTION)
            wait = self._limiter.try_acquire(self.key)
        return wait <= 0

    def release(self) -> None:
        self._limiter.release(self.key)


class PayloadProblems:
    """Values and records a parser left out: counted every time, logged once per kind.

    One line per answer (a garbled status rejects dozens of fields), and the same kind again
    only as a reminder every `PAYLOAD_WARN_EVERY` seconds: an integration that always sends
    one odd value must not write a warning every poll.
    """

    def __init__(self, health: Health, source: str, logger: logging.Logger = log) -> None:
        self.health = health
        self.source = source
        self._lines = LogThrottle(logger, PAYLOAD_WARN_EVERY)

    def report(self, what: str, parsed: Parsed) -> None:
        count = len(parsed.rejected) + len(parsed.skipped)
        if count:
            self.health.count(self.source, "errors_payload", count)
            names = sorted({name for name, _ in parsed.rejected})
            details = [f"{name}: {reason[:120]}" for name, reason in parsed.rejected[:3]]
            details += [reason[:160] for reason in parsed.skipped[:3]]
            self._lines.log((what, tuple(names), bool(parsed.skipped)), logging.WARNING,
                            "%s: %d value(s) or record(s) left out (%s)", what, count,
                            "; ".join(details) + ("; ..." if count > 6 else ""))
        for kind, note in parsed.notes.items():
            self._lines.log((what, kind), logging.WARNING, "%s: %s", what, note)


@dataclass
class PollStep(Generic[T]):
    """acquire -> fetch -> parse -> report -> commit -> outcome, for one stream."""

    writer: PointWriter
    health: Health
    source: str                      # the source type, for health counters
    what: str                        # the stream in words, for log lines ("goe charger 012345")
    problems: PayloadProblems
    gate: Gate | None = None

    async def run(self, fetch: Callable[[], Awaitable[T]], parse: Callable[[T], Parsed],
                  committed: Callable[[Parsed], None] | None = None) -> Outcome:
        if self.gate is not None:
            try:
                granted = await self.gate.acquire()
            except Stopping:
                return Outcome.SKIPPED
            if not granted:
                self.health.count(self.source, "polls_skipped")
                return Outcome.SKIPPED
        try:
            payload = await fetch()
        except SourceError as exc:
            if exc.action is not Action.NO_DATA:
                raise
            # The answer itself says there is nothing fresh (go-e's cloud 404, a tariff evcc
            # does not have): an outcome, not a failure.
            log.debug("%s: %s", self.what, exc)
            return Outcome.NO_DATA
        finally:
            if self.gate is not None:
                self.gate.release()
        parsed = parse(payload)
        self.problems.report(self.what, parsed)
        if not parsed.points and not parsed.cursors:
            log.debug("%s: %s", self.what, parsed.nothing or "nothing new")
            return Outcome.NO_DATA
        await self.writer.write(parsed.points, cursors=parsed.cursors or None, source=self.source,
                                heartbeat=parsed.heartbeat)
        if committed is not None:
            committed(parsed)
        return Outcome.WRITTEN if parsed.points else Outcome.NO_DATA


def combine(outcomes: Sequence[Outcome]) -> Outcome:
    """One outcome for a job that ran several steps: written if any wrote, skipped if all
    were skipped, else no data."""
    if Outcome.WRITTEN in outcomes:
        return Outcome.WRITTEN
    if outcomes and all(o is Outcome.SKIPPED for o in outcomes):
        return Outcome.SKIPPED
    return Outcome.NO_DATA
