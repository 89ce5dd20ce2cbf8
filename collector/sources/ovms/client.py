"""HTTP client for the OVMS server v3 REST API: cookie session, re-login, text/plain errors.

The server authenticates the login by `username` and `password` URL parameters (the password
may be an API token), so the login URL carries the secret. It is therefore never logged:
messages here are built from the path alone, httpx's own request log line is redacted by a
filter on the `httpx` logger, and exceptions are reduced to secret-free text.

After login every call carries the `ovmsapisession` cookie. The server drops sessions idle for
about two minutes (`timeout_api`, default 120 s, checked every 10 s) and then answers 401
"Authentication failed": we log in again once and repeat the call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from collector.config_types import Secret
from collector.http_outcomes import (
    Action,
    SourceError,
    classify_status,
    describe_exception,
    failure_cause,
    redact_text,
    renewing_once_on_401,
    safe_url,
)

log = logging.getLogger(__name__)

COOKIE = "ovmsapisession"
# After the server refused our credentials, do not try them again for this long: every job
# would otherwise send a failing login each run.
LOGIN_BACKOFF = 300.0
# The server drops a session unused for `timeout_api` (120 s by default, checked every 10 s).
# Idle longer than this, we log in before the call instead of spending a request on a 401.
SESSION_IDLE = 100.0


class _RedactURLs(logging.Filter):
    """Rewrites httpx's "HTTP Request: GET <url> ..." so a query secret never reaches a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(safe_url(a) if isinstance(a, httpx.URL) else
                                (redact_text(a) if isinstance(a, str) else a) for a in args)
        if isinstance(record.msg, str) and "://" in record.msg:
            record.msg = redact_text(record.msg)
        return True


_FILTER = _RedactURLs()


