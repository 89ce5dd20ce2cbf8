"""ev.energy API v2 simulator: OAuth2 client credentials, EVSEs, status and command logs.

What it follows from the API documents and notes (docs/../API-NOTES):
- `POST /o/token/` (client credentials; client authentication by HTTP Basic or form fields)
  returns a bearer token that expires; an expired or unknown token gets 401 problem+json.
- Every API request needs `Authorization: Bearer`, and with client credentials an
  `EvEnergy-User` header; `EvEnergy-Version` other than 2 is refused. Responses carry
  `EvEnergy-Version: 2`.
- Quota: `quota` requests per rolling hour per client; every authenticated response carries
  `x-ratelimit-limit` and `x-ratelimit-remaining`; over the quota a 429 with `retry-after`
  (seconds) and a problem+json body. Token requests are not counted.
- Lists (`/v2/evses`, `/v2/evses/{id}/status_logs`, `/v2/evses/{id}/command_logs`) are bare
  JSON arrays, newest first, paged by an RFC 5988 `Link` header (`rel="next"` /
  `rel="previous"`, `<about:blank>` when there is none); `page_size` 1..100 (default 25), else
  400; log cursors `page_after` / `page_before` are timestamps; filters `sampled_at__gte`,
  `sampled_at__lte` / `logged_at__gte`, `logged_at__lte`.

The data follows charging sessions: each EVSE is plugged in most evenings, held by smart
charging until a scheduled start after midnight, charges its session's energy at the EVSE's
power, stops, and is unplugged in the morning. Status logs are sampled every `status_period`
seconds (with jitter) and become visible when logged, a little after they were sampled.
Commands (smart charge enabled, scheduled charging, stop, refresh schedules, now and then a
demand-response command whose reason the docs do not list) follow the same sessions.
Everything is a pure function of (seed, EVSE, time), so the same seed gives the same data in
every process; the clock is injectable (default: `time.time`, looked up at each call, so
freezegun drives it).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import logging
import math
import re
import signal
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode

from collector.sim.base import SimRequest, SimResponse, SimServer, log_to_stdout

log = logging.getLogger(__name__)

US = 1_000_000
DAY_US = 86_400 * US
HOUR_US = 3_600 * US
ANCHOR_DAY = 19_358          # 2023-01-01: meters count from here, in every process alike
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 25
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PROBLEM_BASE = "https://developers.ev.energy/problems/"


def _now_clock() -> float:
    return time.time()


@lru_cache(maxsize=4096)
def _date(days: int) -> str:
    # Integer civil-from-days (H. Hinnant): fast, and no clock function freezegun patches.
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return f"{yoe + era * 400 + (month <= 2):04d}-{month:02d}-{day:02d}"


def iso_us(t_us: int) -> str:
    """RFC 3339 UTC with microseconds, as the API writes timestamps."""
    days, rest = divmod(t_us, DAY_US)
    seconds, micros = divmod(rest, US)
    return f"{_date(days)}T{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{micros:06d}Z"


_ISO = re.compile(r"^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?$")


def parse_iso_us(text: str) -> int:
    match = _ISO.match(text.strip())
    if not match:
        raise ValueError(f"not an ISO 8601 date-time: {text!r}")
    base, frac, zone = match.groups()
    dt = datetime.fromisoformat(base.replace(" ", "T"))
    if zone and zone != "Z":
        dt = datetime.fromisoformat(base.replace(" ", "T") + zone)
    else:
        dt = dt.replace(tzinfo=UTC)
    micros = int((frac or "0").ljust(9, "0")[:6])
    return int(dt.timestamp()) * US + micros


@dataclass(frozen=True)
class Evse:
    index: int
    id: str
    power_w: int
    rating_ma: int
    model: str
    has_soc: bool
    has_inlet: bool
    mode: str | None
    extra_field: bool
    offset_us: int
    max_delay_us: int


@dataclass(frozen=True)
class Session:
    plug_in: int      # microseconds
    start: int
    end: int
    unplug: int
    energy_wh: int
    soc_start: int


@dataclass
class _Client:
    secret: str
    requests: deque = field(default_factory=deque)


class EvEnergySim:
    def __init__(self, evses: int = 3, seed: int = 1, clock: Callable[[], float] | None = None,
                 quota: int = 1000, token_ttl: float = 36_000.0, status_period: float = 300.0,
                 history_days: float = 30.0, client_id: str = "demo-client",
                 client_secret: str = "demo-secret", user: str = "user01HSIMULATEDUSER0000000000",
                 scheme: str = "http") -> None:
        self.seed = seed
        self.clock = clock or _now_clock
        self.quota = quota
        self.token_ttl = token_ttl
        self.status_period_us = int(status_period * US)
        self.user = user
        self.scheme = scheme
        self.clients: dict[str, _Client] = {client_id: _Client(client_secret)}
        self._tokens: dict[str, tuple[str, float]] = {}
        self._token_counter = 0
        self._lock = threading.Lock()
        self._sessions: dict[tuple[int, int], Session | None] = {}
        self._meter_cache: dict[int, list[int]] = {}
        self.data_start_us = max(ANCHOR_DAY * DAY_US,
                                 (int(self.clock() * US) - int(history_days * DAY_US)) // DAY_US * DAY_US)
        self.evses = [self._make_evse(i) for i in range(evses)]
        self._by_id = {e.id: e for e in self.evses}
        # What happened, for tests and the demo.
        self.stats: dict[str, int] = {"requests": 0, "token_requests": 0, "429": 0, "401": 0, "400": 0}
        self.faults: list[tuple[str, int]] = []   # (path prefix, status): served once each

    # -- deterministic randomness ---------------------------------------------------------

    def _u(self, *parts: object) -> float:
        digest = hashlib.blake2b(repr((self.seed, *parts)).encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64

    def _make_evse(self, i: int) -> Evse:
        raw = hashlib.sha256(f"evse:{self.seed}:{i}".encode()).digest()
        number = int.from_bytes(raw[:17], "big")
        chars = "".join(_CROCKFORD[(number >> (5 * k)) & 31] for k in range(26))
        power, rating = [(7200, 32000), (11000, 16000), (3600, 16000)][i % 3 if i % 5 else 0]
        return Evse(
            index=i, id="evse" + chars, power_w=power, rating_ma=rating,
            model=["Zappi v2", "Wallbox Pulsar Plus", "Ohme Home Pro", "Easee One"][i % 4],
            has_soc=i % 3 == 0, has_inlet=i % 2 == 0,
            mode="Load match" if i % 4 == 1 else None, extra_field=i % 5 == 2,
            offset_us=int(self._u("offset", i) * self.status_period_us),
            max_delay_us=int((20 + 100 * self._u("delay", i)) * US),
        )

    # -- the charging model ---------------------------------------------------------------

    def session(self, index: int, day: int) -> Session | None:
        """The session plugged in on the evening of `day` (days since 1970), if any."""
        key = (index, day)
        if key not in self._sessions:
            self._sessions[key] = self._make_session(index, day)
        return self._sessions[key]

    def _make_session(self, index: int, day: int) -> Session | None:
        u = lambda *k: self._u("session", index, day, *k)  # noqa: E731
        if u("skip") < 0.12:
            return None
        evse = self.evses[index]
        plug_in = day * DAY_US + int((17 + 3 * u("in")) * HOUR_US)
        energy = int(6000 + 24000 * u("energy"))
        start = (day + 1) * DAY_US + int((0.5 + 2 * u("start")) * HOUR_US)
        end = start + int(energy / evse.power_w * HOUR_US)
        unplug = max(end + int((600 + 1800 * u("late")) * US),
                     (day + 1) * DAY_US + int((7 + 1.5 * u("out")) * HOUR_US))
        return Session(plug_in, start, end, unplug, energy, int(15 + 40 * u("soc")))

    def _energy_before_day(self, index: int, day: int) -> int:
        """Wh delivered by the sessions of days ANCHOR_DAY..day-1."""
        cum = self._meter_cache.setdefault(index, [0])
        while len(cum) <= day - ANCHOR_DAY:
            s = self.session(index, ANCHOR_DAY + len(cum) - 1)
            cum.append(cum[-1] + (s.energy_wh if s else 0))
        return cum[max(0, day - ANCHOR_DAY)]

    def _session_at(self, index: int, t: int) -> tuple[int, Session | None]:
        day = (t - 12 * HOUR_US) // DAY_US
        return day, self.session(index, day)

    def status_at(self, evse: Evse, sampled: int, logged: int) -> dict[str, Any]:
        day, s = self._session_at(evse.index, sampled)
        plugged = s is not None and s.plug_in <= sampled < s.unplug
        charging = s is not None and plugged and s.start <= sampled < s.end
        delivered = 0.0
        if s is not None and sampled >= s.start:
            delivered = s.energy_wh * min(1.0, (sampled - s.start) / max(1, s.end - s.start))
        meter = 1_000_000 + 123_457 * evse.index + self._energy_before_day(evse.index, day) + int(delivered)
        u = lambda *k: self._u("status", evse.index, sampled, *k)  # noqa: E731
        rate = int(evse.power_w * (0.97 + 0.03 * u("rate"))) if charging else 0
        item: dict[str, Any] = {
            "url": f"https://api.ev.energy/v2/evses/{evse.id}/status_logs/{iso_us(sampled)}/",
            "sampled_at": iso_us(sampled),
            "logged_at": iso_us(logged),
            "evse": f"https://api.ev.energy/v2/evses/{evse.id}",
            "is_plugged_in": plugged,
            "is_charging": charging,
            "charge_rate_watts": rate,
            "export_power_watts": 0 if evse.has_inlet else None,
            "control_pilot_status": "C" if charging else ("B" if plugged else "A"),
            "meter_reading_watt_hours": meter,
            "is_enabled": charging,
            "max_current_rating_milliamps": evse.rating_ma,
            "cable_current_rating_milliamps": 32000 if plugged else None,
            "signal_strength_rssi_dbm": -55 - int(25 * u("rssi")),
            "inlet_power_watts": rate + 4 if evse.has_inlet and charging else (0 if evse.has_inlet else None),
            "voltage_millivolts": 228_000 + int(5000 * u("volt")),
            "state_of_charge_percentage": (
                min(100, int(s.soc_start + delivered / 600)) if evse.has_soc and plugged and s else None),
        }
        if evse.mode is not None:
            item["mode"] = evse.mode
        if evse.extra_field:
            item["firmware_version"] = "4.12.0"
        if u("unknown") < 0.01:  # the integration could not tell, now and then
            item["is_charging"] = None
            item["charge_rate_watts"] = None
        return item

    def _status_time(self, evse: Evse, k: int) -> tuple[int, int]:
        jitter = int(self._u("jitter", evse.index, k) * self.status_period_us * 0.2)
        sampled = evse.offset_us + k * self.status_period_us + jitter
        logged = sampled + int(2 * US + self._u("lag", evse.index, k) * evse.max_delay_us)
        return sampled, logged

    def _status_desc(self, evse: Evse, lo: int, hi: int, now: int) -> Iterator[tuple[int, dict]]:
        lo = max(lo, self.data_start_us)
        k = (hi - evse.offset_us) // self.status_period_us
        while True:
            sampled, logged = self._status_time(evse, k)
            if sampled < lo:
                return
            if sampled <= hi and logged <= now:
                yield sampled, self.status_at(evse, sampled, logged)
            k -= 1

    def _status_asc(self, evse: Evse, lo: int, hi: int, now: int) -> Iterator[tuple[int, dict]]:
        lo = max(lo, self.data_start_us)
        k = (lo - evse.offset_us) // self.status_period_us - 1
        while True:
            sampled, logged = self._status_time(evse, k)
            if sampled > hi or sampled > now:
                return
            if sampled >= lo and logged <= now:
                yield sampled, self.status_at(evse, sampled, logged)
            k += 1

    def commands_of_day(self, evse: Evse, day: int) -> list[tuple[int, dict]]:
        s = self.session(evse.index, day)
        if s is None:
            return []
        u = lambda *k: self._u("command", evse.index, day, *k)  # noqa: E731
        events: list[tuple[int, str, int | None, bool | None, bool | None]] = [
            (s.plug_in + 20 * US, "SMART_CHARGE_ENABLED", 0, False, False),
            (s.start, "SCHEDULED_CHARGING", evse.rating_ma, True, False),
            (s.end, "STOP_CHARGE", 0, False, False),
            (s.unplug + 30 * US, "REFRESH_SCHEDULES", None, None, False),
        ]
        if u("dr") < 0.1 and s.end - s.start > HOUR_US:
            # A grid event the docs do not list: such reasons must be kept as they come.
            events.append((s.start + (s.end - s.start) // 2, "DEMAND_RESPONSE_EVENT", 10000, True, False))
        out = []
        for n, (at, reason, max_ma, enabled, always) in enumerate(sorted(events)):
            logged = at + int(5 * US * u("lag", n))
            command_id = None if reason == "REFRESH_SCHEDULES" else str(
                uuid.UUID(bytes=hashlib.md5(f"{self.seed}:{evse.id}:{day}:{n}".encode()).digest()))
            out.append((logged, {
                "url": f"https://api.ev.energy/v2/evses/{evse.id}/command_logs/{iso_us(logged)}/",
                "logged_at": iso_us(logged),
                "evse": f"https://api.ev.energy/v2/evses/{evse.id}",
                "max_load_target_milliamps": max_ma,
                "is_enabled_target": enabled,
                "always_enabled": always,
                "reason": reason,
                "internal_command_id": command_id,
            }))
        return out

    def _commands_desc(self, evse: Evse, lo: int, hi: int, now: int) -> Iterator[tuple[int, dict]]:
        lo = max(lo, self.data_start_us)
        day = hi // DAY_US
        while (day + 2) * DAY_US >= lo:
            for logged, item in reversed(self.commands_of_day(evse, day)):
                if lo <= logged <= hi and logged <= now:
                    yield logged, item
            day -= 1

    def _commands_asc(self, evse: Evse, lo: int, hi: int, now: int) -> Iterator[tuple[int, dict]]:
        lo = max(lo, self.data_start_us)
        day = lo // DAY_US - 2
        while day * DAY_US <= min(hi, now):
            for logged, item in self.commands_of_day(evse, day):
                if lo <= logged <= hi and logged <= now:
                    yield logged, item
            day += 1

    # -- ground truth for tests -----------------------------------------------------------

    def status_logs(self, evse_id: str, since: float, until: float | None = None) -> list[dict]:
        """Every status log visible now with sampled_at in [since, until], newest first."""
        now = int(self.clock() * US)
        hi = now if until is None else int(until * US)
        return [item for _, item in self._status_desc(self._by_id[evse_id], int(since * US), hi, now)]

    def command_logs(self, evse_id: str, since: float, until: float | None = None) -> list[dict]:
        now = int(self.clock() * US)
        hi = now if until is None else int(until * US)
        return [item for _, item in self._commands_desc(self._by_id[evse_id], int(since * US), hi, now)]

    def revoke_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    # -- HTTP -----------------------------------------------------------------------------

    def handle(self, request: SimRequest) -> SimResponse:
        with self._lock:
            return self._handle(request)

    def _handle(self, request: SimRequest) -> SimResponse:
        path = request.path
        if path.rstrip("/") in ("/o/token", "/v2/o/token"):
            return self._token(request)
        if not path.startswith("/v2/"):
            return _problem(404, "not_found", "Not Found", f"No such endpoint: {path}")
        self.stats["requests"] += 1
        auth = request.headers.get("Authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        known = self._tokens.get(token)
        if known is None:
            self.stats["401"] += 1
            return _problem(401, "not_authenticated", "Unauthorized",
                            "Authentication credentials were not provided or are invalid.")
        client_id, expires = known
        now = self.clock()
        if now >= expires:
            self.stats["401"] += 1
            return _problem(401, "token_expired", "Unauthorized", "Access token expired.")
        client = self.clients[client_id]
        while client.requests and client.requests[0] <= now - 3600:
            client.requests.popleft()
        if len(client.requests) >= self.quota:
            self.stats["429"] += 1
            retry = max(1, math.ceil(client.requests[0] + 3600 - now))
            return _problem(429, "rate_limited", "Too Many Requests",
                            f"Request limit of {self.quota} per hour exceeded.",
                            {"retry-after": str(retry), "x-ratelimit-limit": str(self.quota),
                             "x-ratelimit-remaining": "0"})
        client.requests.append(now)
        rate = {"x-ratelimit-limit": str(self.quota),
                "x-ratelimit-remaining": str(self.quota - len(client.requests)),
                "EvEnergy-Version": "2"}
        response = self._api(request, now)
        for key, value in rate.items():
            response.headers.setdefault(key, value)
        if response.status == 400:
            self.stats["400"] += 1
        return response

    def _token(self, request: SimRequest) -> SimResponse:
        self.stats["token_requests"] += 1
        if request.method != "POST":
            return SimResponse.json({"error": "invalid_request"}, 405)
        form = dict(parse_qsl(request.body.decode("utf-8", "replace")))
        client_id, secret = form.get("client_id"), form.get("client_secret")
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            try:
                client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return SimResponse.json({"error": "invalid_client"}, 401)
        if form.get("grant_type") != "client_credentials":
            return SimResponse.json({"error": "unsupported_grant_type"}, 400)
        client = self.clients.get(client_id or "")
        if client is None or client.secret != secret:
            return SimResponse.json({"error": "invalid_client"}, 401)
        self._token_counter += 1
        token = hashlib.sha256(f"{self.seed}:{client_id}:{self._token_counter}".encode()).hexdigest()[:30]
        self._tokens[token] = (client_id or "", self.clock() + self.token_ttl)
        return SimResponse.json({"access_token": token, "expires_in": int(self.token_ttl),
                                 "token_type": "Bearer", "scope": "read"},
                                headers={"Cache-Control": "no-store"})

    def _api(self, request: SimRequest, now: float) -> SimResponse:
        for n, (prefix, status) in enumerate(self.faults):
            if request.path.startswith(prefix):
                del self.faults[n]
                return _problem(status, "injected", "Injected failure", "A failure injected by a test.")
        version = request.headers.get("EvEnergy-Version")
        if version is not None and version != "2":
            return _problem(400, "unsupported_version", "Bad Request",
                            f"Unsupported API version {version!r}.")
        user = request.headers.get("EvEnergy-User")
        if not user:
            return _problem(400, "user_required", "Bad Request",
                            "The EvEnergy-User header is required with client credentials.")
        if user != self.user:
            return _problem(403, "permission_denied", "Forbidden",
                            "This user has not authorised your application.")
        if request.method != "GET":
            return _problem(405, "method_not_allowed", "Method Not Allowed", "Read-only in this simulator.")
        try:
            page_size = int(request.query.get("page_size", DEFAULT_PAGE_SIZE))
        except ValueError:
            page_size = 0
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            return _problem(400, "invalid", "Bad Request",
                            f"page_size must be an integer between 1 and {MAX_PAGE_SIZE}.")
        parts = request.path.strip("/").split("/")[1:]
        if parts == ["evses"]:
            return self._list_evses(request, page_size)
        if len(parts) >= 2 and parts[0] == "evses":
            evse = self._by_id.get(parts[1])
            if evse is None:
                return _problem(404, "not_found", "Not Found", "No EVSE with this ID.")
            if len(parts) == 2:
                return SimResponse.json(self._evse_json(evse))
            if len(parts) == 3 and parts[2] in ("status_logs", "command_logs"):
                return self._logs(request, evse, parts[2], page_size, int(now * US))
        return _problem(404, "not_found", "Not Found", f"No such endpoint: {request.path}")

    def _evse_json(self, evse: Evse) -> dict:
        item = {"id": evse.id, "url": f"https://api.ev.energy/v2/evses/{evse.id}",
                "cpid": f"SIM{evse.index:05d}", "model": evse.model, "lifecycle_state": "ACTIVE",
                "location": {"postcode": "SW1A 1AA", "country": "GB"},
                "created_at": iso_us(self.data_start_us)}
        if evse.index == 1:
            del item["cpid"]   # an example in the docs omits it although the schema says required
        return item

    def _base(self, request: SimRequest) -> str:
        host = request.headers.get("Host") or request.host
        return f"{self.scheme}://{host}"

    def _link(self, request: SimRequest, next_q: dict | None, prev_q: dict | None) -> str:
        def url(q: dict | None) -> str:
            if q is None:
                return "about:blank"
            return f"{self._base(request)}{request.path}?{urlencode(q)}"
        return f'<{url(next_q)}>; rel="next", <{url(prev_q)}>; rel="previous"'

    def _list_evses(self, request: SimRequest, page_size: int) -> SimResponse:
        after = request.query.get("page_after")
        ids = [e.id for e in self.evses]
        start = ids.index(after) + 1 if after in ids else 0
        page = self.evses[start:start + page_size]
        base_q = {k: v for k, v in request.query.items() if k not in ("page_after", "page_before")}
        next_q = ({**base_q, "page_after": page[-1].id}
                  if page and start + page_size < len(ids) else None)
        prev_q = {**base_q, "page_before": page[0].id} if page and start > 0 else None
        return SimResponse.json([self._evse_json(e) for e in page],
                                headers={"Link": self._link(request, next_q, prev_q)})

    def _logs(self, request: SimRequest, evse: Evse, kind: str, page_size: int, now: int) -> SimResponse:
        key = "sampled_at" if kind == "status_logs" else "logged_at"
        q = request.query
        try:
            lo = parse_iso_us(q[f"{key}__gte"]) if f"{key}__gte" in q else -(2**62)
            hi = parse_iso_us(q[f"{key}__lte"]) if f"{key}__lte" in q else 2**62
            after = parse_iso_us(q["page_after"]) if "page_after" in q else None
            before = parse_iso_us(q["page_before"]) if "page_before" in q else None
        except ValueError as exc:
            return _problem(400, "invalid", "Bad Request", str(exc))
        desc, asc = ((self._status_desc, self._status_asc) if kind == "status_logs"
                     else (self._commands_desc, self._commands_asc))
        hi = min(hi, now)
        if before is not None:
            rows = []
            for row in asc(evse, max(lo, before + 1), hi, now):
                rows.append(row)
                if len(rows) > page_size:
                    break
            has_newer = len(rows) > page_size
            rows = rows[:page_size][::-1]
            has_older = bool(rows) and next(desc(evse, lo, rows[-1][0] - 1, now), None) is not None
        else:
            top = hi if after is None else min(hi, after - 1)
            rows = []
            for row in desc(evse, lo, top, now):
                rows.append(row)
                if len(rows) > page_size:
                    break
            has_older = len(rows) > page_size
            rows = rows[:page_size]
            has_newer = bool(rows) and next(asc(evse, rows[0][0] + 1, hi, now), None) is not None
        base_q = {k: v for k, v in q.items() if k not in ("page_after", "page_before")}
        next_q = {**base_q, "page_after": iso_us(rows[-1][0])} if has_older else None
        prev_q = {**base_q, "page_before": iso_us(rows[0][0])} if has_newer else None
        return SimResponse.json([item for _, item in rows],
                                headers={"Link": self._link(request, next_q, prev_q)})


def _problem(status: int, slug: str, title: str, detail: str,
             headers: dict[str, str] | None = None) -> SimResponse:
    return SimResponse.json({"type": _PROBLEM_BASE + slug, "status": status, "title": title,
                             "detail": detail}, status, headers=headers,
                            content_type="application/problem+json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ev.energy API v2 simulator")
    parser.add_argument("--port", type=int, default=8781)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--evses", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quota", type=int, default=1000, help="requests per rolling hour per client")
    parser.add_argument("--token-ttl", type=float, default=36_000.0, help="access token lifetime, s")
    parser.add_argument("--status-period", type=float, default=300.0, help="seconds between status logs")
    parser.add_argument("--history-days", type=float, default=30.0)
    parser.add_argument("--client-id", default="demo-client")
    parser.add_argument("--client-secret", default="demo-secret")
    parser.add_argument("--user", default="user01HSIMULATEDUSER0000000000")
    args = parser.parse_args(argv)
    log_to_stdout()
    sim = EvEnergySim(evses=args.evses, seed=args.seed, quota=args.quota, token_ttl=args.token_ttl,
                      status_period=args.status_period, history_days=args.history_days,
                      client_id=args.client_id, client_secret=args.client_secret, user=args.user)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with SimServer(sim, port=args.port, host=args.host) as server:
        log.info("ev.energy simulator: base_url %s/v2, token_url %s/o/token/, client_id %s, "
                 "user %s, EVSEs: %s", server.url, server.url, args.client_id, args.user,
                 ", ".join(e.id for e in sim.evses))
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
