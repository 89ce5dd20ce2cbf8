"""Errors as data: every HTTP outcome maps to exactly one action.

One status table (`classify_status`) for every request: the sources' polls and the
forwarder's InfluxDB writes (`collector.influx.WriteError` carries an `Action` too).
Sources raise `SourceError` with an `Action`; the scheduler's job wrapper turns it into one
clear (throttled) log line and a health counter, and the next run goes on. A source may
override a status's meaning (go-e's 404 is "no fresh data", not a wrong URL) by passing its
own table to `classify_status`.
"""

from __future__ import annotations

import email.utils
import enum
import os
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from collector.errors import CollectorError


class Action(enum.Enum):
    RETRY = "retry"          # transient: connection error, timeout, 5xx; next run tries again
    WAIT = "wait"            # rate limited (429, quota): wait as told, then go on
    CONFIG = "config"        # our configuration is wrong (401/403, unknown id); report loudly
    NO_DATA = "no_data"      # the source has nothing fresh; not an error
    DROP = "drop"            # this response is unusable (malformed payload); log the reason


class SourceError(CollectorError):
    """A poll that did not produce data, with what to do about it.

    The message must already be safe to log: no token, password or cookie.
    """

    def __init__(self, action: Action, message: str, retry_after: float | None = None,
                 cause: str | None = None) -> None:
        super().__init__(message)
        self.action = action
        self.retry_after = retry_after
        # The kind of failure, short and stable ("timeout", "HTTP 503", "bad body"): the log
        # says each cause once per device, so a change of cause is seen at once.
        self.cause = cause or action.value


# What each HTTP status means, for every request the collector makes: a source's poll and an
# InfluxDB write alike. Exact statuses first, then the class ("4xx", "5xx", "other": a 1xx
# or 3xx httpx did not follow). A caller passes overrides for what its API means otherwise
# (evcc's tariff 404 is "no such tariff": no data; InfluxDB's 413 is a refused batch).
StatusKey = int | str
DEFAULT_STATUS_ACTIONS: Mapping[StatusKey, Action] = {
    400: Action.DROP,
    401: Action.CONFIG,
    403: Action.CONFIG,
    404: Action.CONFIG,
    408: Action.RETRY,
    429: Action.WAIT,
    "4xx": Action.DROP,
    "5xx": Action.RETRY,
    "other": Action.NO_DATA,
}


def status_class(status: int) -> str:
    return "5xx" if status >= 500 else "4xx" if status >= 400 else "other"


def classify_status(status: int, overrides: Mapping[StatusKey, Action] | None = None) -> Action:
    """The action for `status`: an exact entry (overrides first) before a class entry."""
    overrides = overrides or {}
    if status in overrides:
        return overrides[status]
    if status in DEFAULT_STATUS_ACTIONS:
        return DEFAULT_STATUS_ACTIONS[status]
    kind = status_class(status)
    return overrides.get(kind, DEFAULT_STATUS_ACTIONS[kind])


def failure_cause(exc: BaseException) -> str:
    """The kind of a transport failure, for logging each kind once."""
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused" if "refused" in str(exc).lower() else "cannot connect"
    if isinstance(exc, (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)):
        return "connection lost"
    return type(exc).__name__


def describe_exception(exc: BaseException) -> str:
    """A short, secret-free description of a failed request: where it went and why.

    One wording whichever transport raised it (httpx's own, the aiohttp one), the same as
    `connect_failure` and `timed_out` give the sources that do not speak httpx (MQTT, InfluxDB
    v2), so `check` and the logs say a failure the same way for every source.
    """
    where = _request_address(exc)
    if isinstance(exc, httpx.TimeoutException):
        phase = _TIMEOUT_PHASES.get(type(exc))
        return timed_out(where, phase, _timeout_of(exc, phase))
    reason = os_reason(exc) or redact_text(str(exc) or type(exc).__name__)
    if isinstance(exc, httpx.ConnectError):
        return connect_failure(where, reason)
    return f"{where}: {reason}" if where else reason


_DEFAULT_PORTS = {"http": 80, "https": 443}
_TIMEOUT_PHASES = {httpx.ConnectTimeout: "connect", httpx.ReadTimeout: "read",
                   httpx.WriteTimeout: "write", httpx.PoolTimeout: "pool"}


def address(host: str, port: int | None = None) -> str:
    """`host:port` as a log line names a peer; an IPv6 address in brackets."""
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}" if port else host


def url_address(url: str | httpx.URL) -> str:
    """`host:port` of a URL, the port spelled out when the URL leaves it to the scheme."""
    url = httpx.URL(str(url))
    return address(url.host, url.port or _DEFAULT_PORTS.get(url.scheme))


