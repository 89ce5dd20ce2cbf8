"""The go-eCharger jobs: a status poll per charger, a rare card-list poll, at most one
request per second per charger.

A poll: limiter -> client (cloud or local) -> parse -> one durable write. The limiter key
`goe:<serial>` allows one request per second per charger whatever the schedule says; a poll
the limiter refuses sends nothing (counted as `polls_skipped`), since the charger cannot have
fresher data. A cloud status whose `last-modified` equals the last one written is not written
again (counted as `no_data`); its time is kept as a cursor, so a restart does not rewrite it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from typing import Any, Sequence

import certifi
import httpx

from collector.aiohttp_transport import FleetTransport, proxy_configured
from collector.http_outcomes import Action, SourceError
from collector.log_throttle import PAYLOAD_WARN_EVERY, LogThrottle
from collector.schema import CoercionReport
from collector.sources.base import SKIPPED, CheckResult, Job, Skipped, SourceContext
from collector.sources.goe.client import Charger, GoeClient
from collector.sources.goe.parse import (CARD_KEYS, NAME, nrg_all_zero, parse_cards,
                                        parse_last_modified, parse_status, parse_status_v1)

log = logging.getLogger(__name__)

MIN_INTERVAL = 1.0        # go-e: the charger cannot deliver data faster than once a second
# A poll the limiter refuses waits for its turn when that comes within this share of its
# interval, and is skipped only beyond it (the next scheduled run is then closer). Refusals
# are mostly scheduling noise: each charger's polls must be >= 1 s apart, so one poll that
# left late (a busy event loop) makes the next on-schedule poll wait a little. Waiting keeps
# the sample; skipping loses a whole second of the charger's data.
LIMIT_SLACK_SHARE = 0.75
WAKE_RETRIES = 3
TIMER_RESOLUTION = 0.001


def limiter_key(serial: str) -> str:
    return f"{NAME}:{serial}"


def cursor_key(serial: str) -> str:
    return f"{NAME}:{serial}:last_modified"


class StatusPoller:
    """One charger's status stream; `run` is the scheduled job."""

    def __init__(self, charger: Charger, client: GoeClient, ctx: SourceContext,
                 interval: float, slack: float | None = None) -> None:
        self.charger = charger
        self.client = client
        self.ctx = ctx
        self.interval = interval
        self.slack = LIMIT_SLACK_SHARE * interval if slack is None else slack
        self.key = limiter_key(charger.serial)
        ctx.limits.intervals.set_interval(self.key, MIN_INTERVAL)
        stored = ctx.store.cursor(cursor_key(charger.serial))
        self.last_time_ns: int | None = int(stored) if stored and stored.isdigit() else None
        self.last_outcome = "none"   # skipped | written | unchanged, for benchmarks and tests
        self._parse = parse_status_v1 if charger.api == "local_v1" else parse_status
        self._warnings = LogThrottle(log, PAYLOAD_WARN_EVERY)
        self._blocked_until = 0.0

    @property
    def job_id(self) -> str:
        return f"{NAME}:{self.charger.serial}:status"

    def job(self) -> Job:
        return Job(id=self.job_id, interval=self.interval, run=self.run, source=NAME,
                   device=self.charger.serial)

    async def _acquire(self) -> bool:
        limiter = self.ctx.limits.intervals
        wait = limiter.try_acquire(self.key)
        if wait > self.slack:
            return False
        for _ in range(WAKE_RETRIES):
            if wait <= 0:
                return True
            # Event-loop timers can fire a little before the limiter's clock says the time is
            # up: uvloop rounds them to milliseconds, so a wait of 0.3 ms ends at once. One
            # sleep and one try lost such polls whole (9 % of them at 1,000 chargers); a
            # millisecond more and a few tries do not.
            await asyncio.sleep(wait + TIMER_RESOLUTION)
            wait = limiter.try_acquire(self.key)
        return wait <= 0

    async def run(self) -> Skipped | None:
        if time.time() < self._blocked_until or not await self._acquire():
            self.ctx.health.count(NAME, "polls_skipped")
            self.last_outcome = "skipped"
            return SKIPPED
        self.last_outcome = "failed"
        poll_ns = round(time.time_ns(), -6)  # ms: a poll time is no more precise than that
        try:
            response = await self.client.fetch_status(self.charger)
        except SourceError as exc:
            if exc.action is Action.WAIT:
                # go-e documents no rate limit, but a proxy in front of it may: honour its
                # Retry-After (a minute when it gives none), then go on.
                wait = exc.retry_after if exc.retry_after is not None else 60.0
                self._blocked_until = time.time() + min(wait, 3600.0)
            raise
        serial = self.charger.serial
        time_ns: int | None = None
        if self.charger.api == "cloud":
            time_ns = parse_last_modified(response.last_modified)
            if time_ns is None:
                self._warnings.log("last-modified", logging.WARNING,
                                   "%s: unusable last-modified header %r; using the poll time",
                                   self.charger.label, (response.last_modified or "")[:60])
            elif time_ns == self.last_time_ns:
                self.last_outcome = "unchanged"
                raise SourceError(Action.NO_DATA, f"{self.charger.label}: status unchanged "
                                                  f"since {response.last_modified}")
        report = CoercionReport()
        points = self._parse(response.payload, serial, time_ns or poll_ns, report)
        if report.rejected:
            self.ctx.health.count(NAME, "errors_payload", len(report.rejected))
            # One line per response, not one per field: a garbled status rejects dozens.
            names = sorted(field for field, _ in report.rejected)
            field, reason = report.rejected[0]
            self._warnings.log("fields:" + ",".join(names), logging.WARNING,
                               "%s: %d values left out (%s); first: %s: %s", self.charger.label,
                               len(names), ", ".join(names[:8]) + (", ..." if len(names) > 8 else ""),
                               field, reason[:120])
        if nrg_all_zero(response.payload):
            self._warnings.log("nrg-zero", logging.WARNING,
                               "%s: nrg reports all zeros (seen on firmware 60.4); stored as sent",
                               self.charger.label)
        if not points:
            raise SourceError(Action.DROP, f"{self.charger.label}: the status carried none of "
                                           "the keys we store")
        cursors = {cursor_key(serial): str(time_ns)} if time_ns is not None else None
        await self.ctx.writer.write(points, cursors=cursors, source=NAME)
        if time_ns is not None:
            self.last_time_ns = time_ns
        self.last_outcome = "written"


