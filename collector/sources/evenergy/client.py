"""ev.energy API v2 over HTTP: OAuth2 client credentials, the quota budget, Link paging.

I/O only: it returns payloads and the next page's URL, and maps every failure to a
`SourceError`. Every API request (a retry with a fresh token too) first waits for its stream's
turn at the client's `FairQuota` (one budget shared by every EVSE and stream of this client),
and every response's `x-ratelimit-*` headers are fed back to the budget. Secrets travel only
in headers (Basic auth to the token endpoint, Bearer to the
API); messages never contain them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from collector.config_types import Secret
from collector.http_outcomes import (
    Action,
    SourceError,
    classify_status,
    error_for_exception,
    parse_retry_after,
    redact_text,
    renewing_once_on_401,
    safe_url,
)
from collector.limits import Clock, FairQuota, wall_clock

log = logging.getLogger(__name__)

API_VERSION = "2"
DEFAULT_RETRY_AFTER = 60.0


@dataclass(frozen=True)
class Page:
    payload: Any
    next_url: str | None
    headers: httpx.Headers


def _int_header(headers: httpx.Headers, name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        log.warning("ev.energy sent an unreadable %s header: %r", name, value[:40])
        return None


def _problem_text(response: httpx.Response) -> str:
    """`title: detail` from a problem+json body (or the OAuth `error`), else a short excerpt."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        parts = [str(body[k]) for k in ("title", "detail", "error", "error_description")
                 if isinstance(body.get(k), (str, int)) and body.get(k) != ""]
        if parts:
            return redact_text(": ".join(parts))[:300]
    text = response.text[:200].strip().replace("\n", " ") if response.content else ""
    return redact_text(text)


