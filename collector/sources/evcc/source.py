"""The evcc jobs: state (REST, or MQTT instead), sessions (incremental) and tariff forecasts."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from collector.health import origin
from collector.http_outcomes import Action, SourceError
from collector.measurement import CoercionReport
from collector.points import Point
from collector.poll import IntervalGate, Outcome, Parsed, PollStep
from collector.sources.base import BackfillResult, CheckResult, Job, Progress, SourceContext
from collector.sources.evcc import (
    MIN_SESSIONS_INTERVAL,
    MIN_STATE_INTERVAL,
    MIN_TARIFF_INTERVAL,
    NAME,
    Config,
)
from collector.sources.evcc.client import EvccClient
from collector.sources.evcc.cursors import SESSIONS
from collector.sources.evcc.parse import parse_sessions, parse_state, parse_tariff, unwrap

log = logging.getLogger(__name__)

# Months asked for around the session window: evcc files sessions by its local month, which
# may differ from the UTC month by up to 14 hours either way.
_MONTH_MARGIN = timedelta(days=1)


def session_months(since_ns: int, now_ns: int) -> list[tuple[int, int]]:
    """Every (year, month) from `since_ns` to `now_ns`, widened by a day at both ends."""
    start = datetime.fromtimestamp(since_ns / 1e9, UTC) - _MONTH_MARGIN
    end = datetime.fromtimestamp(now_ns / 1e9, UTC) + _MONTH_MARGIN
    months = []
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        months.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


class WrittenPoints:
    """What this process has committed, so an unchanged point is not sent again.

    Re-sending would be harmless (the store ignores identical points) but would cost a commit
    and inflate the `points` counter every poll. After a restart the memory is empty and the
    window is written once more, which the store again ignores.
    """

    def __init__(self) -> None:
        self._fields: dict[tuple, tuple[int, dict]] = {}

    def changed(self, points: Sequence[Point]) -> list[Point]:
        return [p for p in points if self._fields.get(p.key(), (0, None))[1] != p.fields]

    def remember(self, points: Sequence[Point], forget_before_ns: int | None) -> None:
        for p in points:
            self._fields[p.key()] = (p.time_ns, dict(p.fields))
        if forget_before_ns is not None:
            self._fields = {k: v for k, v in self._fields.items() if v[0] >= forget_before_ns}


class EvccSource:
    name = NAME

    def __init__(self, config: Config, ctx: SourceContext) -> None:
        self.config = config
        self.ctx = ctx
        self.site = config.name
        self.origin = origin(NAME, config.name)
        self.clock = ctx.limits.clock
        self.problems = ctx.payload_problems(self.origin, log)
        self.client = (EvccClient(ctx, config.url, config.username, config.password, config.timeout)
                       if config.url else None)
        self.mqtt = None
        if config.mqtt is not None:
            from collector.sources.evcc.mqtt import EvccMqtt

            # With a url, lifetime meters an old evcc rounds over MQTT are read over REST.
            self.mqtt = EvccMqtt(config.mqtt, ctx, self.site, self.report,
                                 rest_state=self.client.state if self.client else None,
                                 meter_interval=config.state_interval, heartbeat=config.heartbeat)
        self.sessions_cursor = SESSIONS.key(site=self.site)
        self.sessions_written = WrittenPoints()
        self._sessions_since: int | None = None
        self.rates_written: dict[str, WrittenPoints] = {}
        self.tariff_types = tuple(dict.fromkeys(config.tariffs))
        # The config's floors, enforced whatever the schedule does (coalesced runs, a manual
        # trigger): at most one request per stream per half floor.
        floors = {"state": MIN_STATE_INTERVAL, "sessions": MIN_SESSIONS_INTERVAL}
        floors.update({f"tariff-{tariff}": MIN_TARIFF_INTERVAL for tariff in self.tariff_types})
        self.steps: dict[str, PollStep] = {
            stream: ctx.poll_step(self.origin, f"evcc {self.site} {stream.replace('-', ' ')}", self.problems,
                                  IntervalGate(ctx.limits, f"{NAME}:{self.site}:{stream}", floor / 2))
            for stream, floor in floors.items()}

    def report(self, report: CoercionReport, what: str) -> None:
        """Values a parser left out, counted and logged like a poll's (the MQTT path, backfill)."""
        self.problems.report(f"evcc {self.site} {what}", Parsed(rejected=report.rejected))

    def _now_ns(self) -> int:
        return int(self.clock() * 1e9)

    # -- jobs ---------------------------------------------------------------------------------

    def jobs(self) -> Sequence[Job]:
        if self.client is None:
            return []
        config = self.config
        jobs = []
        if self.mqtt is None:
            jobs.append(Job(f"{NAME}:{self.site}:state", config.state_interval, self.poll_state,
                            self.origin, self.site))
        if config.sessions:
            jobs.append(Job(f"{NAME}:{self.site}:sessions", config.sessions_interval,
                            self.sync_sessions, self.origin, self.site))
        for tariff in self.tariff_types:
            jobs.append(Job(f"{NAME}:{self.site}:tariff-{tariff}", config.tariff_interval,
                            partial(self.poll_tariff, tariff), self.origin, self.site))
        return jobs

    async def poll_state(self) -> Outcome:
        assert self.client is not None
        return await self.steps["state"].run(self.client.state, self._parse_state)

    def _parse_state(self, payload: Any) -> Parsed:
        # /api/state carries no timestamp: the poll time is the best we have.
        report = CoercionReport()
        points = parse_state(payload, self.site, self._now_ns(), report)
        return Parsed(points, rejected=report.rejected, nothing="evcc state had no usable value",
                      heartbeat=self.config.heartbeat)

    async def sync_sessions(self) -> Outcome:
        """Write finished sessions; after the first sync only the recent window is asked for.

        The cursor is the `created` of the newest finished session, or of the oldest running
        one when that is older (it must be seen again when it finishes). Each later sync asks
        for the months from cursor - `session_lookback` to now and rewrites what falls in that
        window: unchanged sessions are no-ops in the store, corrected ones overwrite their point.
        """
        return await self.steps["sessions"].run(self._fetch_sessions, self._parse_sessions,
                                                self._sessions_committed)

    async def _fetch_sessions(self) -> tuple[list, int | None, int | None]:
        """(rows, since, watermark): every row of the months the window touches."""
        assert self.client is not None
        stored = self.ctx.cursors.cursor(self.sessions_cursor)
        watermark = SESSIONS.decode(stored) if stored else None
        if stored and watermark is None:
            log.warning("evcc %s: unreadable sessions cursor %r; syncing every session again",
                        self.site, stored)
        if watermark is None:
            return unwrap(await self.client.sessions(), "/api/sessions"), None, None
        since = watermark - int(self.config.session_lookback * 1e9)
        rows: list = []
        seen: set[Any] = set()
        for year, month in session_months(since, self._now_ns()):
            page = unwrap(await self.client.sessions(year, month), "/api/sessions")
            if page is None:
                continue  # evcc answers null for a month without sessions
            if not isinstance(page, list):
                raise SourceError(Action.DROP, f"/api/sessions?year={year}&month={month}: "
                                               f"expected a JSON array, got {type(page).__name__}",
                                  cause="bad body")
            for row in page:
                # An evcc that ignores the month filter sends everything every time.
                key = (row.get("id"), row.get("created")) if isinstance(row, dict) else id(row)
                if key not in seen:
                    seen.add(key)
                    rows.append(row)
        return rows, since, watermark

    def _parse_sessions(self, fetched: tuple[Any, int | None, int | None]) -> Parsed:
        rows, since, watermark = fetched
        report = CoercionReport()
        result = parse_sessions(rows, self.site, since, report)
        new_mark = result.watermark_ns()
        cursors = {}
        if new_mark is not None and new_mark != watermark:
            cursors = SESSIONS.entry(new_mark, site=self.site)
        self._sessions_since = since
        return Parsed(self.sessions_written.changed(result.points), cursors, report.rejected,
                      nothing=f"no new or changed finished sessions ({result.running} running)")

    def _sessions_committed(self, parsed: Parsed) -> None:
        self.sessions_written.remember(parsed.points, self._sessions_since)
        log.debug("evcc %s: %d sessions new or changed, cursor %s", self.site, len(parsed.points),
                  parsed.cursors.get(self.sessions_cursor, "unchanged"))

    async def backfill(self, since: datetime | None = None, progress: Progress | None = None,
                       reread: bool = False) -> BackfillResult:
        """`ev-collector backfill --source evcc`: every finished session evcc holds (from
        `since`), in one request, as the first sync does. evcc keeps its whole session
        history, so resuming and `reread` are the same thing: read it all, rewrite it (stored
        points do not change), and set the cursor the regular sync continues from."""
        if self.client is None:
            raise SourceError(Action.CONFIG, "evcc backfill needs `url`: sessions come over REST")
        rows = unwrap(await self.client.sessions(), "/api/sessions")
        count = len(rows) if isinstance(rows, list) else 0
        if progress is not None:
            progress.add_total(count)
        report = CoercionReport()
        since_ns = int(since.timestamp() * 1e9) if since is not None else None
        result = parse_sessions(rows, self.site, since_ns, report)
        self.report(report, "sessions")
        mark = result.watermark_ns()
        cursors = SESSIONS.entry(mark, site=self.site) if mark is not None else {}
        await self.ctx.writer.write(result.points, cursors=cursors, source=self.origin)
        self.sessions_written.remember(result.points, since_ns)
        if progress is not None:
            progress.advance(count, f"{len(result.points)} finished sessions")
        return BackfillResult(records=count, points=len(result.points))

    async def poll_tariff(self, tariff_type: str) -> Outcome:
        assert self.client is not None
        client = self.client
        written = self.rates_written.setdefault(tariff_type, WrittenPoints())

        def parse(payload: Any) -> Parsed:
            report = CoercionReport()
            points = parse_tariff(payload, self.site, tariff_type, report)
            return Parsed(written.changed(points), rejected=report.rejected,
                          nothing=f"tariff {tariff_type}: "
                                  + ("forecast unchanged" if points else "no rates"))

        def committed(parsed: Parsed) -> None:
            # Rates that have begun are not revised any more; keep the memory to the forecast.
            written.remember(parsed.points, self._now_ns() - 86400 * 1_000_000_000)

        return await self.steps[f"tariff-{tariff_type}"].run(lambda: client.tariff(tariff_type),
                                                             parse, committed)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self.mqtt is not None:
            await self.mqtt.start()

    async def check(self) -> Sequence[CheckResult]:
        results = []
        if self.client is not None:
            target = f"evcc {self.site} ({self.client.where})"
            try:
                state = unwrap(await self.client.state(), "/api/state")
                if not isinstance(state, dict):
                    raise SourceError(Action.DROP, "/api/state is not a JSON object")
                loadpoints = state.get("loadpoints")
                count = len(loadpoints) if isinstance(loadpoints, list) else 0
                results.append(CheckResult(target, True,
                                           f"evcc {state.get('version') or '(version unknown)'}, "
                                                         f"{count} loadpoint(s)"))
            except SourceError as exc:
                results.append(CheckResult(target, False, str(exc)))
            for tariff in self.tariff_types:
                try:
                    rates = parse_tariff(await self.client.tariff(tariff), self.site, tariff)
                    results.append(CheckResult(f"{target} tariff {tariff}", True, f"{len(rates)} rates"))
                except SourceError as exc:
                    ok = exc.action is Action.NO_DATA
                    results.append(CheckResult(f"{target} tariff {tariff}", ok,
                                               "not configured in evcc" if ok else str(exc)))
        if self.mqtt is not None:
            results.append(await self.mqtt.check())
        return results

    async def close(self) -> None:
        if self.mqtt is not None:
            await self.mqtt.close()
        if self.client is not None:
            await self.client.close()
