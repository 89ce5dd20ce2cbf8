"""ev.energy jobs: two incremental streams per EVSE, resumable, inside one hourly quota.

Each stream (`status_logs` on `sampled_at`, `command_logs` on `logged_at`) keeps two cursors
in the store, both written in the same transaction as the points they cover:

- `evenergy:<evse>:<stream>`: the watermark, the newest log time of the last range fetched
  completely. The next run asks for `__gte` = watermark - `lookback` (logs can reach
  ev.energy a while after they were sampled; re-fetched logs overwrite themselves).
- `evenergy:<evse>:<stream>:pending`: while a range is being paged through (newest first),
  what is left of it: `{"gte", "lte", "hi"}` in ns. Each page's points are committed with the
  range below that page's oldest log. A run stopped by the quota budget, a crash or `kill -9`
  resumes with `__gte=gte&__lte=lte` and loses nothing; only when the range is exhausted does
  the watermark move to `hi` (the newest log of the range) and the pending range clear.

So the watermark never passes data that is not durable, and a backfill larger than one run's
share of the quota still progresses page by page instead of starting over every run.

Every page is one poll step (`collector/poll.py`) whose request waits for its stream's turn at
the client's fair quota (`FairQuota`): when the streams want more than the quota gives, each
stream's interval stretches alike, and a run that resumes a stored pending range goes first.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from collector.health import origin
from collector.http_outcomes import SourceError
from collector.limits import Clock, wall_clock
from collector.measurement import CoercionReport
from collector.poll import Outcome, Parsed
from collector.sources.base import CheckResult, ElsewhereSource, Job, SourceContext
from collector.sources.evenergy.client import EvEnergyClient, Page
from collector.sources.evenergy.cursors import EVSES, PENDING, WATERMARK
from collector.sources.evenergy.parse import (
    NAME,
    ParsedLogs,
    format_time,
    parse_command_logs,
    parse_evses,
    parse_status_logs,
)

log = logging.getLogger(__name__)

NS = 1_000_000_000


@dataclass(frozen=True)
class Stream:
    name: str
    time_key: str
    parse: Callable[[Any, str, CoercionReport], ParsedLogs]


STATUS_LOGS = Stream("status_logs", "sampled_at", parse_status_logs)
COMMAND_LOGS = Stream("command_logs", "logged_at", parse_command_logs)
STREAMS = (STATUS_LOGS, COMMAND_LOGS)


@dataclass
class _Range:
    """What is left of a stream's range to page through (ns): newest first, down to `gte`."""

    gte: int
    lte: int | None = None          # below the oldest log committed so far
    hi: int | None = None           # the newest log of the range: the watermark once done
    resumed: bool = False           # a pending range is stored (cleared when done)

    def params(self, time_key: str, page_size: int) -> dict[str, str | int]:
        params: dict[str, str | int] = {"page_size": page_size,
                                        f"{time_key}__gte": format_time(self.gte)}
        if self.lte is not None:
            params[f"{time_key}__lte"] = format_time(self.lte, round_up=True)
        return params


@dataclass
class SyncResult:
    pages: int = 0
    points: int = 0
    complete: bool = False          # the range down to the old watermark was fetched
    stopped_by: str = ""            # "page limit" when it was not


# The share of the usable quota the advice plans with: the rest is for requests a poll needs
# beyond one (a second page, a retry with a fresh token) and for streams due at the same
# moment, which the budget's small burst cannot all serve at once and so queue.
PLAN_SHARE = 0.8


