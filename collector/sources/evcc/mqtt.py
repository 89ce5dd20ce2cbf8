"""evcc over MQTT: retained topics -> the same points as `/api/state` polled over REST.

paho-mqtt runs its own network thread (`loop_start`), which connects, reconnects with
exponential backoff (`reconnect_delay_set`) and re-subscribes on every connect. Messages are
handed to the asyncio loop with `call_soon_threadsafe`; nothing here blocks the scheduler.

evcc publishes `<root>/updated` (Unix seconds, at most once a second) as a cycle's values
begin, then the values topic by topic; reading slow meters can spread one cycle over seconds.
We keep the latest payload of every topic and, once an `updated` has arrived, wait until the
topics have been quiet for `settle` seconds (at most `MAX_CYCLE` after that `updated`; the
retained burst after a (re)connect, whose order the broker does not promise, is handled the
same way). Then the `/api/state` object is rebuilt from the topic tree and the REST parser runs
on it, with the last `updated` time as the points' timestamp: one snapshot per evcc cycle, like
one REST poll (values evcc publishes only when they are set, like titles, stay in the snapshot
from their retained topics). Only the last snapshot is written when writes fall behind; an
identical snapshot re-sent after a reconnect is skipped, and would be a no-op in the store.

A zero-length retained message deletes its topic. evcc sends them for null values and, at
start and at shutdown, for every topic under its root (`updated` too): they never begin a cycle
and are no error. Up to 0.300.6 evcc writes MQTT floats with 5 significant digits; lifetime
meters (`LIFETIME_METERS`) then come from `/api/state` when a `url` is configured.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import sys
import threading
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import paho.mqtt.client as mqtt

from collector.health import ERROR_COUNTERS, origin
from collector.http_outcomes import SourceError, address, connect_failure, os_reason, timed_out
from collector.log_throttle import LogThrottle
from collector.measurement import CoercionReport
from collector.points import Point
from collector.sources.base import CheckResult, SourceContext
from collector.sources.evcc.parse import mqtt_rounds_floats, parse_state, state_from_topics, with_meters_from

log = logging.getLogger(__name__)

NAME = "evcc"
MAX_CYCLE = 10.0      # seconds after an `updated` by which a snapshot is written in any case
MAX_TOPICS = 20_000
CHECK_TIMEOUT = 5.0   # a broker full of someone else's topics under our root must not eat memory
METER_LOG_EVERY = 600.0


class EvccMqtt:
    """`rest_state`, when a `url` is configured, reads `/api/state`: the lifetime meters of
    an evcc that rounds them over MQTT are taken from there, at most every `meter_interval`."""

    def __init__(self, config: Any, ctx: SourceContext, site: str,
                 report: Callable[[CoercionReport, str], None],
                 rest_state: Callable[[], Awaitable[Any]] | None = None,
                 meter_interval: float = 30.0, heartbeat: float | None = None) -> None:
        self.config = config
        self.ctx = ctx
        self.site = site
        self.origin = origin(NAME, site)
        self.report = report
        self.heartbeat = heartbeat   # write on change (see PointWriter.write)
        self.root = config.root
        self.topics: dict[str, str] = {}
        self.online: bool | None = None
        self.connected = asyncio.Event()
        self._rest_state = rest_state
        self.meter_interval = meter_interval
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: mqtt.Client | None = None
        self._emit_handle: asyncio.TimerHandle | None = None
        self._updated: str | None = None           # the last non-empty `updated`
        self._updated_seen = False                 # this evcc publishes `updated`
        self._emitted_updated: str | None = None
        self._cycle_started: float | None = None   # loop time of the cycle's first `updated`
        self._writing: asyncio.Task | None = None
        self._pending: tuple[list[Point], int, bool] | None = None   # points, time, coarse
        self._meters_at: float | None = None       # loop time of the last REST meter read
        self._rest_version: str | None = None      # evcc's version as REST last said it
        self._dirty = False
        self._overflow_logged = False
        self._no_updated_logged = False
        self._coarse_logged = False
        self._meter_warnings = LogThrottle(log, METER_LOG_EVERY)
        self._failures = 0
        self.snapshots_written = 0

    def _make_client(self) -> mqtt.Client:
        cfg = self.config
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=cfg.client_id or f"ev-collector-{uuid.uuid4().hex[:12]}",
                             clean_session=True)
        if cfg.username is not None:
            client.username_pw_set(cfg.username, cfg.password.reveal() if cfg.password else None)
        if cfg.tls:
            client.tls_set_context(ssl.create_default_context())
        client.reconnect_delay_set(min_delay=max(1, int(cfg.reconnect_min)),
                                   max_delay=max(1, int(cfg.reconnect_max)))
        return client

    @property
    def _address(self) -> str:
        return address(self.config.host, self.config.port)

    # -- lifecycle (asyncio thread) -------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        client = self._make_client()
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_message = self._on_message
        self._client = client
        # connect_async + loop_start: the first connection, too, is made (and retried with
        # backoff) in paho's thread, so an unreachable broker never delays the collector.
        client.connect_async(self.config.host, self.config.port, self.config.keepalive)
        client.loop_start()
        log.info("evcc %s: subscribing to %s/# on %s:%d", self.site, self.root,
                 self.config.host, self.config.port)

    async def close(self) -> None:
        if self._emit_handle is not None:
            # A cycle still settling: write what has arrived rather than lose it.
            self._emit_handle.cancel()
            self._emit()
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)  # joins paho's thread
        if self._writing is not None and not self._writing.done():
            await asyncio.wait({self._writing}, timeout=10)

    async def check(self) -> CheckResult:
        """Connect once, wait for the broker's answer and for evcc's retained `updated`."""
        cfg = self.config
        target = f"evcc {self.site} MQTT {cfg.host}:{cfg.port} ({self.root}/#)"
        try:
            detail = await asyncio.to_thread(self._probe, CHECK_TIMEOUT)
        except (OSError, ValueError) as exc:
            return CheckResult(target, False, connect_failure(self._address, os_reason(exc) or str(exc)))
        ok = not detail.startswith(("refused", "no answer"))
        return CheckResult(target, ok, detail)

    def _probe(self, timeout: float) -> str:
        client = self._make_client()
        answered, updated = threading.Event(), threading.Event()
        result: dict[str, Any] = {}

        def on_connect(c: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, props: Any) -> None:
            result["rc"] = reason_code
            answered.set()
            if not reason_code.is_failure:
                c.subscribe([(f"{self.root}/status", 0), (f"{self.root}/updated", 0)])

        def on_message(c: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
            text = message.payload.decode("utf-8", "replace")
            if message.topic.endswith("/status"):
                result["status"] = text.strip()
            else:
                result["updated"] = text
                updated.set()

        client.on_connect = on_connect
        client.on_message = on_message
        client.connect(self.config.host, self.config.port, self.config.keepalive)
        client.loop_start()
        try:
            if not answered.wait(timeout):
                return timed_out(self._address, "read", timeout)
            if result["rc"].is_failure:
                return f"refused: {result['rc']}"
            if not updated.wait(timeout):
                if result.get("status") == "offline":
                    # evcc empties its topics when it stops; its will then says offline
                    return (f"broker reachable; evcc is offline ({self.root}/status), no "
                            f"values retained: they come when it runs again")
                return (f"broker reachable, but no retained {self.root}/updated: "
                        f"does evcc publish under this root (evcc's mqtt.topic)?")
            return f"broker reachable; evcc last published at Unix time {result['updated']}"
        finally:
            client.disconnect()
            client.loop_stop()

    # -- paho's thread: hand everything to the loop -----------------------------------------

    def _call(self, fn: Callable, *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop closed between the check and the call
            log.debug("evcc %s: MQTT event after the event loop closed, ignored", self.site)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                    properties: Any) -> None:
        if reason_code.is_failure:
            log.error("evcc %s: MQTT broker %s:%d refused the connection: %s (retrying with backoff)",
                      self.site, self.config.host, self.config.port, reason_code)
            return
        client.subscribe(f"{self.root}/#", qos=0)
        self._call(self._connected, True)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        # paho calls this inside its `except OSError:` around connecting (paho-mqtt 2.x):
        # that error is the reason, which paho passes on no other way.
        error = sys.exception()
        self._call(self._connect_failed, (os_reason(error) or str(error)) if error else "")

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                       properties: Any) -> None:
        self._call(self._connected, False, str(reason_code))

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            payload = message.payload.decode("utf-8")
        except UnicodeDecodeError:
            self._call(self._undecodable, message.topic)
            return
        self._call(self._receive, message.topic, payload)

    # -- the asyncio thread -----------------------------------------------------------------

    def _connected(self, up: bool, reason: str = "") -> None:
        if up:
            log.info("evcc %s: MQTT connected to %s:%d%s", self.site, self.config.host,
                     self.config.port, f" after {self._failures} failed attempts" if self._failures else "")
            self._failures = 0
            self.connected.set()
        elif self._client is not None:  # not our own close()
            log.warning("evcc %s: MQTT connection lost (%s); reconnecting with backoff", self.site, reason)
            self.connected.clear()

    def _connect_failed(self, reason: str) -> None:
        self._failures += 1
        self.ctx.health.count(self.origin, "errors_transient")
        # The first failure in a row is a warning; the retries after it (paho backs off up to
        # reconnect_max) are reminders every 30 failures, so a broker down all night is visible
        # without flooding the log.
        if self._failures == 1 or self._failures % 30 == 0:
            failure = connect_failure(f"MQTT broker {self._address}", reason or "no reason given")
            attempts = f"{self._failures} attempt{'s' if self._failures > 1 else ''}"
            message = f"{failure} ({attempts}); retrying with backoff"
            self.ctx.health.error(self.origin, message)
            log.warning("evcc %s: %s", self.site, message)

    def _undecodable(self, topic: str) -> None:
        self.ctx.health.count(self.origin, "errors_payload")
        log.warning("evcc %s: MQTT payload on %s is not UTF-8, ignored", self.site, topic)

    def _receive(self, topic: str, payload: str) -> None:
        if topic == f"{self.root}/status":
            if not payload.strip():
                self.online = None   # the status topic deleted: no statement either way
                return
            online = payload.strip().lower() == "online"
            if online != self.online:
                (log.info if online else log.warning)("evcc %s: evcc reports itself %s over MQTT",
                                                      self.site, payload.strip())
            self.online = online
            return
        if topic.endswith("/set"):
            return  # commands to evcc, not state
        if not payload:
            self._delete(topic)
            return
        if topic == f"{self.root}/updated":
            self._updated = payload
            self._updated_seen = True
            if self._cycle_started is None and self._loop is not None:
                self._cycle_started = self._loop.time()
            self._settle()
            return
        if topic not in self.topics and len(self.topics) >= MAX_TOPICS:
            if not self._overflow_logged:
                log.warning("evcc %s: more than %d topics under %s/; ignoring new ones",
                            self.site, MAX_TOPICS, self.root)
                self._overflow_logged = True
            return
        if self.topics.get(topic) != payload:
            self.topics[topic] = payload
            self._dirty = True
        self._settle()

    def _delete(self, topic: str) -> None:
        """A zero-length retained message: evcc's null, or its cleanup at start and stop."""
        if topic == f"{self.root}/updated":
            log.debug("evcc %s: %s emptied (evcc starting or stopping)", self.site, topic)
            return
        if self.topics.pop(topic, None) is not None:
            self._dirty = True
        if self._cycle_started is not None:
            self._settle()   # a null within a cycle belongs to it; a cleanup begins none

    def _settle(self) -> None:
        """(Re)arm the snapshot timer: `settle` seconds of quiet, capped by MAX_CYCLE."""
        if self._loop is None:
            return
        if self._cycle_started is None:
            if self._updated_seen:
                return  # values between cycles (evcc's start-up header): wait for `updated`
            # No `updated` seen at all (a bridge that drops it, an evcc without it): the
            # values themselves begin a cycle, timestamped when it is written.
            self._cycle_started = self._loop.time()
        if self._emit_handle is not None:
            self._emit_handle.cancel()
        delay = min(self.config.settle, self._cycle_started + MAX_CYCLE - self._loop.time())
        self._emit_handle = self._loop.call_later(max(0.0, delay), self._emit)

    def _time_ns(self) -> int:
        """evcc's `updated` (Unix seconds); the wall clock if there is none or it is unreadable."""
        if self._updated is None:
            return int(self.ctx.limits.clock() * 1e9)
        try:
            seconds = float(self._updated)
        except ValueError:
            seconds = 0.0   # not a number: warned about below
        if seconds > 0:
            return int(round(seconds * 1e9))
        log.warning("evcc %s: unreadable %s/updated %r; using the wall clock",
                    self.site, self.root, self._updated)
        return int(self.ctx.limits.clock() * 1e9)

    def _emit(self) -> None:
        self._emit_handle = None
        self._cycle_started = None
        if not self._dirty and self._updated == self._emitted_updated:
            return  # the retained snapshot again, after a reconnect: already written
        if self.online is False:
            log.debug("evcc %s: evcc is offline; its retained topics are not written", self.site)
            return
        self._dirty = False
        self._emitted_updated = self._updated
        report = CoercionReport()
        try:
            state = state_from_topics(self.topics, self.root)
            time_ns = self._time_ns()
            points = parse_state(state, self.site, time_ns, report)
        except Exception as exc:  # a parser bug must not kill the subscription
            self.ctx.health.count(self.origin, "errors_payload")
            log.error("evcc %s: MQTT snapshot could not be parsed: %s: %s", self.site,
                      type(exc).__name__, exc)
            return
        self.report(report, "mqtt state")
        if not points:
            return
        if self._updated is None and not self._no_updated_logged:
            log.info("evcc %s: no %s/updated seen; MQTT points carry the time they are written",
                     self.site, self.root)
            self._no_updated_logged = True
        version = state.get("version") if isinstance(state.get("version"), str) else None
        coarse = mqtt_rounds_floats(version or self._rest_version)
        if coarse:
            self._say_coarse(version)
        self._pending = (points, time_ns, coarse)
        if self._writing is None or self._writing.done():
            self._writing = asyncio.ensure_future(self._write_pending())

    def _say_coarse(self, version: str | None) -> None:
        if self._coarse_logged:
            return
        self._coarse_logged = True
        which = f"evcc {version}" if version else "evcc (version not published)"
        if self._rest_state is not None:
            log.info("evcc %s: %s writes MQTT floats with 5 significant digits; lifetime meters "
                     "are read over REST instead, at most every %g s", self.site, which,
                     self.meter_interval)
        else:
            log.info("evcc %s: %s writes MQTT floats with 5 significant digits, so lifetime "
                     "meters (grid, PV, battery, charger energy, odometer) are stored that "
                     "coarsely; set `url` to read them over REST", self.site, which)

    async def _meters_from_rest(self, points: list[Point], time_ns: int) -> list[Point]:
        """The snapshot with its lifetime meters from `/api/state` (read now, so they are the
        same cycle's), or without them when it is not time for a read or the read failed."""
        assert self._rest_state is not None and self._loop is not None
        now = self._loop.time()
        # 0.9: evcc's cycle and ours drift by a little; a read due "now" must not wait a cycle.
        if self._meters_at is not None and now - self._meters_at < 0.9 * self.meter_interval:
            return with_meters_from(points, [])
        self._meters_at = now
        report = CoercionReport()
        try:
            payload = await self._rest_state()
            rest = parse_state(payload, self.site, time_ns, report)
        except SourceError as exc:
            # counted as a failed poll of that kind would be
            self.ctx.health.count(self.origin, ERROR_COUNTERS.get(exc.action, "errors_transient"))
            self._meter_warnings.log("rest", logging.WARNING,
                                     "evcc %s: lifetime meters not read over REST (%s); this "
                                     "snapshot is written without them", self.site, exc)
            return with_meters_from(points, [])
        self.report(report, "state (meters)")
        rest_version = next((p.fields.get("version") for p in rest
                             if p.measurement == "evcc_site"), None)
        self._rest_version = rest_version if isinstance(rest_version, str) else None
        return with_meters_from(points, rest)

    async def _write_pending(self) -> None:
        while self._pending is not None:
            (points, time_ns, coarse), self._pending = self._pending, None
            try:
                if coarse and self._rest_state is not None:
                    points = await self._meters_from_rest(points, time_ns)
                if points:
                    await self.ctx.writer.write(points, source=self.origin,
                                                heartbeat=self.heartbeat)
                    self.snapshots_written += 1
            except Exception as exc:  # the store failed; the next snapshot tries again
                self.ctx.health.count(self.origin, "polls_failed")
                self.ctx.health.error(self.origin, f"MQTT snapshot not stored: {exc}")
                log.error("evcc %s: MQTT snapshot not stored: %s", self.site, exc)
                self._dirty = True
