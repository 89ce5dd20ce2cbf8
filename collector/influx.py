"""The forwarder: local store -> InfluxDB, one synchronous batch at a time.

A batch is marked shipped only after InfluxDB acknowledged it, so a crash at any moment
re-sends at most one batch, which InfluxDB overwrites point for point. Failures map to one
action each: retry with backoff and jitter (connection errors, timeouts, 5xx, 429 with
Retry-After), bisect a refused batch until the offending lines are isolated and moved to dead
letters with InfluxDB's reason (400; the rest ships), and report 401/403 as configuration
errors, retried slowly and never dropped.

Two APIs: v1 (InfluxDB 1.x `/write`, spoken with httpx) and v2 (InfluxDB 2.x, 3.x and Cloud,
through influxdb-client). influxdb-client's batching mode is not used: it holds points in
memory only; the store is our buffer.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import httpx

from collector.config_types import InfluxV1, InfluxV2
from collector.errors import CollectorError
from collector.health import COLLECTOR, Health
from collector.http_outcomes import (
    Action,
    StatusKey,
    classify_status,
    connect_failure,
    describe_exception,
    os_reason,
    parse_retry_after,
    redact_text,
    timed_out,
    url_address,
)
from collector.store import BatchItem, Store, StoreError

log = logging.getLogger(__name__)


class WriteError(CollectorError):
    """A write that did not go through, and what to do about it (an `Action`).

    DROP: InfluxDB refused (some of) these lines, bisect to find them; CONFIG: credentials,
    permissions or a missing database, report and retry slowly, never drop; RETRY and WAIT:
    try again after a backoff or the time InfluxDB named.
    """

    def __init__(self, message: str, action: Action = Action.RETRY,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.action = action
        self.retry_after = retry_after

    @property
    def rejected(self) -> bool:
        return self.action is Action.DROP

    @property
    def config(self) -> bool:
        return self.action is Action.CONFIG


class InfluxTarget(Protocol):
    description: str

    def write(self, lines: Sequence[str]) -> None: ...
    def ping(self) -> str: ...
    def prepare(self) -> str: ...
    def close(self) -> None: ...


# InfluxDB's meanings where they differ from the shared table: a batch too large (413) or
# unprocessable (422) is refused like a bad line; any other 4xx, or a redirect not followed,
# is a write that did not land and is retried: a write is never dropped on a guess.
WRITE_STATUS_ACTIONS: Mapping[StatusKey, Action] = {
    413: Action.DROP, 422: Action.DROP, "4xx": Action.RETRY, "other": Action.RETRY}
_STATUS_HINTS = {401: "check the InfluxDB credentials and permissions",
                 403: "check the InfluxDB credentials and permissions",
                 404: "does the database/bucket exist?"}


def _error_for_status(status: int, body: str, headers: httpx.Headers | dict) -> WriteError:
    body = redact_text(body.strip().replace("\n", " ")[:500])
    message = f"InfluxDB answered HTTP {status}: {body}"
    if status in _STATUS_HINTS:
        message += f" ({_STATUS_HINTS[status]})"
    action = classify_status(status, WRITE_STATUS_ACTIONS)
    retry_after = None
    if action in (Action.RETRY, Action.WAIT):
        retry_after = parse_retry_after(headers.get("retry-after") if headers else None)
    return WriteError(message, action, retry_after)


class V1Target:
    """InfluxDB 1.x: POST /write?db=&rp=&precision=ns, gzip, basic auth in a header."""

    def __init__(self, cfg: InfluxV1) -> None:
        self.cfg = cfg
        self.description = f"InfluxDB v1 {cfg.url} database {cfg.database}"
        auth = (cfg.username or "", cfg.password.reveal()) if cfg.password else None
        self._client = httpx.Client(base_url=cfg.url.rstrip("/"), timeout=cfg.timeout,
                                    verify=cfg.verify_tls, auth=auth)
        self._params = {"db": cfg.database, "precision": "ns"}
        if cfg.retention_policy:
            self._params["rp"] = cfg.retention_policy

    def write(self, lines: Sequence[str]) -> None:
        body = gzip.compress("\n".join(lines).encode("utf-8"), compresslevel=1)
        try:
            response = self._client.post("/write", params=self._params, content=body,
                                         headers={"Content-Encoding": "gzip",
                                                  "Content-Type": "text/plain; charset=utf-8"})
        except httpx.HTTPError as exc:
            raise WriteError(f"{self.description}: {describe_exception(exc)}") from None
        if response.status_code not in (200, 204):
            raise _error_for_status(response.status_code, response.text, response.headers)

    def ping(self) -> str:
        try:
            response = self._client.get("/ping")
        except httpx.HTTPError as exc:
            raise WriteError(f"{self.description}: {describe_exception(exc)}") from None
        if response.status_code != 204:
            raise _error_for_status(response.status_code, response.text, response.headers)
        version = response.headers.get("x-influxdb-version", "unknown version")
        if self.cfg.database not in self._databases():
            return f"InfluxDB {version}; database {self.cfg.database} does not exist yet"
        return f"InfluxDB {version}; database {self.cfg.database} present"

    def prepare(self) -> str:
        """Create the database unless it exists (for the demo: `run` never creates one).

        Raises WriteError naming the fix when it is missing and this user may not create it.
        """
        database = self.cfg.database
        if database in self._databases():
            return f"database {database} present"
        statement = f"CREATE DATABASE {_influxql_name(database)}"
        answer = self._query(statement, post=True)
        error = answer.get("error") or next(
            (r["error"] for r in answer.get("results", []) if isinstance(r, dict) and "error" in r), None)
        if error:
            raise WriteError(f"{self.description} does not exist and cannot be created here "
                             f"({redact_text(str(error))}): create it as an InfluxDB admin with "
                             f"influx -execute '{statement}'", Action.CONFIG)
        return f"database {database} created"

    def _databases(self) -> set[str]:
        answer = self._query("SHOW DATABASES")
        return {row[0] for result in answer.get("results", []) for series in result.get("series", [])
                for row in series.get("values") or [] if row}

    def _query(self, statement: str, post: bool = False) -> dict:
        """An InfluxQL statement's JSON answer; a 403 comes back as the answer, to be worded."""
        try:
            response = self._client.request("POST" if post else "GET", "/query",
                                            params={"q": statement})
        except httpx.HTTPError as exc:
            raise WriteError(f"{self.description}: {statement}: {describe_exception(exc)}") from None
        if response.status_code != 200 and not (post and response.status_code == 403):
            raise _error_for_status(response.status_code, response.text, response.headers)
        try:
            answer = response.json()
        except ValueError:
            answer = {"error": response.text.strip()} if response.status_code == 403 else None
        if not isinstance(answer, dict):
            raise WriteError(f"{self.description}: {statement}: the answer is not a JSON object")
        return answer

    def close(self) -> None:
        self._client.close()