def quota_plan(evses: int, status_interval: float, command_interval: float, limit: int,
               reserve: float, discovery_interval: float | None = None) -> str | None:
    """A warning when the polls cannot fit the quota, with intervals that would.

    Counts one request per poll (a page of up to 100 logs covers a poll interval unless logs
    come faster than every few seconds) and one per discovery, against the usable quota (the
    limit less the reserve) times `PLAN_SHARE`. Beyond it the fair queue still serves every
    stream, each interval stretched alike; the advice says what keeps them on time.
    """
    if evses <= 0:
        return None
    usable = max(1, math.floor(limit * (1.0 - reserve)))
    plan = usable * PLAN_SHARE
    discovery = 3600.0 / discovery_interval if discovery_interval else 0.0
    needed = evses * (3600.0 / status_interval + 3600.0 / command_interval) + discovery
    if needed <= plan:
        return None
    room = (plan - discovery) / evses - 3600.0 / command_interval
    if room > 0:
        fit = f"status_interval >= {math.ceil(3600.0 / room)} s with command_interval unchanged"
    else:
        factor = (needed - discovery) / max(1e-9, plan - discovery)
        fit = (f"status_interval >= {math.ceil(status_interval * factor - 1e-6)} s and command_interval "
               f">= {math.ceil(command_interval * factor - 1e-6)} s")
    return (f"ev.energy: {evses} EVSEs polled every {status_interval:.0f} s (status) and "
            f"{command_interval:.0f} s (commands) need about {needed:.0f} requests per hour, more "
            f"than the {plan:.0f} planned for: {usable} usable of the quota of {limit} "
            f"({reserve:.0%} kept in reserve), less a fifth for extra pages and bursts. Every "
            f"stream is still served in turn, each interval stretched alike, so data arrives "
            f"late. {fit} would fit.")


