"""OVMS jobs: sampling per (vehicle, stream) and incremental historical sync per vehicle.

Sampling (`status`, `charge`, `location`, `tpms`): fetch, parse with the message times already
collected, write the new points together with the new message times (cursors
`ovms:<vehicle>:msgtime:<stream>:<kind>`), so a parked car whose server record does not change
writes nothing and counts `no_data`.

History: `/api/historical/<id>` lists the record types; each wanted type is fetched with
`since` = stored cursor (`ovms:<vehicle>:history:<type>`, the newest `h_timestamp` committed)
minus `history_overlap`. The server's `since` is exclusive and second-grained, and a module
that was offline delivers records later with past timestamps; the overlap re-reads that window,
and re-reading is harmless because a record always maps to the same point identity. Points and
the advanced cursor are committed in one transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from collector.health import origin
from collector.http_outcomes import Action, SourceError
from collector.measurement import CoercionReport
from collector.points import Point
from collector.poll import IntervalGate, Outcome, Parsed, PollStep, combine
from collector.sources.base import BackfillResult, CheckResult, Job, NoProgress, Progress, SourceContext

from . import parse
from .client import OvmsClient
from .cursors import HISTORY, MSGTIME, UNITS

log = logging.getLogger(__name__)

NAME = parse.NAME
Stream = Literal["status", "charge", "location", "tpms"]
STREAMS: tuple[Stream, ...] = ("status", "charge", "location", "tpms")
WRITE_CHUNK = 5000
# No two requests for the same (vehicle, stream) closer than this, whatever the schedule says:
# the server's record cannot change faster than the module sends (at best every few seconds),
# and api.openvehicles.com is a community service.
MIN_SAMPLE_INTERVAL = 10.0


@dataclass
class SyncResult(BackfillResult):
    types: int = 0       # record types fetched


def claim_vehicles(ctx: SourceContext, instance: str, vehicles: Sequence[str]) -> list[str]:
    """The vehicles no other OVMS instance collects: points are tagged by vehicle id only,
    so two instances (two servers) with the same id would write into one series. Every shard
    claims the configured vehicles of every instance, its own or not, in the config's order,
    so each shard refuses the same duplicates."""
    owners: dict[str, str] = ctx.extra.setdefault("ovms_vehicles", {})  # type: ignore[assignment]
    mine = []
    for vehicle in vehicles:
        owner = owners.setdefault(vehicle, instance)
        if owner == instance:
            mine.append(vehicle)
        else:
            log.error("OVMS %s: vehicle %s is collected by [[sources.ovms]] %r already; not "
                      "collected twice (rename the vehicle on one server, or list `vehicles` "
                      "without it)", instance, vehicle, owner)
    return mine


def shard_unit(config: Any) -> str:
    """What one process collects whole: the account (one login session), all its vehicles."""
    return f"{NAME}:{config.url}:{config.username}"


class OvmsSource:
    name = NAME

    def __init__(self, config: Any, ctx: SourceContext) -> None:
        self.config = config
        self.ctx = ctx
        http = ctx.http_client(config.url.rstrip("/"), timeout=config.timeout,
                               verify=config.verify_tls)
        self.client = OvmsClient(http, config.username, config.password)
        self.origin = origin(NAME, config.name)
        self._vehicles: list[str] | None = (claim_vehicles(ctx, config.name, config.vehicles)
                                            if config.vehicles else None)
        self._msgtimes: dict[str, str | None] = {}
        self._units: dict[str, str] = {}
        self.problems = ctx.payload_problems(self.origin, log)
        self._steps: dict[tuple[str, str], PollStep] = {}

    # -- vehicles --------------------------------------------------------------------------

    async def vehicles(self) -> list[str]:
        """Configured vehicles, or those the account has (asked once, then remembered)."""
        if self._vehicles is None:
            found = parse.parse_vehicles(await self.client.vehicles())
            if not found:
                raise SourceError(Action.CONFIG, "the OVMS account has no vehicles; set `vehicles`")
            log.info("OVMS vehicles found on %s: %s", self.client.server, ", ".join(found))
            self._vehicles = claim_vehicles(self.ctx, self.config.name, found)
        return list(self._vehicles)

    async def start(self) -> None:
        if self._vehicles is None:
            try:
                await self.vehicles()
            except SourceError as exc:
                # Not fatal: jobs for "all vehicles" discover them on their first run.
                log.warning("OVMS: cannot list vehicles yet (%s); will retry on each poll", exc)

    def jobs(self) -> Sequence[Job]:
        """One job per (vehicle, stream) when vehicles are known, else one per stream for all."""
        cfg = self.config
        if self._vehicles is not None:
            targets: list[str | None] = list(self._vehicles)
        else:
            targets = [None]
        jobs = []
        account = f"{NAME}:{cfg.name}"   # a wrong password fails every vehicle's streams alike
        for vehicle in targets:
            device = vehicle or ("all" if cfg.name == NAME else f"{cfg.name}:all")
            for stream in cfg.streams:
                jobs.append(Job(id=f"{NAME}:{device}:{stream}", interval=cfg.interval,
                                source=self.origin, device=device, credentials=account,
                                run=self._runner(self.poll, stream, vehicle)))
            if cfg.history:
                jobs.append(Job(id=f"{NAME}:{device}:history", interval=cfg.history_interval,
                                source=self.origin, device=device, credentials=account,
                                run=self._runner(self._history_job, vehicle)))
        return jobs

    def _runner(self, fn: Callable[..., Awaitable[Outcome]], *args: Any) -> Callable[[], Awaitable[Outcome]]:
        async def run() -> Outcome:
            return await fn(*args)
        return run

    async def _for_each(self, vehicle: str | None, fn: Callable[[str], Awaitable[Outcome]]) -> Outcome:
        """Run for one vehicle, or for all (a failure of one does not stop the others)."""
        if vehicle is not None:
            return await fn(vehicle)
        failures: list[tuple[str, SourceError]] = []
        outcomes: list[Outcome] = []
        for each in await self.vehicles():
            try:
                outcomes.append(await fn(each))
            except SourceError as exc:
                if exc.action is Action.NO_DATA:
                    outcomes.append(Outcome.NO_DATA)
                else:
                    failures.append((each, exc))
        if failures:
            # One error for the job (the runner logs it, throttled), naming every vehicle.
            first = failures[0][1]
            raise SourceError(first.action, "; ".join(f"vehicle {v}: {exc}" for v, exc in failures),
                              first.retry_after, first.cause)
        return combine(outcomes)

    # -- sampling --------------------------------------------------------------------------

    def _cursor(self, key: str) -> str | None:
        if key not in self._msgtimes:
            self._msgtimes[key] = self.ctx.cursors.cursor(key)
        return self._msgtimes[key]

    def _msgtime_key(self, vehicle: str, stream: str, kind: str) -> str:
        return MSGTIME.key(vehicle=vehicle, stream=stream, kind=kind)

    def known_units(self, vehicle: str) -> str | None:
        """The vehicle's distance units: config, else learned from its S message, else None."""
        if self.config.units != "auto":
            return self.config.units
        if vehicle in self._units:
            return self._units[vehicle]
        stored = UNITS.read(self.ctx.cursors, vehicle=vehicle)
        if stored is not None:
            self._units[vehicle] = stored
            return stored
        return None

    def _learn_units(self, vehicle: str, payload: Any, cursors: dict[str, str]) -> None:
        """Note the vehicle's units from an S message in `cursors` (remembered once committed)."""
        units = payload.get("units") if isinstance(payload, dict) else None
        if isinstance(units, str) and units.strip().upper() in ("K", "M"):
            units = units.strip().upper()
            if self._units.get(vehicle) != units:
                cursors.update(UNITS.entry(units, vehicle=vehicle))

    def units_or_km(self, vehicle: str, learned: dict[str, str]) -> str:
        """Units just learned from this answer, else known, else km (the module's default)."""
        return learned.get(UNITS.key(vehicle=vehicle)) or self.known_units(vehicle) or "K"

    async def poll(self, stream: str, vehicle: str | None = None) -> Outcome:
        return await self._for_each(vehicle, lambda v: self.sample(v, stream))

    def _step(self, vehicle: str, stream: str) -> PollStep:
        step = self._steps.get((vehicle, stream))
        if step is None:
            gate = IntervalGate(self.ctx.limits, f"{NAME}:{vehicle}:{stream}", MIN_SAMPLE_INTERVAL)
            step = self._steps[(vehicle, stream)] = self.ctx.poll_step(
                self.origin, f"OVMS {stream} {vehicle}", self.problems, gate)
        return step

    async def sample(self, vehicle: str, stream: str) -> Outcome:
        """Fetch one stream of one vehicle and commit what is new."""
        learned: dict[str, str] = {}

        async def fetch() -> Any:
            if self.config.connect_peer and stream in ("status", "charge"):
                if await self.client.connect_peer(vehicle):
                    log.info("OVMS %s: connected as a peer (the car now reports more often)", vehicle)
            if stream == "location" and self.known_units(vehicle) is None:
                # The L message has no units: learn them from the S message first (once per
                # vehicle; remembered in the store), so a miles car is never stored as km.
                self._learn_units(vehicle, await self.client.sample("status", vehicle), learned)
            return await self.client.sample(stream, vehicle)

        def parse_sample(payload: Any) -> Parsed:
            cursors = dict(learned)
            kinds = (("s", "d") if stream in ("status", "charge")
                     else (("l",) if stream == "location" else ("w", "y")))
            previous = {k: v for k in kinds if (v := self._cursor(self._msgtime_key(vehicle, stream, k)))}
            if stream in ("status", "charge"):
                self._learn_units(vehicle, payload, cursors)
                parsed = parse.parse_status(payload, vehicle, previous, self.units_or_km(vehicle, cursors))
            elif stream == "location":
                parsed = parse.parse_location(payload, vehicle, previous, self.units_or_km(vehicle, cursors))
            else:
                parsed = parse.parse_tpms(payload, vehicle, previous)
            for kind, stamp in parsed.msgtimes.items():
                if previous.get(kind) != stamp:
                    cursors[self._msgtime_key(vehicle, stream, kind)] = stamp
            return Parsed(parsed.points, cursors, parsed.report.rejected, parsed.skipped)

        def committed(parsed: Parsed) -> None:
            for key, value in parsed.cursors.items():
                if ":msgtime:" in key:
                    self._msgtimes[key] = value
                elif key.endswith(":units"):
                    self._units[vehicle] = value

        return await self._step(vehicle, stream).run(fetch, parse_sample, committed)

    def _report(self, what: str, report: CoercionReport, skipped: Sequence[str]) -> None:
        self.problems.report(f"OVMS {what}", Parsed(rejected=report.rejected, skipped=skipped))

    # -- history ---------------------------------------------------------------------------

    def _wanted(self, record_type: str) -> bool:
        types = self.config.history_types
        return types is None or record_type in types

    async def _history_job(self, vehicle: str | None) -> Outcome:
        async def one(v: str) -> Outcome:
            result = await self.sync_history(v)
            return Outcome.WRITTEN if result.points else Outcome.NO_DATA
        return await self._for_each(vehicle, one)

    async def sync_history(self, vehicle: str, since: datetime | None = None,
                           progress: Progress | None = None, reread: bool = False,
                           expected: dict[str, int] | None = None) -> SyncResult:
        """Fetch every wanted record type newer than its cursor (and than `since`).

        `reread` ignores the cursors (from `since`, or everything): records that reached the
        server later than `history_overlap` are picked up; what was stored already is
        rewritten identically. Cursors never move back. `expected` (records per type) is what
        the progress advances by, so a bar reaches its total even for types not fetched.
        """
        progress = progress or NoProgress()
        result = SyncResult()
        floor = parse.format_server_time(since - timedelta(seconds=1)) if since else None
        summary = parse.parse_history_summary(await self.client.history_summary(vehicle))
        units = self.known_units(vehicle)
        for row in summary:
            if not self._wanted(row.record_type):
                continue
            key = HISTORY.key(vehicle=vehicle, record_type=row.record_type)
            cursor = await asyncio.to_thread(self.ctx.cursors.cursor, key)
            if not reread and cursor and row.last and row.last <= cursor:
                progress.advance((expected or {}).get(row.record_type, 0), f"{vehicle} {row.record_type}")
                continue  # nothing newer on the server
            fetch_since = floor
            if cursor and not reread:
                start = parse.parse_server_time(cursor)
                if start is not None:
                    overlapped = parse.format_server_time(
                        start - timedelta(seconds=self.config.history_overlap))
                    fetch_since = max(overlapped, floor) if floor else overlapped
            rows = await self.client.history(vehicle, row.record_type, fetch_since)
            parsed = parse.parse_history(rows, vehicle, row.record_type, units)
            self._report(f"history {vehicle} {row.record_type}", parsed.report, parsed.skipped)
            result.types += 1
            result.records += parsed.records
            new_cursor = max(filter(None, (cursor, parsed.last_timestamp)), default=None)
            await self._commit_history(parsed.points, key, cursor, new_cursor)
            result.points += len(parsed.points)
            covered = parsed.records if expected is None else expected.get(row.record_type, 0)
            progress.advance(covered, f"{vehicle} {row.record_type}")
        return result

    async def _commit_history(self, points: list[Point], key: str, old: str | None, new: str | None) -> None:
        """Points and the cursor that covers them, in chunks for long histories."""
        for start in range(0, len(points), WRITE_CHUNK):
            chunk = points[start:start + WRITE_CHUNK]
            last = start + WRITE_CHUNK >= len(points)
            if last:
                cursor = new
            else:
                # Rows come in time order; the overlap on resume covers records of this second
                # that fall into the next chunk.
                reached = parse.format_server_time(
                    datetime.fromtimestamp(chunk[-1].time_ns // parse.NS, tz=UTC))
                cursor = max(filter(None, (old, reached)))   # the overlap must not move it back
            await self.ctx.writer.write(chunk, cursors={key: cursor} if cursor else None, source=self.origin)
        if not points and new and new != old:
            await self.ctx.writer.write([], cursors={key: new}, source=self.origin)

    async def backfill(self, since: datetime | None = None, progress: Progress | None = None,
                       reread: bool = False) -> SyncResult:
        """Pull all history the server still has (from `since`), resuming at the cursors
        (or, with `reread`, reading it all again)."""
        progress = progress or NoProgress()
        total = SyncResult()
        vehicles = await self.vehicles()
        # `since` for the summary is exclusive, like for the records.
        since_text = parse.format_server_time(since - timedelta(seconds=1)) if since else None
        plans: dict[str, dict[str, int]] = {}
        for vehicle in vehicles:
            summary = parse.parse_history_summary(await self.client.history_summary(vehicle, since_text))
            plans[vehicle] = {r.record_type: r.total_records or 0
                              for r in summary if self._wanted(r.record_type)}
            progress.add_total(sum(plans[vehicle].values()))
        for vehicle in vehicles:
            done = await self.sync_history(vehicle, since, progress, reread=reread, expected=plans[vehicle])
            total.records += done.records
            total.points += done.points
            total.types += done.types
        return total

    # -- check and close -------------------------------------------------------------------

    async def check(self) -> Sequence[CheckResult]:
        target = f"ovms {self.client.server}"
        try:
            await self.client.login()
        except SourceError as exc:
            return [CheckResult(target, False, str(exc))]
        results = [CheckResult(target, True, "login ok")]
        try:
            vehicles = await self.vehicles()
        except SourceError as exc:
            return results + [CheckResult(f"{target} vehicles", False, str(exc))]
        for vehicle in vehicles:
            what = f"ovms vehicle {vehicle}"
            try:
                status = await self.client.sample("status", vehicle)
                summary = parse.parse_history_summary(await self.client.history_summary(vehicle))
            except SourceError as exc:
                results.append(CheckResult(what, False, str(exc)))
                continue
            if isinstance(status, dict) and status.get("m_msgtime_s"):
                age = status.get("m_msgage_s")
                detail = (f"last status {status['m_msgtime_s']} UTC"
                          + (f" ({age} s ago)" if age is not None else ""))
            else:
                detail = "no status record on the server yet"
            kinds = ", ".join(r.record_type for r in summary) or "none"
            results.append(CheckResult(what, True, f"{detail}; historical types: {kinds}"))
        return results

    async def close(self) -> None:
        await self.client.aclose()
