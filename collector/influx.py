"""The forwarder: local store -> InfluxDB, one synchronous batch at a time.

A batch is marked shipped only after InfluxDB acknowledged it, so a crash at any moment
re-sends only batches InfluxDB may have already (the one in flight, the one prepared, and those
acknowledged since the last mark landed: marks follow the shipping, see `_Marks`), which
InfluxDB overwrites point for point. Failures map to one action each: InfluxDB unreachable
(connection refused, reset, DNS): a cheap `/ping` every `probe_interval` seconds until it
answers, then shipping resumes at once, however long the outage was; timeouts, 5xx and 429:
retry with backoff and jitter (Retry-After honoured), at most `max_backoff` apart; a refused
batch (400) is bisected until the offending lines are isolated and moved to dead letters with
InfluxDB's reason (the rest ships); 401/403 are configuration errors, retried slowly and never
dropped. A backlog ships batch after batch, the next one read from the store while InfluxDB
ingests the current one.

Two APIs: v1 (InfluxDB 1.x `/write`, spoken with httpx) and v2 (InfluxDB 2.x, 3.x and Cloud,
through influxdb-client). influxdb-client's batching mode is not used: it holds points in
memory only; the store is our buffer.
"""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

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
from collector.store import Batch, Store, StoreError

log = logging.getLogger(__name__)


class WriteError(CollectorError):
    """A write that did not go through, and what to do about it (an `Action`).

    DROP: InfluxDB refused (some of) these lines, bisect to find them; CONFIG: credentials,
    permissions or a missing database, report and retry slowly, never drop; RETRY and WAIT:
    try again after a backoff or the time InfluxDB named. `unreachable`: no answer at all,
    probe until InfluxDB answers.
    """

    def __init__(self, message: str, action: Action = Action.RETRY,
                 retry_after: float | None = None, unreachable: bool = False) -> None:
        super().__init__(message)
        self.action = action
        self.retry_after = retry_after
        self.unreachable = unreachable  # no answer at all: probe until it answers

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
    def probe(self) -> bool: ...
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
        # Compressing saves bandwidth on a network and only costs CPU (ours to compress,
        # InfluxDB's to inflate) when InfluxDB runs on this machine.
        self._gzip = not _loopback(cfg.url)
        self._headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self._gzip:
            self._headers["Content-Encoding"] = "gzip"

    def write(self, lines: Sequence[str]) -> None:
        body = "\n".join(lines).encode("utf-8")
        if self._gzip:
            body = gzip.compress(body, compresslevel=1)
        try:
            response = self._client.post("/write", params=self._params, content=body,
                                         headers=self._headers)
        except httpx.HTTPError as exc:
            raise WriteError(f"{self.description}: {describe_exception(exc)}",
                             unreachable=_unreachable(exc)) from None
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

    def probe(self) -> bool:
        """Whether InfluxDB answers at all (GET /ping, no body): cheap enough to ask often."""
        try:
            return self._client.get("/ping").status_code == 204
        except httpx.HTTPError:
            return False

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
            raise WriteError(f"{self.description}: {self._describe(exc)}",
                             unreachable=_unreachable(exc)) from None

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

    def probe(self) -> bool:
        return bool(self._client.ping())   # GET /ping; False on any failure

    def close(self) -> None:
        self._write.close()
        self._client.close()