class EvEnergySource:
    name = NAME

    def __init__(self, config: Any, ctx: SourceContext, clock: Clock = wall_clock) -> None:
        self.config = config
        self.ctx = ctx
        self.clock = clock
        self.label = f"ev.energy {config.name}"
        self.origin = origin(NAME, config.name)
        self.fair = ctx.limits.fair_quota(f"{NAME}:{config.client_id}", config.quota_limit,
                                          config.reserve)
        self.budget = self.fair.budget
        ctx.health.watch(self.origin, "quota_remaining", self.budget.remaining)
        http = ctx.http_client(timeout=config.timeout)
        self.client = EvEnergyClient(
            http, base_url=config.base_url, token_url=config.resolved_token_url(),
            client_id=config.client_id, client_secret=config.client_secret, user=config.user,
            quota=self.fair, clock=clock)
        self.problems = ctx.payload_problems(self.origin, log)
        self.fair.register(self._discovery_stream, config.discovery_interval)
        self._discovered: list[str] | None = None
        self._last_discovery = -math.inf
        self._jobbed: set[str] = set()
        self._orphan_runs: dict[tuple[str, str], float] = {}

    @property
    def _discovery_stream(self) -> str:
        return f"{self.config.client_id}:evses"

    # -- EVSEs ---------------------------------------------------------------------------

    @property
    def _evses_key(self) -> str:
        return EVSES.key(client=self.config.client_id)

    def evse_ids(self) -> list[str]:
        """Configured EVSEs, else the last discovered list (kept in the store across restarts)."""
        if self.config.evses:
            return list(self.config.evses)
        if self._discovered is None:
            saved = self.ctx.cursors.cursor(self._evses_key)
            if saved:
                self._discovered = EVSES.decode(saved)
                if self._discovered is None:
                    log.warning("ev.energy: the stored EVSE list is unreadable; discovering again")
        return list(self._discovered or [])

    async def discover(self) -> list[str]:
        """`GET /evses`, all pages; the list is kept in the store for the next start."""
        ids: list[str] = []
        url: str | None = self.client.url("evses")
        params: dict[str, int] | None = {"page_size": 100}
        while url:
            page = await self.client.get(url, params, stream=self._discovery_stream)
            found, skipped = parse_evses(page.payload)
            for reason in skipped:
                log.warning("ev.energy /evses: %s; skipped", reason)
            ids.extend(e for e in found if e not in ids)
            url, params = page.next_url, None
        self._last_discovery = self.clock()
        if ids != self._discovered:
            log.info("ev.energy: client %s sees %d EVSEs: %s", self.config.client_id, len(ids),
                     ", ".join(ids))
        self._discovered = ids
        await self.ctx.writer.write([], cursors=EVSES.entry(ids, client=self.config.client_id),
                                    source=self.origin)
        self._warn_if_over_quota(len(ids))
        return ids

    def _warn_if_over_quota(self, evses: int) -> None:
        warning = quota_plan(evses, self.config.status_interval, self.config.command_interval,
                             self.budget.limit, self.config.reserve,
                             None if self.config.evses else self.config.discovery_interval)
        if warning:
            log.warning("%s", warning)

    # -- the Source protocol -------------------------------------------------------------

    async def start(self) -> None:
        if self.config.evses:
            return
        try:
            await self.discover()
        except SourceError as exc:
            known = self.evse_ids()
            log.warning("ev.energy: EVSE discovery failed (%s); %s", exc,
                        f"using the {len(known)} EVSEs found last time" if known else
                        "the discovery job will retry and collect the EVSEs it finds")

    def jobs(self) -> Sequence[Job]:
        jobs = []
        client = f"{NAME}:{self.config.name}"   # a wrong secret fails all its streams alike
        for evse in self.evse_ids():
            self._jobbed.add(evse)
            self.fair.register(f"{evse}:{STATUS_LOGS.name}", self.config.status_interval)
            self.fair.register(f"{evse}:{COMMAND_LOGS.name}", self.config.command_interval)
            jobs.append(Job(f"{NAME}:{evse}:status_logs", self.config.status_interval,
                            partial(self.run, evse, STATUS_LOGS), self.origin, evse, client))
            jobs.append(Job(f"{NAME}:{evse}:command_logs", self.config.command_interval,
                            partial(self.run, evse, COMMAND_LOGS), self.origin, evse, client))
        if not self.config.evses:
            jobs.append(Job(f"{NAME}:{self.config.client_id}:evses", self.config.status_interval,
                            self.discovery_job, self.origin, self.config.client_id, client))
        return jobs

    async def run(self, evse: str, stream: Stream) -> Outcome:
        result = await self.sync(evse, stream)
        return Outcome.WRITTEN if result.points else Outcome.NO_DATA

    async def discovery_job(self) -> Outcome:
        """Rediscover every `discovery_interval`; collect EVSEs that appeared since the start.

        Jobs are fixed when the scheduler starts, so an EVSE found later (or every EVSE, when
        discovery failed at start) is collected here, at the same intervals, until a restart
        gives it jobs of its own.
        """
        now = self.clock()
        if now - self._last_discovery >= self.config.discovery_interval:
            await self.discover()
        wrote = False
        for evse in self.evse_ids():
            if evse in self._jobbed:
                continue
            for stream in STREAMS:
                interval = (self.config.status_interval if stream is STATUS_LOGS
                            else self.config.command_interval)
                last = self._orphan_runs.get((evse, stream.name), -math.inf)
                if now - last >= interval * 0.9:
                    self._orphan_runs[(evse, stream.name)] = now
                    self.fair.register(f"{evse}:{stream.name}", interval)
                    wrote = bool((await self.sync(evse, stream)).points) or wrote
        return Outcome.WRITTEN if wrote else Outcome.NO_DATA

    async def check(self) -> Sequence[CheckResult]:
        target = f"ev.energy client {self.config.client_id} ({self.config.base_url})"
        results = []
        try:
            await self.client.token()
        except SourceError as exc:
            return [CheckResult(target, False, str(exc))]
        try:
            if self.config.evses:
                for evse in self.config.evses:
                    try:
                        await self.client.get(self.client.url(f"evses/{evse}"), stream="check")
                        results.append(CheckResult(f"ev.energy EVSE {evse}", True, "reachable"))
                    except SourceError as exc:
                        results.append(CheckResult(f"ev.energy EVSE {evse}", False, str(exc)))
            else:
                ids = await self.discover()
                results.append(CheckResult(target, bool(ids), f"token ok, {len(ids)} EVSEs visible"
                                           + ("" if ids else ": nothing to collect")))
        except SourceError as exc:
            results.append(CheckResult(target, False, str(exc)))
        results.append(CheckResult(f"{target} quota", True,
                                   f"{self.budget.remaining()} of {self.budget.limit} requests left "
                                   f"this hour"))
        return results

    async def close(self) -> None:
        await self.client.aclose()

    # -- one incremental stream ----------------------------------------------------------

    async def sync(self, evse: str, stream: Stream) -> SyncResult:
        """Fetch what is new since the stream's watermark, page by page, durably."""
        cfg = self.config
        key = WATERMARK.key(evse=evse, stream=stream.name)
        pending_key = PENDING.key(evse=evse, stream=stream.name)
        watermark = WATERMARK.read(self.ctx.cursors, evse=evse, stream=stream.name)
        pending = self._load_pending(self.ctx.cursors.cursor(pending_key), pending_key)
        if pending is not None:
            todo = _Range(pending["gte"], pending["lte"], pending.get("hi"), resumed=True)
        else:
            now_ns = int(self.clock() * NS)
            todo = _Range(now_ns - int(cfg.backfill * NS) if watermark is None
                          else watermark - int(cfg.lookback * NS))
        # A run that resumes an unfinished range goes first at the quota: its range is half
        # fetched, and the watermark cannot move until it is done.
        first = todo.resumed
        url: str | None = self.client.url(f"evses/{evse}/{stream.name}")
        params: dict[str, str | int] | None = todo.params(stream.time_key, cfg.page_size)
        step = self.ctx.poll_step(self.origin, f"{self.label} {evse} {stream.name}", self.problems)
        result = SyncResult()
        while url is not None:
            if result.pages >= cfg.max_pages_per_run:
                result.stopped_by = "page limit"
                log.debug("%s: %d pages this run; the rest next run", key, result.pages)
                return result
            pages: list[Page] = []

            async def fetch(page_url: str = url, page_params: dict[str, str | int] | None = params,
                            resume: bool = first, pages: list[Page] = pages) -> Page:
                # This page's request, bound now: the loop moves on to the next page.
                pages.append(await self.client.get(page_url, page_params,
                                                   stream=f"{evse}:{stream.name}", first=resume))
                return pages[-1]

            def parse_page(page: Page) -> Parsed:
                report = CoercionReport()
                logs = stream.parse(page.payload, evse, report)
                newest = todo.hi if todo.hi is not None else logs.newest_ns
                cursors: dict[str, str] = {}
                if page.next_url is None:
                    mark = max((t for t in (watermark, newest) if t is not None), default=None)
                    if mark is not None and mark != watermark:
                        cursors[key] = WATERMARK.encode(mark)
                    if todo.resumed:
                        cursors[pending_key] = PENDING.encode(None)
                elif logs.oldest_ns is not None:
                    # Never raise the bound: a server that ignored __lte must not make us go round.
                    lte = logs.oldest_ns if todo.lte is None else min(todo.lte, logs.oldest_ns)
                    cursors[pending_key] = PENDING.encode({"gte": todo.gte, "lte": lte, "hi": newest})
                # (a page without one usable time cannot mark progress; its neighbours will)
                return Parsed(logs.points, cursors, report.rejected, logs.skipped_items,
                              nothing="no new logs")

            def committed(parsed: Parsed) -> None:
                result.points += len(parsed.points)
                state = PENDING.decode(parsed.cursors.get(pending_key, ""))
                if state is not None:
                    todo.lte, todo.hi, todo.resumed = state["lte"], state["hi"], True

            await step.run(fetch, parse_page, committed)
            first = False
            result.pages += 1
            url, params = pages[-1].next_url, None
        result.complete = True
        return result

    def _load_pending(self, text: str | None, key: str) -> dict | None:
        if not text:
            return None
        state = PENDING.decode(text)
        if state is not None:
            return state
        log.warning("%s: unreadable pending range %r; starting again from the watermark", key, text[:80])
        return None


def shard_unit(config: Any) -> str:
    """What one process collects whole: the OAuth client, whose quota all its EVSEs share."""
    return f"{NAME}:{config.client_id}"


def build_source(config: Any, ctx: SourceContext) -> EvEnergySource | ElsewhereSource:
    unit = shard_unit(config)
    if not ctx.owns(unit):
        return ctx.collected_elsewhere(NAME, f"ev.energy client {config.client_id} ({config.base_url})", unit)
    if config.evses:
        warning = quota_plan(len(config.evses), config.status_interval, config.command_interval,
                             config.quota_limit, config.reserve)
        if warning:
            log.warning("%s", warning)
    return EvEnergySource(config, ctx)


__all__ = ["EvEnergySource", "STREAMS", "STATUS_LOGS", "COMMAND_LOGS", "SyncResult", "quota_plan",
           "build_source", "shard_unit"]