class EvEnergyClient:
    def __init__(self, http: httpx.AsyncClient, *, base_url: str, token_url: str, client_id: str,
                 client_secret: Secret, user: str, quota: FairQuota,
                 clock: Clock = wall_clock) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.token_url = token_url
        self.client_id = client_id
        self._secret = client_secret
        self.user = user
        self.quota = quota
        self.budget = quota.budget
        self.clock = clock
        self._origin = self._origin_of(self.base_url)
        self._token: str | None = None
        self._expires_at = 0.0
        self._refresh_at = 0.0
        self._token_lock = asyncio.Lock()
        self.token_fetches = 0

    @staticmethod
    def _origin_of(url: str) -> tuple[str, str]:
        parts = urlsplit(url)
        return parts.scheme.lower(), parts.netloc.lower()

    # -- OAuth2 --------------------------------------------------------------------------

    async def token(self) -> str:
        """A bearer token, fetched again some time before it expires."""
        if self._token is not None and self.clock() < self._refresh_at:
            return self._token
        async with self._token_lock:   # one fetch for all jobs that find the token stale
            if self._token is not None and self.clock() < self._refresh_at:
                return self._token
            return await self._fetch_token()

    def invalidate(self, token: str) -> None:
        if self._token == token:
            self._token = None

    async def _fetch_token(self) -> str:
        what = f"ev.energy token endpoint {safe_url(self.token_url)}"
        try:
            response = await self.http.post(
                self.token_url, data={"grant_type": "client_credentials"},
                auth=httpx.BasicAuth(self.client_id, self._secret.reveal()),
                headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise error_for_exception(exc, what) from None
        self.token_fetches += 1
        if response.status_code in (400, 401, 403):
            raise SourceError(Action.CONFIG, f"{what} refused the client credentials "
                                             f"(HTTP {response.status_code}: {_problem_text(response)}): "
                                             f"check client_id and client_secret",
                              cause=f"token HTTP {response.status_code}")
        if response.status_code >= 400:
            action = classify_status(response.status_code)
            raise SourceError(action, f"{what}: HTTP {response.status_code}: {_problem_text(response)}",
                              parse_retry_after(response.headers.get("retry-after")),
                              cause=f"token HTTP {response.status_code}")
        try:
            body = response.json()
            token = body["access_token"]
            lifetime = float(body.get("expires_in") or 3600.0)
        except (ValueError, KeyError, TypeError):
            raise SourceError(Action.DROP, f"{what}: the answer carries no usable access_token") from None
        if not isinstance(token, str) or not token:
            raise SourceError(Action.DROP, f"{what}: the answer carries no usable access_token")
        now = self.clock()
        self._token = token
        self._expires_at = now + lifetime
        # Renew before expiry: a tenth of the lifetime early, at most 5 minutes.
        self._refresh_at = now + lifetime - min(300.0, lifetime / 10)
        log.debug("ev.energy: new access token for client %s, valid %.0f s", self.client_id, lifetime)
        return token

    # -- API -----------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    async def get(self, url: str, params: Mapping[str, str | int] | None = None, *,
                  stream: str = "other", first: bool = False) -> Page:
        """One page, at `stream`'s turn of the quota (`first`: it resumes an unfinished run);
        a 401 gets one fresh token and one retry, then it is a configuration error."""
        what = f"ev.energy GET {urlsplit(url).path}"
        token = ""

        async def send() -> httpx.Response:
            nonlocal token
            token = await self.token()
            await self.quota.turn(stream, first)
            try:
                response = await self.http.get(url, params=params, headers={
                    "Authorization": f"Bearer {token}",
                    "EvEnergy-Version": API_VERSION,
                    "EvEnergy-User": self.user,
                    "Accept": "application/json",
                })
            except httpx.HTTPError as exc:
                raise error_for_exception(exc, what) from None
            self.budget.observe(_int_header(response.headers, "x-ratelimit-limit"),
                                _int_header(response.headers, "x-ratelimit-remaining"))
            return response

        async def renew(response: httpx.Response) -> None:
            log.info("%s: access token refused (%s); fetching a new one", what, _problem_text(response))
            self.invalidate(token)
            self._refresh_at = 0.0

        def refused(response: httpx.Response) -> SourceError:
            return SourceError(Action.CONFIG, f"{what}: HTTP 401 with a fresh token "
                                              f"({_problem_text(response)}): check the client "
                                              f"credentials and that user {self.user} authorised "
                                              f"this application", cause="HTTP 401")

        response = await renewing_once_on_401(send, renew, refused)
        status = response.status_code
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            wait_s = retry_after if retry_after is not None else DEFAULT_RETRY_AFTER
            self.budget.block_for(wait_s)
            raise SourceError(Action.WAIT, f"{what}: HTTP 429 ({_problem_text(response)})",
                              wait_s, cause="HTTP 429")
        if status >= 400:
            raise SourceError(classify_status(status),
                              f"{what}: HTTP {status}: {_problem_text(response)}",
                              parse_retry_after(response.headers.get("retry-after")),
                              cause=f"HTTP {status}")
        if status != 200:
            raise SourceError(Action.RETRY, f"{what}: unexpected HTTP {status}",
                              cause=f"HTTP {status}")
        try:
            payload = response.json()
        except (ValueError, json.JSONDecodeError):
            raise SourceError(Action.DROP, f"{what}: the answer is not JSON",
                              cause="bad body") from None
        return Page(payload, self._next_url(response, what), response.headers)

    def _next_url(self, response: httpx.Response, what: str) -> str | None:
        if "link" not in response.headers:
            return None
        link = response.links.get("next")
        url = (link or {}).get("url")
        if not url or url == "about:blank":
            return None
        resolved = str(response.url.join(url))
        if self._origin_of(resolved) != self._origin:
            # Our bearer token would go wherever this points: follow only our own API.
            raise SourceError(Action.DROP, f"{what}: the next page's link leaves "
                                           f"{self._origin[1]} ({safe_url(resolved)}); not followed")
        return resolved

    async def aclose(self) -> None:
        await self.http.aclose()
