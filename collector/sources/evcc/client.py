"""HTTP to one evcc instance: `/api/state`, `/api/sessions`, `/api/tariff/<type>`. I/O only.

evcc itself has no authentication on its API; a reverse proxy in front of it may ask for HTTP
basic auth, which goes in a header (never in a URL we log). Failures become `SourceError`s.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import httpx

from collector.config_types import Secret
from collector.http_outcomes import (
    Action,
    SourceError,
    StatusKey,
    error_for_exception,
    error_for_response,
    safe_url,
)
from collector.sources.base import SourceContext

# evcc answers 404 `{"error": ...}` for a tariff type that is not configured: no data, not a
# broken configuration (the type may be configured later, or only for part of the day).
TARIFF_STATUS: Mapping[StatusKey, Action] = {404: Action.NO_DATA}


class EvccClient:
    def __init__(self, ctx: SourceContext, base_url: str, username: str | None = None,
                 password: Secret | None = None, timeout: float = 10.0) -> None:
        headers = {"Accept": "application/json"}
        if username is not None:
            secret = password.reveal() if password is not None else ""
            token = base64.b64encode(f"{username}:{secret}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {token}"
        self.base_url = base_url.rstrip("/")
        self.where = safe_url(self.base_url)
        self._http = ctx.http_client(base_url=self.base_url, timeout=timeout, headers=headers)

    async def get_json(self, path: str, params: Mapping[str, str] | None = None,
                       status_actions: Mapping[StatusKey, Action] | None = None) -> Any:
        what = f"evcc {self.where}{path}"
        try:
            response = await self._http.get(path, params=params)
        except httpx.HTTPError as exc:
            raise error_for_exception(exc, what) from None
        if response.status_code != 200:
            raise error_for_response(response, what, status_actions)
        try:
            return json.loads(response.content)
        except (ValueError, UnicodeDecodeError) as exc:
            excerpt = response.text[:80].replace("\n", " ")
            raise SourceError(Action.DROP, f"{what}: not JSON ({exc.__class__.__name__}): {excerpt!r}",
                              cause="bad body") from None

    async def state(self) -> Any:
        return await self.get_json("/api/state")

    async def sessions(self, year: int | None = None, month: int | None = None) -> Any:
        params = {"year": str(year), "month": str(month)} if year and month else None
        return await self.get_json("/api/sessions", params)

    async def tariff(self, tariff_type: str) -> Any:
        return await self.get_json(f"/api/tariff/{tariff_type}", status_actions=TARIFF_STATUS)

    async def close(self) -> None:
        await self._http.aclose()
