"""What a source is, seen from the scheduler: a set of jobs, a check, and a close.

A job polls one (device, stream) through the poll step (`collector/poll.py`: acquire, fetch,
parse, report, commit) and returns its `Outcome`, or raises `SourceError` saying what went
wrong. Sources keep their HTTP I/O in `client.py`, the mapping to points in pure functions in
`parse.py`.
"""

from __future__ import annotations

import logging

import httpx
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Protocol, Sequence

from collector.health import Health
from collector.limits import Limits
from collector.poll import Gate, Outcome, PayloadProblems, PollStep
from collector.shards import owner
from collector.store import Store
from collector.writer import PointWriter

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
    """What the collector lends a source: where points go, limits, health, the clock."""

    store: Store
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

    def collected_elsewhere(self, name: str, what: str, unit: str) -> Source:
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