class CardPoller:
    """One charger's RFID card list (`goe_card`): names, so a session can say whose card
    started it. Config data that rarely changes: asked for every `cards_interval` with a
    filter of the card keys only (the list is large: go-e split it per card in 60.0 to save
    traffic), sharing the charger's one-request-per-second limit with the status poll."""

    def __init__(self, charger: Charger, client: GoeClient, ctx: SourceContext, interval: float) -> None:
        self.charger = charger
        self.client = client
        self.ctx = ctx
        self.interval = interval
        self.key = limiter_key(charger.serial)

    def job(self) -> Job:
        return Job(id=f"{NAME}:{self.charger.serial}:cards", interval=self.interval, run=self.run,
                   source=NAME, device=self.charger.serial)

    async def run(self) -> None:
        await self.ctx.limits.intervals.acquire(self.key)
        poll_ns = round(time.time_ns(), -6)
        response = await self.client.fetch_status(self.charger, CARD_KEYS)
        time_ns = parse_last_modified(response.last_modified) if self.charger.api == "cloud" else None
        report = CoercionReport()
        points = parse_cards(response.payload, self.charger.serial, time_ns or poll_ns,
                             v1=self.charger.api == "local_v1", report=report)
        if report.rejected:
            self.ctx.health.count(NAME, "errors_payload", len(report.rejected))
            field, reason = report.rejected[0]
            log.warning("%s: card list: %d values left out; first: %s: %s", self.charger.label,
                        len(report.rejected), field, reason[:120])
        if not points:
            raise SourceError(Action.NO_DATA, f"{self.charger.label}: no card in use")
        await self.ctx.writer.write(points, source=NAME)


def pool_limits(chargers: int, longest_interval: float) -> httpx.Limits:
    """One keep-alive connection per charger (the cloud has one host per charger, and each
    local charger is a host of its own), kept open across polls."""
    return httpx.Limits(max_connections=chargers, max_keepalive_connections=chargers,
                        keepalive_expiry=max(5.0, 2.0 * longest_interval))


class GoeSource:
    name = NAME

    def __init__(self, config: Any, ctx: SourceContext) -> None:
        self.config = config
        self.ctx = ctx
        owned = [entry for entry in config.chargers if ctx.owns(entry.serial)]
        longest = max([entry.interval or config.interval for entry in owned], default=config.interval)
        limits = pool_limits(max(1, len(owned)), longest)
        tls = ssl.create_default_context(cafile=certifi.where())
        transport = ctx.http_transport
        if transport is None and not proxy_configured():
            # aiohttp under httpx: about a fifth less CPU per poll at 1,000 chargers, and
            # sends that leave on time (collector/aiohttp_transport.py). With a proxy in the
            # environment, httpx's own transport, which honours it.
            transport = FleetTransport(tls, limits)
        self._http = ctx.http_client(timeout=config.timeout, verify=tls, limits=limits,
                                     transport=transport)
        client = GoeClient(self._http, cloud_url=config.cloud_url, filter_keys=config.filter,
                           age=config.age)
        self.pollers: list[StatusPoller] = [
            StatusPoller(Charger(serial=entry.serial, api=entry.api, token=entry.token,
                                 host=entry.host),
                         client, ctx, entry.interval or config.interval)
            for entry in owned]
        self.card_pollers = ([CardPoller(poller.charger, client, ctx, config.cards_interval)
                              for poller in self.pollers] if config.cards_interval else [])

    def jobs(self) -> Sequence[Job]:
        return [poller.job() for poller in self.pollers] + [cards.job() for cards in self.card_pollers]

    async def start(self) -> None:
        return None

    async def check(self) -> Sequence[CheckResult]:
        results = []
        for poller in self.pollers:
            charger = poller.charger
            await self.ctx.limits.intervals.acquire(poller.key)
            try:
                response = await poller.client.fetch_status(charger)
            except SourceError as exc:
                ok = exc.action is Action.NO_DATA  # reachable and authenticated, just quiet
                results.append(CheckResult(charger.label, ok, str(exc)))
                continue
            payload = response.payload
            if not isinstance(payload, dict):
                results.append(CheckResult(charger.label, False, "status is not a JSON object"))
                continue
            report = CoercionReport()
            points = poller._parse(payload, charger.serial, time.time_ns(), report)
            fields = len(points[0].fields) if points else 0
            detail = f"{fields} fields, firmware {payload.get('fwv', 'unknown')}"
            if charger.api == "cloud":
                detail += f", last-modified {response.last_modified or 'missing'}"
            sse = payload.get("sse")
            if isinstance(sse, str) and sse and sse != charger.serial:
                detail += f"; WARNING: the charger reports serial {sse}"
            if report.rejected:
                detail += f"; {len(report.rejected)} values unusable"
            results.append(CheckResult(charger.label, bool(points), detail))
        return results

    async def close(self) -> None:
        await self._http.aclose()
