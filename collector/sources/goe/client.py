"""HTTP for the go-eCharger: the Cloud API and the local HTTP API v2. I/O only.

Both answer `GET /api/status` with the same flat JSON status object. The token goes in the
`Authorization: Bearer` header, never in the `token` query parameter: URLs end up in logs.

Outcomes (see the README for the table):
- 200: the status; on the cloud `last-modified` says when the charger sent it.
- cloud 401/403: wrong token, charger offline or Cloud API not enabled -> CONFIG.
- cloud 404: authenticated, but the charger has sent nothing within `age` -> NO_DATA.
- local 400 with a JSON object body: some models answer a full or filtered status that way;
  it is the status.
- timeouts, connection errors, 5xx (the cloud has intermittent 502s) -> RETRY.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import orjson

from collector.config_types import Secret
from collector.http_outcomes import Action, SourceError, error_for_exception, error_for_response

log = logging.getLogger(__name__)

DEFAULT_CLOUD_URL = "https://{serial}.api.v3.go-e.io"
CLOUD_HOST = "{serial}.api.v3.go-e.io"

Api = Literal["cloud", "local", "local_v1"]


@dataclass(frozen=True)
class Charger:
    """Where one charger is reached."""

    serial: str
    api: Api
    token: Secret | None = None     # cloud: the Cloud API key (`cak`)
    host: str | None = None         # local: host[:port] or a base URL

    @property
    def label(self) -> str:
        return f"goe charger {self.serial} ({self.api})"


class DataOutdated(SourceError):
    """Cloud 404 "Data is outdated": the charger has not reported within `age`."""

    def __init__(self, message: str, age: float | None) -> None:
        super().__init__(Action.NO_DATA, message, cause="data outdated")
        self.age = age      # as the cloud gives it; its unit is not documented


@dataclass(frozen=True)
class StatusResponse:
    payload: Any                    # the decoded JSON (a dict for a usable status)
    last_modified: str | None       # the raw header, when the server sent one
    status_code: int


def local_base_url(host: str) -> str:
    host = host.strip().rstrip("/")
    return host if host.startswith(("http://", "https://")) else f"http://{host}"


class GoeClient:
    """Fetches status objects; one instance (and one connection pool) for every charger."""

    def __init__(self, http: httpx.AsyncClient, cloud_url: str = DEFAULT_CLOUD_URL,
                 filter_keys: Sequence[str] = (), age: float | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.http = http
        self.cloud_url = cloud_url.rstrip("/")
        self.filter = ",".join(filter_keys)
        self.age = age
        self.transport = transport
        self._cache: dict[tuple[Charger, str], httpx.Request] = {}

    def keys_with(self, *extra: str) -> list[str] | None:
        """The configured filter plus `extra` keys; None when the filter asks for everything."""
        if not self.filter:
            return None
        keys = self.filter.split(",")
        return keys + [key for key in extra if key not in keys]

    def request_for(self, charger: Charger, keys: Sequence[str] | None = None
                    ) -> tuple[str, dict[str, str], dict[str, str]]:
        """URL, query parameters and headers of a status request (the token only in headers).

        `keys`: the status keys to ask for instead of the configured filter.
        """
        params: dict[str, str] = {}
        headers: dict[str, str] = {}
        wanted = ",".join(keys) if keys is not None else self.filter
        if wanted and charger.api != "local_v1":   # API v1 has no filter
            params["filter"] = wanted
        if charger.api == "cloud":
            if "{serial}" in self.cloud_url:
                url = self.cloud_url.replace("{serial}", charger.serial) + "/api/status"
            else:
                # A base URL without the placeholder (a proxy, the simulator on a loopback
                # port): the charger is named by the Host header the cloud routes on.
                url = self.cloud_url + "/api/status"
                headers["Host"] = CLOUD_HOST.format(serial=charger.serial)
            if self.age is not None:
                params["age"] = f"{self.age:g}"
        elif charger.api == "local_v1":
            url = local_base_url(charger.host or "") + "/status"
        else:
            url = local_base_url(charger.host or "") + "/api/status"
        if charger.token is not None:
            headers["Authorization"] = f"Bearer {charger.token.reveal()}"
        return url, params, headers

    def _prepared(self, charger: Charger, keys: Sequence[str] | None) -> httpx.Request:
        """The request of a charger, built once by the client (its headers and timeouts):
        URL parsing and header merging are a large part of a poll's CPU."""
        cache_key = (charger, ",".join(keys) if keys is not None else "\0")
        prepared = self._cache.get(cache_key)
        if prepared is None:
            url, params, headers = self.request_for(charger, keys)
            prepared = self._cache[cache_key] = self.http.build_request(
                "GET", httpx.URL(url, params=params), headers=headers)
        return prepared

    async def _send(self, request: httpx.Request) -> httpx.Response:
        """The response, read whole. With `transport` (the one the client was built on), the
        request goes to it directly: a status poll uses none of what the client adds per
        request (redirects, auth flows, a cookie jar), and at 1,000 chargers a second that
        layer took about as much CPU as aiohttp's own work."""
        if self.transport is None:
            return await self.http.send(request)
        try:
            response = await self.transport.handle_async_request(request)
        except httpx.RequestError as exc:
            exc.request = request     # as the client does: the message names host and timeout
            raise
        try:
            await response.aread()
        finally:
            await response.aclose()
        response.request = request
        return response

    async def fetch_status(self, charger: Charger, keys: Sequence[str] | None = None) -> StatusResponse:
        """The status object; `keys` asks for those keys instead of the configured filter."""
        request = self._prepared(charger, keys)
        what = charger.label
        try:
            response = await self._send(request)
        except httpx.HTTPError as exc:
            raise error_for_exception(exc, f"{what}: status request") from None
        status = response.status_code
        if status == 200:
            return StatusResponse(self._decode(response, what), response.headers.get("last-modified"),
                                  status)
        if charger.api == "local" and status == 400:
            payload = self._json_or_none(response)
            if isinstance(payload, dict) and payload:
                # Some models answer a full status, or a filter naming a key they lack, with
                # 400 and the status anyway.
                log.debug("%s: HTTP 400 with a status body; using it", what)
                return StatusResponse(payload, None, status)
        raise self._error(charger, response)

    @staticmethod
    def _json_or_none(response: httpx.Response) -> Any:
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            return None

    def _decode(self, response: httpx.Response, what: str) -> Any:
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            kind = response.headers.get("content-type", "no content type")
            excerpt = response.text[:80].strip().replace("\n", " ")
            raise SourceError(Action.DROP, f"{what}: HTTP 200 but the body is not JSON "
                                           f"({kind}): {excerpt!r}", cause="bad body") from None

    def _error(self, charger: Charger, response: httpx.Response) -> SourceError:
        status = response.status_code
        what = charger.label
        if charger.api == "cloud":
            if status == 404:
                body = self._json_or_none(response)
                reason, age = "", None
                if isinstance(body, dict):
                    reason = f": {body.get('reason') or 'no reason given'}"
                    if isinstance(body.get("age"), (int, float)) and not isinstance(body["age"], bool):
                        age = float(body["age"])
                        reason += f" (age {age})"
                return DataOutdated(f"{what}: no fresh data (HTTP 404{reason})", age)
            if status == 403:
                return SourceError(Action.CONFIG, f"{what}: HTTP 403: the charger is offline, or "
                                                  "its Cloud API is not enabled (app: Internet / "
                                                  "Advanced settings), or the token is wrong",
                                   cause="HTTP 403")
            if status == 401:
                return SourceError(Action.CONFIG, f"{what}: HTTP 401: the Cloud API token was "
                                                  "rejected (check the key shown in the app)",
                                   cause="HTTP 401")
        elif status == 404:
            version = "v1" if charger.api == "local_v1" else "v2"
            return SourceError(Action.CONFIG, f"{what}: HTTP 404: is the local HTTP API "
                                              f"{version} enabled in the app?", cause="HTTP 404")
        return error_for_response(response, what)