def os_reason(exc: BaseException) -> str | None:
    """The operating system's reason for a failure, from `exc` or what caused it.

    "Connection refused", "Name or service not known", "No route to host": the words of the
    OS whichever library wrapped them (httpcore, anyio, aiohttp, urllib3 and paho each wrap
    them differently); a TLS failure by the reason OpenSSL gives. None when no OS error is
    behind `exc`.
    """
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLError):   # an OSError whose errno is OpenSSL's, not the OS's
            if type(cause).__module__ == "ssl":   # not a wrapper (aiohttp's) around one
                reason = getattr(cause, "reason", None)
                return "TLS: " + (getattr(cause, "verify_message", None)
                                  or (reason.replace("_", " ").lower() if reason else str(cause)))
        elif isinstance(cause, socket.gaierror):
            return cause.strerror or str(cause)
        elif isinstance(cause, OSError) and cause.errno and cause.errno > 0:
            return os.strerror(cause.errno)
        cause = cause.__cause__ or cause.__context__
    return None


def connect_failure(where: str | None, reason: str) -> str:
    """A connection that could not be made: `cannot connect to HOST:PORT: REASON`."""
    return f"cannot connect to {where}: {reason}" if where else f"cannot connect: {reason}"


def timed_out(where: str | None, phase: str | None = None, seconds: float | None = None) -> str:
    """A timeout, said by what was waited for: connecting, the answer, sending, a connection."""
    reason = f"timed out after {seconds:g} s" if seconds else "timed out"
    if phase == "connect":
        return connect_failure(where, reason)
    what, to = {"write": ("cannot send", "to"), "pool": ("no free connection", "to")}.get(
        phase or "", ("no answer", "from"))
    return f"{what} {to} {where}: {reason}" if where else f"{what}: {reason}"


def _request_address(exc: BaseException) -> str | None:
    """`host:port` of the request an httpx error belongs to, if httpx attached it."""
    try:
        request = exc.request if isinstance(exc, httpx.RequestError) else None
    except RuntimeError:      # an error raised outside a client has no request
        return None
    return url_address(request.url) if request is not None else None


def _timeout_of(exc: BaseException, phase: str | None) -> float | None:
    try:
        timeouts = exc.request.extensions.get("timeout", {})  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):
        return None
    return timeouts.get(phase) if phase else None


SECRET_PARAMS = frozenset({"token", "password", "access_token", "client_secret", "apikey",
                           "api_key", "key", "username", "code", "refresh_token"})


def safe_url(url: str | httpx.URL) -> str:
    """The URL with every secret-looking query value replaced, fit for a log line."""
    parts = urlsplit(str(url))
    if not parts.query:
        return str(url)
    query = [(k, "***" if k.lower() in SECRET_PARAMS else v)
             for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    netloc = parts.netloc.rsplit("@", 1)[-1]  # user:password@host
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="*,"), ""))


_URL_IN_TEXT = re.compile(r"https?://[^\s'\"]+")


def redact_text(text: str) -> str:
    return _URL_IN_TEXT.sub(lambda m: safe_url(m.group(0)), text)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def error_for_response(response: httpx.Response, what: str,
                       overrides: Mapping[StatusKey, Action] | None = None) -> SourceError:
    """The SourceError for a non-2xx response, with a short excerpt of its body."""
    action = classify_status(response.status_code, overrides)
    body = response.text[:200].strip().replace("\n", " ") if response.content else ""
    detail = f": {redact_text(body)}" if body else ""
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    return SourceError(action, f"{what}: HTTP {response.status_code}{detail}", retry_after,
                       cause=f"HTTP {response.status_code}")


async def renewing_once_on_401(send: Callable[[], Awaitable[httpx.Response]],
                               renew: Callable[[httpx.Response], Awaitable[None]],
                               refused: Callable[[httpx.Response], SourceError]) -> httpx.Response:
    """Send; on a 401 renew the credentials once (a new token, a new session) and send again.

    Tokens expire and servers drop idle sessions: one 401 is routine. A 401 right after a
    renewal is not: it becomes `refused(response)`, a configuration error to report.
    """
    response = await send()
    if response.status_code != 401:
        return response
    await renew(response)
    response = await send()
    if response.status_code == 401:
        raise refused(response)
    return response


def error_for_exception(exc: httpx.HTTPError, what: str) -> SourceError:
    return SourceError(Action.RETRY, f"{what}: {describe_exception(exc)}", cause=failure_cause(exc))