def _loopback(url: str) -> bool:
    """Whether `url` names this machine (localhost, 127.0.0.0/8, ::1)."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:          # a name: another machine, or a container beside this one
        return False


def _unreachable(exc: BaseException) -> bool:
    """No HTTP answer: refused, reset, unresolvable (not a timeout: a slow server is there)."""
    import urllib3.exceptions as u3

    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadError,
                        httpx.WriteError, httpx.RemoteProtocolError)):
        return True
    if isinstance(exc, u3.MaxRetryError):
        exc = exc.reason or exc
    return isinstance(exc, (u3.NewConnectionError, u3.ProtocolError, ConnectionError))


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
    """Ships the store's backlog; runs as its own asyncio task.

    `clock` and `wait` are the forwarder's sense of time (for tests: an outage of hours in
    seconds); `wait(stop, seconds)` returns early when `stop` is set.
    """

    def __init__(self, store: Store, target: InfluxTarget, health: Health,
                 batch_size: int = 5000, idle_wait: float = 1.0, max_backoff: float = 30.0,
                 config_retry: float = 60.0, probe_interval: float = 5.0,
                 clock: Callable[[], float] = time.monotonic,
                 wait: Callable[[asyncio.Event, float], Awaitable[None]] | None = None) -> None:
        self.store = store
        self.target = target
        self.health = health
        self.batch_size = batch_size
        self.idle_wait = idle_wait
        self.max_backoff = max_backoff
        self.config_retry = config_retry
        self.probe_interval = probe_interval
        self.clock = clock
        self.wait = wait or wait_or_stop
        self._failures = 0
        self._wake = asyncio.Event()
        self._last_logged: tuple[str, float] | None = None

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                shipped = await self.ship_backlog(stop)
            except WriteError as exc:
                self.health.gauge(COLLECTOR, "influx_ok", False)
                if exc.unreachable:
                    self._report(exc, self.probe_interval)
                    await self._probe_until_answered(stop)
                    continue
                delay = self._delay_after(exc)
                self._report(exc, delay)
                await self.wait(stop, delay)
                continue
            except StoreError as exc:
                # The store cannot be read or updated (disk full): a shipped batch that could
                # not be marked is shipped again later, which InfluxDB absorbs.
                delay = self._backoff()
                self._report(exc, delay)
                await self.wait(stop, delay)
                continue
            if shipped == 0:
                self._wake.clear()
                await _wait_any(stop, self._wake, self.idle_wait)

    async def _probe_until_answered(self, stop: asyncio.Event) -> None:
        """Ask `/ping` every `probe_interval` (jittered) until InfluxDB answers: the backlog
        ships within one interval of its return, however long it was away."""
        while not stop.is_set():
            await self.wait(stop, random.uniform(0.8, 1.0) * self.probe_interval)
            if stop.is_set() or await asyncio.to_thread(self.target.probe):
                return

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
        """Ship the oldest pending batch; returns how many points it held (0: nothing to do),
        shipped or, when InfluxDB refused them, kept as dead letters."""
        batch = await asyncio.to_thread(self.store.next_batch, self.batch_size)
        if not batch:
            return 0
        await self._ship(batch)
        self._succeeded()
        return len(batch)

    async def ship_backlog(self, stop: asyncio.Event | None = None) -> int:
        """Ship batch after batch until the store has nothing pending; each next batch is read
        and serialized while InfluxDB ingests the one before. Returns the points handled."""
        total = 0
        marks = _Marks(self.store)
        try:
            batch = await asyncio.to_thread(self.store.next_batch, self.batch_size)
            while batch:
                prepared = asyncio.create_task(asyncio.to_thread(
                    self.store.next_batch, self.batch_size, batch[-1].id))
                try:
                    await self._ship(batch, marks.add)
                except BaseException:
                    prepared.cancel()
                    raise
                total += len(batch)
                self._succeeded()
                batch = await prepared
                if stop is not None and stop.is_set():
                    break
        finally:
            await marks.wait()
        return total

    def _succeeded(self) -> None:
        self._failures = 0
        self.health.gauge(COLLECTOR, "influx_ok", True)
        if self._last_logged is not None:
            log.info("InfluxDB writes work again (%s)", self.target.description)
            self._last_logged = None

    async def _ship(self, batch: Batch, mark: Callable[[Batch], None] | None = None) -> int:
        """Write a batch; on a refusal, bisect until the bad lines are dead letters. What
        went through is marked shipped at once, or handed to `mark` to be marked later."""
        try:
            await asyncio.to_thread(self.target.write, batch.lines)
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
            return await self._ship(batch[:middle], mark) + await self._ship(batch[middle:], mark)
        if mark is None:
            await asyncio.to_thread(self.store.mark_shipped, batch)
        else:
            mark(batch)
        self.health.count(COLLECTOR, "shipped", len(batch))
        return len(batch)

    def _delay_after(self, exc: WriteError) -> float:
        if exc.config:
            self._failures += 1
            return self.config_retry
        if exc.retry_after is not None:
            self._failures += 1
            return min(self.max_backoff, exc.retry_after)
        return self._backoff()

    def _backoff(self) -> float:
        self._failures += 1
        ceiling = min(self.max_backoff, 2.0 ** min(self._failures, 16))
        return random.uniform(ceiling / 2, ceiling)  # jitter so many collectors do not sync up

    def _report(self, exc: WriteError | StoreError, delay: float) -> None:
        message = str(exc)
        now = self.clock()
        level = logging.ERROR if getattr(exc, "config", True) else logging.WARNING
        if self._last_logged is None or self._last_logged[0] != message or now - self._last_logged[1] > 300:
            log.log(level, "%s; backlog kept in the local store, next try in %.0f s", message, delay)
            self._last_logged = (message, now)


class _Marks:
    """Marks shipped batches in the store behind the shipping, the newest batch only.

    Marking takes the store's write lock, which a large commit of the collector holds for
    tens of milliseconds: waiting for it before the next write left InfluxDB and the
    forwarder idle. A mark says "shipped through this seq" (it never goes back), so one mark
    of the newest batch stands for all before it; a crash before it lands re-sends batches
    InfluxDB already has, which it overwrites point for point.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._newest: Batch | None = None
        self._task: asyncio.Task[None] | None = None

    def add(self, batch: Batch) -> None:
        """Mark `batch` (and all before it) soon; raises the StoreError of a failed mark."""
        self._newest = batch
        if self._task is not None and self._task.done():
            task, self._task = self._task, None
            task.result()
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while self._newest is not None:
            batch, self._newest = self._newest, None
            await asyncio.to_thread(self.store.mark_shipped, batch)

    async def wait(self) -> None:
        """Until every batch handed over is marked (raises a failed mark's StoreError)."""
        while self._task is not None:
            task = self._task
            await task
            if self._task is task:
                self._task = None


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Wait `seconds`, or less if `stop` is set meanwhile."""
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
