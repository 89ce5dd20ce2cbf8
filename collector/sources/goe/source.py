"""The go-eCharger jobs: a status poll per charger, a rare card-list poll, at most one
request per second per charger.

A poll is the poll step (`collector/poll.py`) with the limiter key `goe:<serial>`: one request
per second per charger (API v1: one per 5 s) whatever the schedule says, counted from the
moment the previous answer arrived. The charger handled that request before it answered, so
it never sees two requests closer than the interval; the round trip is the margin (a poll
starts that much after the previous one's answer, not after its send).
A poll the limiter refuses waits for its turn when that comes soon, else it is skipped
(`polls_skipped`). A cloud status whose `last-modified` equals the last one written is not
written again (`no_data`); its time is kept as a cursor, so a restart does not rewrite it.
A cloud answering 404 "Data is outdated" (the charger has not reported for a while) is one
warning per episode, with the data's age, and counted (`data_outdated`).
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Sequence
from typing import Any

import certifi
import httpx

from collector.aiohttp_transport import FleetTransport, proxy_configured
from collector.http_outcomes import Action, SourceError
from collector.measurement import CoercionReport
from collector.poll import IntervalGate, Outcome, Parsed
from collector.sources.base import CheckResult, Job, SourceContext
from collector.sources.goe.client import Charger, DataOutdated, GoeClient, StatusResponse
from collector.sources.goe.cursors import STATUS_TIME
from collector.sources.goe.parse import (
    CARD_KEYS,
    NAME,
    nrg_all_zero,
    parse_cards,
    parse_last_modified,
    parse_status,
    parse_status_v1,
    reported_serial,
)

log = logging.getLogger(__name__)

MIN_INTERVAL = 1.0        # go-e: the charger cannot deliver data faster than once a second
MIN_INTERVAL_V1 = 5.0     # go-e's API v1 documentation asks for 5 s between local requests
# A poll the limiter refuses waits for its turn when that comes within this share of its
# interval, and is skipped only beyond it (the next scheduled run is then closer). Refusals
# are mostly scheduling noise: each charger's polls must be >= 1 s apart, so one poll that
# left late (a busy event loop) makes the next on-schedule poll wait a little. Waiting keeps
# the sample; skipping loses a whole second of the charger's data.
LIMIT_SLACK_SHARE = 0.75


_OUTCOME_WORD = {Outcome.WRITTEN: "written", Outcome.NO_DATA: "unchanged",
                 Outcome.SKIPPED: "skipped"}


def limiter_key(serial: str) -> str:
    return f"{NAME}:{serial}"


def shard_unit(serial: str) -> str:
    """What one process collects whole: a charger, whose one request per second is its own."""
    return f"{NAME}:{serial}"


def min_interval(api: str) -> float:
    return MIN_INTERVAL_V1 if api == "local_v1" else MIN_INTERVAL


class StatusPoller:
    """One charger's status stream; `run` is the scheduled job."""

    def __init__(self, charger: Charger, client: GoeClient, ctx: SourceContext,
                 interval: float, slack: float | None = None,
                 heartbeat: float | None = None) -> None:
        self.charger = charger
        self.client = client
        self.ctx = ctx
        self.interval = interval
        self.heartbeat = heartbeat   # write on change, for statuses stamped with the poll time
        self.key = limiter_key(charger.serial)
        gate = IntervalGate(ctx.limits, self.key, min_interval(charger.api),
                            LIMIT_SLACK_SHARE * interval if slack is None else slack)
        self.step = ctx.poll_step(NAME, charger.label, ctx.payload_problems(NAME, log), gate)
        self.last_time_ns = STATUS_TIME.read(ctx.cursors, serial=charger.serial)
        self.last_outcome = "none"   # skipped | written | unchanged | failed, for benchmarks and tests
        self._parse = parse_status_v1 if charger.api == "local_v1" else parse_status
        self._outdated = False       # in an episode of 404 "Data is outdated"

    @property
    def job_id(self) -> str:
        return f"{NAME}:{self.charger.serial}:status"

    def job(self) -> Job:
        return Job(id=self.job_id, interval=self.interval, run=self.run, source=NAME,
                   device=self.charger.serial)

    async def run(self) -> Outcome:
        self.last_outcome = "failed"
        outcome = await self.step.run(self.fetch, self.parse, self.committed)
        self.last_outcome = _OUTCOME_WORD[outcome]
        return outcome

    async def fetch(self) -> tuple[StatusResponse, int]:
        poll_ns = round(time.time_ns(), -6)  # ms: a poll time is no more precise than that
        try:
            return await self.client.fetch_status(self.charger), poll_ns
        except DataOutdated as exc:
            self.ctx.health.count(NAME, "data_outdated")
            if not self._outdated:
                self._outdated = True
                log.warning("%s: the cloud has no fresh status (HTTP 404 \"Data is outdated\", "
                            "%s): the charger has not reported since; is it online? Nothing is "
                            "stored until it reports again", self.charger.label, self._age(exc))
            raise

    def _age(self, exc: DataOutdated) -> str:
        """How old the data is: from the newest status stored, else as the cloud says it."""
        parts = []
        if self.last_time_ns is not None:
            seconds = time.time() - self.last_time_ns / 1e9
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.last_time_ns / 1e9))
            parts.append(f"the newest status stored is from {stamp} UTC, {seconds:.0f} s ago")
        if exc.age is not None:
            parts.append(f"the cloud gives age {exc.age}")
        return "; ".join(parts) or "no age given"

    def parse(self, fetched: tuple[StatusResponse, int]) -> Parsed:
        response, poll_ns = fetched
        notes: dict[str, str] = {}
        time_ns: int | None = None
        if self.charger.api == "cloud":
            time_ns = parse_last_modified(response.last_modified)
            if time_ns is None:
                notes["last-modified"] = (f"unusable last-modified header "
                                          f"{(response.last_modified or '')[:60]!r}; using the poll time")
            elif time_ns == self.last_time_ns:
                return Parsed(nothing=f"status unchanged since {response.last_modified}")
        report = CoercionReport()
        points = self._parse(response.payload, self.charger.serial, time_ns or poll_ns, report)
        if nrg_all_zero(response.payload):
            notes["nrg-zero"] = "nrg reports all zeros (seen on firmware 60.4); stored as sent"
        if not points:
            raise SourceError(Action.DROP, f"{self.charger.label}: the status carried none of "
                                           "the keys we store", cause="bad body")
        cursors = STATUS_TIME.entry(time_ns, serial=self.charger.serial) if time_ns is not None else {}
        # A status stamped with the poll time is written on change (with a heartbeat); one
        # stamped by the cloud's last-modified changed, or it would not have come this far.
        return Parsed(points, cursors, report.rejected, notes=notes,
                      heartbeat=self.heartbeat if time_ns is None else None)

    def committed(self, parsed: Parsed) -> None:
        key = STATUS_TIME.key(serial=self.charger.serial)
        if key in parsed.cursors:
            self.last_time_ns = STATUS_TIME.decode(parsed.cursors[key])
        if self._outdated:
            self._outdated = False
            log.info("%s: the charger reports again", self.charger.label)