class V2Target:
    """InfluxDB 2.x, 3.x and Cloud through influxdb-client's synchronous write API."""

    def __init__(self, cfg: InfluxV2) -> None:
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.cfg = cfg
        self.description = f"InfluxDB v2 {cfg.url} bucket {cfg.bucket}"
        # retries=False: the forwarder owns backoff; the library must not retry behind its back.
        self._client = InfluxDBClient(url=cfg.url, token=cfg.token.reveal(), org=cfg.org,
                                      timeout=int(cfg.timeout * 1000), enable_gzip=True,
                                      verify_ssl=cfg.verify_tls, retries=False)
        self._write = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, lines: Sequence[str]) -> None:
        from influxdb_client.client.write_api import WritePrecision
        from influxdb_client.rest import ApiException

        try:
            self._write.write(bucket=self.cfg.bucket, org=self.cfg.org, record="\n".join(lines),
                              # the library's constant is a str its own annotation does not admit
                              write_precision=WritePrecision.NS)  # type: ignore[arg-type]
        except ApiException as exc:
            raise _api_error(exc) from None
        except Exception as exc:  # urllib3 connection errors and timeouts
            raise WriteError(f"{self.description}: {self._describe(exc)}") from None

    def ping(self) -> str:
        from influxdb_client.rest import ApiException

        try:
            # version() pings and raises what went wrong; ping() would only say False.
            version = self._client.version()
        except ApiException as exc:
            raise _api_error(exc) from None
        except Exception as exc:  # urllib3 connection errors and timeouts
            raise WriteError(f"{self.description}: {self._describe(exc)}") from None
        return f"InfluxDB {version} reachable"

    def prepare(self) -> str:
        """Create the bucket unless it exists (for the demo: `run` never creates one).

        Raises WriteError naming the fix when it is missing and the token may not create it.
        Without a buckets API (InfluxDB 3 answers 404; it creates a database on the first
        write) or a token that may not list buckets, it says so and leaves it to the writes.
        """
        from influxdb_client.client.exceptions import InfluxDBError
        from influxdb_client.rest import ApiException

        bucket, org = self.cfg.bucket, self.cfg.org
        fix = f"create it with: influx bucket create --name {bucket} --org {org}"
        buckets = self._client.buckets_api()
        try:
            found = buckets.find_buckets(name=bucket).buckets
        except ApiException as exc:
            if exc.status in (401, 403, 404):
                return f"bucket {bucket} not checked (listing buckets: HTTP {exc.status} {exc.reason})"
            raise _api_error(exc) from None
        except Exception as exc:  # urllib3 connection errors and timeouts
            raise WriteError(f"{self.description}: {self._describe(exc)}") from None
        if found:
            return f"bucket {bucket} present"
        try:
            buckets.create_bucket(bucket_name=bucket, org=org)
        except (ApiException, InfluxDBError) as exc:
            # InfluxDBError: the server's refusal, or an organisation this token cannot find
            status = getattr(exc, "status", None) or getattr(getattr(exc, "response", None), "status", None)
            reason = getattr(exc, "message", None) or str(exc)
            said = f"HTTP {status}: {reason}" if status else reason
            raise WriteError(f"{self.description} does not exist and cannot be created here "
                             f"({redact_text(said)[:300]}): check --influx-org and the token, "
                             f"or {fix}", Action.CONFIG) from None
        except Exception as exc:  # urllib3 connection errors and timeouts
            raise WriteError(f"{self.description}: {self._describe(exc)}") from None
        return f"bucket {bucket} created in organisation {org}"

    def _describe(self, exc: Exception) -> str:
        """urllib3's failures (under influxdb-client) in the words of `http_outcomes`."""
        from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError

        where = url_address(self.cfg.url)
        if isinstance(exc, NewConnectionError):   # also a ConnectTimeoutError: test it first
            return connect_failure(where, os_reason(exc) or str(exc))
        if isinstance(exc, ConnectTimeoutError):
            return timed_out(where, "connect", self.cfg.timeout)
        if isinstance(exc, ReadTimeoutError):
            return timed_out(where, "read", self.cfg.timeout)
        return f"{where}: {os_reason(exc) or redact_text(f'{type(exc).__name__}: {exc}')[:300]}"

    def close(self) -> None:
        self._write.close()
        self._client.close()


