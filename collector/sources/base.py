"""What a source is, seen from the scheduler: a set of jobs, a check, and a close.

A job polls one (device, stream) through the poll step (`collector/poll.py`: acquire, fetch,
parse, report, commit) and returns its `Outcome`, or raises `SourceError` saying what went
wrong. Sources keep their HTTP I/O in `client.py`, the mapping to points in pure functions in
`parse.py`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from collector.bookmarks import CursorReader
from collector.charges import ChargeExtractor, PublishedRates
from collector.config_types import Model
from collector.health import Health
from collector.limits import Limits
from collector.measurement import Measurement
from collector.poll import Gate, Outcome, PayloadProblems, PollStep
from collector.shards import owner
from collector.specs import CounterSpec, Spec
from collector.writer import PointWriter

if TYPE_CHECKING:   # the simulators are loaded by the demo and the history only
    from collector.points import Point
    from collector.sim.base import Simulator
    from collector.sim.world import ManualClock, Simulators

_VERSION = "0.1.0"


@dataclass(frozen=True)
class Job:
    id: str                                   # unique: "<source>:<device>:<stream>"
    interval: float                           # seconds between runs
    run: Callable[[], Awaitable[Outcome | None]]   # None: done (a housekeeping job)
    source: str
    device: str = ""                          # its fixed phase in the interval comes from this
    # What a configuration error (401/403, a wrong serial) is about: jobs that share it share
    # one back-off and one log line, since a wrong token fails every stream it opens alike.
    # Default: the device ("<source>:<device>"), else the job itself.
    credentials: str = ""

    @property
    def config_scope(self) -> str:
        if self.credentials:
            return self.credentials
        return f"{self.source}:{self.device}" if self.device else self.id


@dataclass(frozen=True)
class CheckResult:
    target: str         # what was checked, e.g. "goe charger 012345 (cloud)"
    ok: bool
    detail: str         # what works, or what does not and why; secret-free


@dataclass
class SourceContext:
    """What the collector lends a source: where points go, its committed cursors, limits, health."""

    cursors: CursorReader     # the store, read only for the source's bookmarks
    writer: PointWriter
    limits: Limits
    health: Health
    shard: int = 0
    shards: int = 1
    # Tests and the demo may route every source's HTTP through a transport (a simulator).
    http_transport: httpx.AsyncBaseTransport | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def http_client(self, base_url: str = "", timeout: float = 10.0,
                    headers: dict[str, str] | None = None, limits: httpx.Limits | None = None,
                    transport: httpx.AsyncBaseTransport | None = None,
                    **kwargs: object) -> httpx.AsyncClient:
        """An httpx client with our user agent and timeouts; secrets go in headers, never URLs.

        `limits` lets a source size its connection pool to the hosts it talks to (go-e: one
        keep-alive connection per charger host); `transport` replaces httpx's own unless the
        context routes every source through one (tests, the demo).
        """
        merged = {"User-Agent": f"ev-collector/{_VERSION}"}
        merged.update(headers or {})
        return httpx.AsyncClient(base_url=base_url, timeout=timeout, headers=merged,
                                 transport=self.http_transport or transport,
                                 limits=limits or httpx.Limits(max_connections=200,
                                                               max_keepalive_connections=100),
                                 **kwargs)  # type: ignore[arg-type]

    def poll_step(self, source: str, what: str, problems: PayloadProblems,
                  gate: Gate | None = None) -> PollStep:
        """The poll step of one stream, writing through this context."""
        return PollStep(self.writer, self.health, source, what, problems, gate)

    def payload_problems(self, source: str, logger: logging.Logger) -> PayloadProblems:
        """Counts and logs (once per kind) what a source's parsers leave out."""
        return PayloadProblems(self.health, source, logger)

    def owner(self, unit: str) -> int:
        """The shard that collects `unit` (a charger, an OAuth client, an account, a site)."""
        return owner(unit, self.shards)

    def owns(self, unit: str) -> bool:
        """Whether this process collects `unit` when a fleet is split across processes."""
        return self.shards <= 1 or owner(unit, self.shards) == self.shard

    def collected_elsewhere(self, name: str, what: str, unit: str) -> ElsewhereSource:
        """The stand-in for a source instance another shard collects: no jobs, no I/O."""
        return ElsewhereSource(name, what, self.owner(unit), self.shards)


class Source(Protocol):
    name: str

    def jobs(self) -> Sequence[Job]:
        """The scheduled jobs, one per (device, stream) owned by this process."""

    async def start(self) -> None:
        """Start long-lived work that is not polled (an MQTT subscription); may do nothing."""

    async def check(self) -> Sequence[CheckResult]:
        """Reach each configured device once and say what works."""

    async def close(self) -> None:
        """Release connections, log out."""