class CardPoller:
    """One charger's RFID card list (`goe_card`): names, so a session can say whose card
    started it. Config data that rarely changes: asked for every `cards_interval` with a
    filter of the card keys only (the list is large: go-e split it per card in 60.0 to save
    traffic). It shares the charger's limiter key with the status poll, and waits for its
    turn (up to `CARD_SLACK` seconds) rather than lose the hour."""

    CARD_SLACK = 10.0

    def __init__(self, charger: Charger, client: GoeClient, ctx: SourceContext, interval: float) -> None:
        self.charger = charger
        self.client = client
        self.interval = interval
        gate = IntervalGate(ctx.limits, limiter_key(charger.serial), min_interval(charger.api),
                            self.CARD_SLACK)
        self.step = ctx.poll_step(NAME, f"{charger.label} card list",
                                  ctx.payload_problems(NAME, log), gate)

    def job(self) -> Job:
        return Job(id=f"{NAME}:{self.charger.serial}:cards", interval=self.interval, run=self.run,
                   source=NAME, device=self.charger.serial)

    async def run(self) -> Outcome:
        return await self.step.run(self.fetch, self.parse)

    async def fetch(self) -> tuple[StatusResponse, int]:
        return await self.client.fetch_status(self.charger, CARD_KEYS), round(time.time_ns(), -6)

    def parse(self, fetched: tuple[StatusResponse, int]) -> Parsed:
        response, poll_ns = fetched
        time_ns = parse_last_modified(response.last_modified) if self.charger.api == "cloud" else None
        report = CoercionReport()
        points = parse_cards(response.payload, self.charger.serial, time_ns or poll_ns,
                             v1=self.charger.api == "local_v1", report=report)
        return Parsed(points, rejected=report.rejected, nothing="no card in use")


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
        owned = [entry for entry in config.chargers if ctx.owns(shard_unit(entry.serial))]
        self.elsewhere = len(config.chargers) - len(owned)
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
                           age=config.age, transport=ctx.http_transport or transport)
        self.pollers: list[StatusPoller] = [
            StatusPoller(Charger(serial=entry.serial, api=entry.api, token=entry.token,
                                 host=entry.host),
                         client, ctx, entry.interval or config.interval,
                         heartbeat=config.heartbeat)
            for entry in owned]
        self.card_pollers = ([CardPoller(poller.charger, client, ctx, config.cards_interval)
                              for poller in self.pollers] if config.cards_interval else [])

    def jobs(self) -> Sequence[Job]:
        return [poller.job() for poller in self.pollers] + [cards.job() for cards in self.card_pollers]

    async def start(self) -> None:
        return None

    async def check(self) -> Sequence[CheckResult]:
        results = []
        if self.elsewhere:
            results.append(CheckResult("goe chargers of other shards", True,
                                       f"{self.elsewhere} of {self.elsewhere + len(self.pollers)} "
                                       f"collected by the other shards; checked there"))
        for poller in self.pollers:
            charger = poller.charger
            await self.ctx.limits.intervals.acquire(poller.key)
            report = CoercionReport()
            try:
                # The charger's own serial is asked for whatever `filter` says, and the
                # parser refuses a status that reports another one (every API).
                response = await poller.client.fetch_status(charger,
                                                            poller.client.keys_with("sse"))
                points = poller._parse(response.payload, charger.serial, time.time_ns(), report)
            except SourceError as exc:
                ok = exc.action is Action.NO_DATA  # reachable and authenticated, just quiet
                results.append(CheckResult(charger.label, ok, str(exc)))
                continue
            finally:
                self.ctx.limits.intervals.release(poller.key)
            payload = response.payload
            fields = len(points[0].fields) if points else 0
            detail = f"{fields} fields, firmware {payload.get('fwv', 'unknown')}"
            if charger.api == "cloud":
                detail += f", last-modified {response.last_modified or 'missing'}"
            if reported_serial(payload) is None:
                detail += "; the charger did not report its serial (sse)"
            if report.rejected:
                detail += f"; {len(report.rejected)} values unusable"
            results.append(CheckResult(charger.label, bool(points), detail))
        return results

    async def close(self) -> None:
        await self._http.aclose()