def _api_error(exc: Any) -> WriteError:
    """The WriteError for an influxdb-client ApiException (an HTTP answer that is not 2xx)."""
    headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
    body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else exc.body
    return _error_for_status(exc.status or 0, body or exc.reason or "", headers)


def _influxql_name(name: str) -> str:
    """An InfluxQL identifier, double-quoted with its quotes and backslashes escaped."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def make_target(cfg: InfluxV1 | InfluxV2) -> InfluxTarget:
    return V1Target(cfg) if isinstance(cfg, InfluxV1) else V2Target(cfg)


class Forwarder:
    """Ships the store's backlog; runs as its own asyncio task."""

    def __init__(self, store: Store, target: InfluxTarget, health: Health,
                 batch_size: int = 5000, idle_wait: float = 1.0, max_backoff: float = 300.0,
                 config_retry: float = 60.0) -> None:
        self.store = store
        self.target = target
        self.health = health
        self.batch_size = batch_size
        self.idle_wait = idle_wait
        self.max_backoff = max_backoff
        self.config_retry = config_retry
        self._failures = 0
        self._wake = asyncio.Event()
        self._last_logged: tuple[str, float] | None = None

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                shipped = await self.ship_once()
            except WriteError as exc:
                delay = self._delay_after(exc)
                self._report(exc, delay)
                await _wait(stop, delay)
                continue
            except StoreError as exc:
                # The store cannot be read or updated (disk full): a shipped batch that could
                # not be marked is shipped again later, which InfluxDB absorbs.
                self._failures += 1
                delay = min(self.max_backoff, 2.0 ** min(self._failures, 16))
                self._report(exc, delay)
                await _wait(stop, delay)
                continue
            if shipped == 0:
                self._wake.clear()
                await _wait_any(stop, self._wake, self.idle_wait)

    async def flush(self, deadline: float) -> bool:
        """Ship until the backlog is empty or `deadline` (monotonic) passes; True if empty."""
        while time.monotonic() < deadline:
            try:
                if await self.ship_once() == 0:
                    return True
            except (WriteError, StoreError) as exc:
                self._report(exc, 0.0)
                return False
        return False

    async def ship_once(self) -> int:
        batch = await asyncio.to_thread(self.store.next_batch, self.batch_size)
        if not batch:
            return 0
        shipped = await self._ship(batch)
        self._failures = 0
        self.health.gauge(COLLECTOR, "influx_ok", True)
        if self._last_logged is not None:
            log.info("InfluxDB writes work again (%s)", self.target.description)
            self._last_logged = None
        return shipped

    async def _ship(self, batch: list[BatchItem]) -> int:
        """Write a batch; on a refusal, bisect until the bad lines are dead letters."""
        try:
            await asyncio.to_thread(self.target.write, [item.line for item in batch])
        except WriteError as exc:
            self.health.count(COLLECTOR, "ship_failures")
            if not exc.rejected:
                raise
            if len(batch) == 1:
                reason = str(exc)
                log.warning("InfluxDB refused a line; kept as a dead letter: %s", reason)
                await asyncio.to_thread(self.store.dead_letter, batch[0], reason)
                return 0
            middle = len(batch) // 2
            return await self._ship(batch[:middle]) + await self._ship(batch[middle:])
        await asyncio.to_thread(self.store.mark_shipped, batch)
        self.health.count(COLLECTOR, "shipped", len(batch))
        return len(batch)

    def _delay_after(self, exc: WriteError) -> float:
        self._failures += 1
        self.health.gauge(COLLECTOR, "influx_ok", False)
        if exc.config:
            return self.config_retry
        if exc.retry_after is not None:
            return min(self.max_backoff, exc.retry_after)
        ceiling = min(self.max_backoff, 2.0 ** min(self._failures, 16))
        return random.uniform(ceiling / 2, ceiling)  # jitter so many collectors do not sync up

    def _report(self, exc: WriteError | StoreError, delay: float) -> None:
        message = str(exc)
        now = time.monotonic()
        level = logging.ERROR if getattr(exc, "config", True) else logging.WARNING
        if self._last_logged is None or self._last_logged[0] != message or now - self._last_logged[1] > 300:
            log.log(level, "%s; backlog kept in the local store, next try in %.0f s", message, delay)
            self._last_logged = (message, now)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