@dataclass
class ElsewhereSource:
    """A source instance whose unit belongs to another shard of the fleet (collector/shards.py).

    Built instead of the source so that this process neither polls it, logs in to it nor
    holds its quota; `check` says which shard does.
    """

    name: str
    what: str           # e.g. "ev.energy client fleet-a"
    shard: int
    shards: int

    def jobs(self) -> Sequence[Job]:
        return ()

    async def start(self) -> None:
        return None

    async def check(self) -> Sequence[CheckResult]:
        return [CheckResult(self.what, True, f"collected by shard {self.shard} of {self.shards}; "
                                             f"checked there")]

    async def close(self) -> None:
        return None


# -- backfill: optional, for sources whose server keeps history ------------------------------


class Progress(Protocol):
    """What a backfill reports to: records expected, then records done."""

    def add_total(self, records: int) -> None: ...

    def advance(self, records: int, note: str = "") -> None: ...


class NoProgress:
    """A Progress that shows nothing (polling jobs, tests)."""

    def add_total(self, records: int) -> None:
        pass

    def advance(self, records: int, note: str = "") -> None:
        pass


@dataclass
class BackfillResult:
    records: int = 0     # rows read from the server
    points: int = 0      # points committed (new or changed rows are fewer on a re-read)


class Backfill(Protocol):
    """A source that can pull the history its server still holds (`ev-collector backfill`).

    Commits points and cursors together like its polling jobs, so an interrupted backfill
    resumes where it stopped; `reread` ignores the cursors and reads everything (from `since`)
    again, rewriting stored points identically.
    """

    async def backfill(self, since: datetime | None, progress: Progress,
                       reread: bool = False) -> BackfillResult: ...

    async def close(self) -> None: ...


# -- the demo: a simulator, a configuration section, a history ------------------------------


class HistoryStream(Protocol):
    """What a source would have collected over a window, generated on a simulated clock."""

    repeated: frozenset[str]     # measurements whose points arrive more than once (refetched)
    # measurements the source writes on change (stamped with the poll time): the history
    # stores them as the collector would, with the default heartbeat
    on_change: frozenset[str]
    cursors: dict[str, str]      # the bookmarks a collector would hold at the window's end

    def points(self, t0: int, t1: int) -> Iterable[Point]:
        """The polls of [t0, t1) (unix seconds), called for consecutive slices in time order."""

    def finish(self) -> Iterable[Point]:
        """What is read once at the end of the window (a session log, historical records)."""


@dataclass(frozen=True)
class DemoHook:
    """How the demo runs a source against its simulator in the demo's world."""

    title: str                                         # how the demo names it, e.g. "go-e"
    simulator: Callable[[Simulators], Simulator]       # the simulator the live demo serves
    config: Callable[[str, Simulators], str]           # its TOML section, given that server's URL
    # (world, clock, start, end) -> its history; None: it has none to generate
    history: Callable[[Simulators, ManualClock, int, int], HistoryStream] | None = None


# -- the registry entry ----------------------------------------------------------------------


@dataclass(frozen=True)
class SourcePackage:
    """Everything the collector knows of one source, as its package declares it (`SOURCE`).

    The collector's central modules (configuration, schema, scheduler, backfill, sessions,
    rollups, export, demo) reach a source only through this, for every registered source.
    """

    name: str                                  # the key of `[sources.<name>]`
    config: type[Model]                        # its configuration section
    measurements: tuple[Measurement, ...]      # registered into the schema
    build: Callable[[Any, SourceContext], Source]
    # Where a charger several sources see takes its data from, when the configuration does not
    # say: lower first (a wallbox's own meter before the record of a controller driving it).
    preference: int = 100
    # Builds the source as a backfill, when its server keeps history; None: it has none. In a
    # fleet, an instance another shard collects is built as its `ElsewhereSource`.
    backfill: Callable[[Any, SourceContext], Backfill | ElsewhereSource] | None = None
    rollups: tuple[Spec, ...] = ()             # what it adds to the daily and monthly rollups
    export_counters: tuple[CounterSpec, ...] = ()   # its energy counters in exported sums
    sessions: ChargeExtractor | None = None    # the charges it observes, for charging sessions
    # The grid rates it publishes, to price sessions by (`[sessions] tariff = "<name>"`).
    tariff: PublishedRates | None = None
    # Loads its demo hook (the simulators are imported only by the demo and the history).
    demo: Callable[[], DemoHook] | None = None
