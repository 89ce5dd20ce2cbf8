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
one REST poll (evcc may publish only changed values; the snapshot carries the unchanged ones).
Only the last snapshot is written when writes fall behind; an identical snapshot re-sent after
a reconnect is skipped, and would be a no-op in the store anyway.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import sys
import threading
import uuid
from typing import Any, Callable

import paho.mqtt.client as mqtt

from collector.http_outcomes import address, connect_failure, os_reason, timed_out
from collector.schema import CoercionReport
from collector.sources.base import CheckResult, SourceContext
from collector.sources.evcc.parse import parse_state, state_from_topics

log = logging.getLogger(__name__)

NAME = "evcc"
MAX_CYCLE = 10.0      # seconds after an `updated` by which a snapshot is written in any case
MAX_TOPICS = 20_000
CHECK_TIMEOUT = 5.0   # a broker full of someone else's topics under our root must not eat memory


class EvccMqtt:
    def __init__(self, config: Any, ctx: SourceContext, site: str,
                 report: Callable[[CoercionReport, str], None]) -> None:
        self.config = config
        self.ctx = ctx
        self.site = site
        self.report = report
        self.root = config.root
        self.topics: dict[str, str] = {}
        self.online: bool | None = None
        self.connected = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: mqtt.Client | None = None
        self._emit_handle: asyncio.TimerHandle | None = None
        self._updated: str | None = None
        self._emitted_updated: str | None = None
        self._cycle_started: float | None = None   # loop time of the cycle's first `updated`
        self._writing: asyncio.Task | None = None
        self._pending: list | None = None
        self._dirty = False
        self._overflow_logged = False
        self._no_updated_logged = False
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
                c.subscribe(f"{self.root}/updated")

        def on_message(c: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
            result["updated"] = message.payload.decode("utf-8", "replace")
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
        self.ctx.health.count(NAME, "errors_transient")
        # The first failure in a row is a warning; the retries after it (paho backs off up to
        # reconnect_max) are reminders every 30 failures, so a broker down all night is visible
        # without flooding the log.
        if self._failures == 1 or self._failures % 30 == 0:
            failure = connect_failure(f"MQTT broker {self._address}", reason or "no reason given")
            attempts = f"{self._failures} attempt{'s' if self._failures > 1 else ''}"
            message = f"{failure} ({attempts}); retrying with backoff"
            self.ctx.health.error(NAME, message)
            log.warning("evcc %s: %s", self.site, message)

    def _undecodable(self, topic: str) -> None:
        self.ctx.health.count(NAME, "errors_payload")
        log.warning("evcc %s: MQTT payload on %s is not UTF-8, ignored", self.site, topic)

    def _receive(self, topic: str, payload: str) -> None:
        if topic == f"{self.root}/status":
            online = payload.strip().lower() == "online"
            if online != self.online:
                (log.info if online else log.warning)("evcc %s: evcc reports itself %s over MQTT",
                                                      self.site, payload.strip() or "(empty)")
            self.online = online
            return
        if topic.endswith("/set"):
            return  # commands to evcc, not state
        if topic == f"{self.root}/updated":
            self._updated = payload
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

    def _settle(self) -> None:
        """(Re)arm the snapshot timer: `settle` seconds of quiet, capped by MAX_CYCLE."""
        if self._loop is None:
            return
        if self._cycle_started is None:
            if self._updated is not None:
                return  # values between cycles (a stray retained delete): wait for `updated`
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
            if not self._no_updated_logged:
                log.info("evcc %s: no %s/updated seen; MQTT points carry the time they are written",
                         self.site, self.root)
                self._no_updated_logged = True
            return int(self.ctx.limits.clock() * 1e9)
        try:
            seconds = float(self._updated or "")
            if seconds > 0:
                return int(round(seconds * 1e9))
        except ValueError:
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
            points = parse_state(state, self.site, self._time_ns(), report)
        except Exception as exc:  # a parser bug must not kill the subscription
            self.ctx.health.count(NAME, "errors_payload")
            log.error("evcc %s: MQTT snapshot could not be parsed: %s: %s", self.site,
                      type(exc).__name__, exc)
            return
        self.report(report, "mqtt state")
        if not points:
            return
        self._pending = points
        if self._writing is None or self._writing.done():
            self._writing = asyncio.ensure_future(self._write_pending())

    async def _write_pending(self) -> None:
        while self._pending is not None:
            points, self._pending = self._pending, None
            try:
                await self.ctx.writer.write(points, source=NAME)
                self.snapshots_written += 1
            except Exception as exc:  # the store failed; the next snapshot tries again
                self.ctx.health.count(NAME, "polls_failed")
                self.ctx.health.error(NAME, f"MQTT snapshot not stored: {exc}")
                log.error("evcc %s: MQTT snapshot not stored: %s", self.site, exc)
                self._dirty = True