def install_log_redaction() -> None:
    """Idempotent: guard httpx's request log against the login URL's password."""
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def _excerpt(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")[:200] if response.content else ""
    return redact_text(text)


def _cookie_from_headers(response: httpx.Response) -> str | None:
    """The session id from Set-Cookie even when the cookie jar's policy refused it."""
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name.strip() == COOKIE:
            value = rest.split(";", 1)[0].strip().strip('"')
            if value:
                return value
    return None


class OvmsClient:
    def __init__(self, http: httpx.AsyncClient, username: str, password: Secret) -> None:
        install_log_redaction()
        self.http = http
        self.username = username
        self._password = password
        self._session: str | None = None
        self._generation = 0          # bumped on each login, so concurrent 401s log in once
        self._login_lock = asyncio.Lock()
        self._peers: set[str] = set()  # vehicles connected as a peer in this session
        self._refused: tuple[float, SourceError] | None = None   # (until, error) after a 401
        self._last_used = 0.0          # monotonic time of the last answered call
        self.logins = 0

    @property
    def server(self) -> str:
        return safe_url(str(self.http.base_url).rstrip("/")) or "OVMS server"

    # -- session ---------------------------------------------------------------------------

    async def login(self) -> None:
        what = f"login to {self.server}"
        try:
            response = await self.http.get(
                "/api/cookie", params={"username": self.username, "password": self._password.reveal()})
        except httpx.HTTPError as exc:
            raise SourceError(Action.RETRY, f"{what}: {describe_exception(exc)}") from None
        if response.status_code == 401:
            raise SourceError(Action.CONFIG,
                              f"{what}: HTTP 401 {_excerpt(response) or 'Authentication failed'}: "
                                             "check the username and the password or API token")
        if response.status_code != 200:
            raise self._error(response, what)
        session = response.cookies.get(COOKIE) or _cookie_from_headers(response)
        if not session:
            raise SourceError(Action.DROP, f"{what}: HTTP 200 without an {COOKIE} cookie")
        # httpx keeps Set-Cookie values in its jar; we send our cookie explicitly instead.
        self.http.cookies.clear()
        self._session = session
        self._last_used = time.monotonic()
        self._generation += 1
        self._peers.clear()
        self.logins += 1
        log.debug("%s: session started", what)

    async def _ensure_session(self, seen_generation: int | None = None) -> int:
        async with self._login_lock:
            if self._session is None or (seen_generation is not None and seen_generation == self._generation):
                if self._refused is not None and time.monotonic() < self._refused[0]:
                    error = self._refused[1]
                    raise SourceError(error.action, f"{error} (not retried for {LOGIN_BACKOFF:.0f} s)")
                try:
                    await self.login()
                except SourceError as exc:
                    if exc.action is Action.CONFIG:
                        self._refused = (time.monotonic() + LOGIN_BACKOFF, exc)
                    raise
                self._refused = None
            return self._generation

    async def logout(self) -> None:
        """End the session (the server also disconnects our peer connections)."""
        if self._session is None:
            return
        session, self._session = self._session, None
        self._peers.clear()
        if time.monotonic() - self._last_used > SESSION_IDLE:
            return  # the server has dropped it already
        try:
            response = await self.http.delete("/api/cookie", headers={"Cookie": f"{COOKIE}={session}"})
        except httpx.HTTPError as exc:
            log.info("logout from %s failed (the session expires by itself): %s",
                     self.server, describe_exception(exc))
            return
        if response.status_code != 200:
            log.info("logout from %s answered HTTP %d (the session expires by itself)",
                     self.server, response.status_code)

    async def aclose(self) -> None:
        try:
            await self.logout()
        finally:
            await self.http.aclose()

    # -- requests --------------------------------------------------------------------------

    def _error(self, response: httpx.Response, what: str) -> SourceError:
        status = response.status_code
        body = _excerpt(response)
        detail = f": {body}" if body else ""
        if status == 502 and "paranoid" in body.lower():
            return SourceError(Action.CONFIG, f"{what}: HTTP 502{detail} (the API cannot read "
                                              "vehicles in paranoid mode)")
        if status == 403:
            return SourceError(Action.CONFIG, f"{what}: HTTP 403{detail} (vehicle not in this "
                                              "account, or the API token lacks the right)")
        return SourceError(classify_status(status), f"{what}: HTTP {status}{detail}",
                           cause=f"HTTP {status}")

    async def request(self, method: str, path: str,
                      params: Mapping[str, str] | None = None) -> httpx.Response:
        """One call with the session cookie; on 401 log in again once and repeat it."""
        what = f"{method} {path}"
        generation = await self._ensure_session()
        if time.monotonic() - self._last_used > SESSION_IDLE:
            generation = await self._ensure_session(generation)   # surely expired: log in now

        async def send() -> httpx.Response:
            try:
                response = await self.http.request(method, path, params=params,
                                                   headers={"Cookie": f"{COOKIE}={self._session}"})
            except httpx.HTTPError as exc:
                raise SourceError(Action.RETRY, f"{what}: {describe_exception(exc)}",
                                  cause=failure_cause(exc)) from None
            self._last_used = time.monotonic()
            return response

        async def renew(_response: httpx.Response) -> None:
            log.debug("%s: session expired, logging in again", what)
            await self._ensure_session(generation)

        response = await renewing_once_on_401(send, renew, lambda _: SourceError(
            Action.CONFIG, f"{what}: HTTP 401 right after a fresh login", cause="HTTP 401"))
        if not 200 <= response.status_code < 300:
            raise self._error(response, what)
        return response

    async def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        response = await self.request("GET", path, params)
        try:
            return json.loads(response.content)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            reason = exc.msg if hasattr(exc, "msg") else exc
            raise SourceError(Action.DROP, f"GET {path}: not JSON ({reason}): "
                                           f"{_excerpt(response)[:80]}", cause="bad body") from None

    # -- API -------------------------------------------------------------------------------

    async def vehicles(self) -> Any:
        return await self.get_json("/api/vehicles")

    async def sample(self, stream: str, vehicle: str) -> Any:
        """`status`, `charge`, `location` or `tpms` of one vehicle."""
        return await self.get_json(f"/api/{stream}/{quote(vehicle, safe='')}")

    async def connect_peer(self, vehicle: str) -> bool:
        """Connect as a peer once per session (the car then reports more often). True if new."""
        if vehicle in self._peers:
            return False
        await self.get_json(f"/api/vehicle/{quote(vehicle, safe='')}")
        self._peers.add(vehicle)
        return True

    async def history_summary(self, vehicle: str, since: str | None = None) -> Any:
        return await self.get_json(f"/api/historical/{quote(vehicle, safe='')}",
                                   {"since": since} if since else None)

    async def history(self, vehicle: str, record_type: str, since: str | None = None) -> Any:
        # `*` and `-` are fine in a path segment; quote anything else a vehicle type may use.
        path = f"/api/historical/{quote(vehicle, safe='')}/{quote(record_type, safe='*-')}"
        return await self.get_json(path, {"since": since} if since else None)
