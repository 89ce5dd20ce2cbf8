"""An httpx transport on aiohttp, for a source that polls hundreds of hosts every second.

At 1,000 go-e chargers, httpx's own transport (httpcore on anyio: a cancel scope, pool
bookkeeping and several awaits per request) took about 45 % of the collector's samples in
py-spy, and its sends left late enough that some charger's requests arrived under 0.95 s
apart. httpx-aiohttp keeps the httpx client in front (our clients, timeouts, the outcome table
in `http_outcomes` and the test transports stay as they are) and gives the socket work to
aiohttp, whose connector keeps keep-alive connections per host without scanning them.

What this module adds to it: aiohttp errors named for what happened (httpx-aiohttp reports a
refused or reset connection as `ConnectTimeout`) and worded by the OS's reason like httpx's own,
and the session built inside the event loop.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.request

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from collector.http_outcomes import os_reason


def proxy_configured() -> bool:
    """Whether the environment names a proxy (HTTP_PROXY, HTTPS_PROXY, ...).

    This transport does not read them; httpx's own does, so a proxied site keeps that one.
    """
    proxies = urllib.request.getproxies()     # NO_PROXY alone names none ("no")
    return any(scheme in proxies for scheme in ("http", "https", "all"))


class FleetTransport(AiohttpTransport):
    """One aiohttp session with up to `limits.max_connections` keep-alive connections."""

    def __init__(self, tls: ssl.SSLContext, limits: httpx.Limits) -> None:
        self._tls = tls
        self._limits = limits
        super().__init__(verify=tls, limits=limits, client=self._session)

    def _session(self) -> aiohttp.ClientSession:
        # Called on the first request, inside the running loop, as aiohttp wants.
        connector = aiohttp.TCPConnector(ssl=self._tls, limit=self._limits.max_connections or 0,
                                         limit_per_host=0,
                                         keepalive_timeout=self._limits.keepalive_expiry or 15.0)
        return aiohttp.ClientSession(connector=connector)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except httpx.TimeoutException as exc:
            cause = exc.__cause__
            if isinstance(cause, aiohttp.ConnectionTimeoutError):
                raise httpx.ConnectTimeout(str(cause)) from cause
            if cause is None or isinstance(cause, asyncio.TimeoutError):
                raise
            raise _named(cause) from cause
        except aiohttp.ClientError as exc:      # the few that httpx-aiohttp passes through
            raise _named(exc) from exc


def _named(exc: BaseException) -> httpx.TransportError:
    # The OS's reason, not aiohttp's text ("Cannot connect to host h:p ssl:default [...]"
    # even for plain http): `http_outcomes.describe_exception` adds where.
    text = os_reason(exc) or str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError("Server disconnected without sending a response.")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(text)
    if isinstance(exc, aiohttp.ClientConnectionError):   # reset, closed while reading
        return httpx.ReadError(text)
    return httpx.TransportError(text)
