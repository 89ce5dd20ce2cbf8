"""Fault injection around any simulator: the bad answers real servers give, on demand.

`FaultySim(sim)` is itself a simulator: it passes requests to `sim.handle()` and, while a fault
is armed for a matching request, turns the answer into that fault. Payload faults rewrite the
simulator's own JSON (so the rest of the answer stays realistic); status faults replace it;
`slow` and `reset` set `SimResponse.delay` / `.reset`, which SimServer serves as a late answer
or a dropped connection. Used by tests/faults and by anyone reproducing a field report.

    faulty = FaultySim(GoeSimulator.fleet(2))
    faulty.arm("truncated_json", times=3, match="/000001/")
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from collector.sim.base import SimRequest, SimResponse, Simulator

HTML_ERROR_PAGE = (b"<!DOCTYPE html><html><head><title>Service unavailable</title></head>"
                   b"<body><h1>We'll be back soon</h1><p>Maintenance in progress.</p></body></html>")
HUGE = 10**30                 # beyond int64, and a float far beyond any meter
WRONG_TYPE = "not-a-number"
SLOW_DELAY = 10.0             # seconds: past any timeout a collector is configured with in tests

KINDS = (
    "truncated_json", "html_200", "wrong_types", "missing_keys", "extra_keys", "huge_numbers",
    "nan", "empty_body", "slow", "reset", "status_500", "status_502", "status_503",
    "status_429", "status_429_retry_after", "expired_auth",
)


def _map_json(value: Any, leaf: Callable[[Any], Any]) -> Any:
    if isinstance(value, dict):
        return {k: _map_json(v, leaf) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_json(v, leaf) for v in value]
    return leaf(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _drop_keys(value: Any) -> Any:
    """Every other key of every object, recursively: a firmware or API version that lacks them."""
    if isinstance(value, dict):
        return {k: _drop_keys(v) for n, (k, v) in enumerate(value.items()) if n % 2}
    if isinstance(value, list):
        return [_drop_keys(v) for v in value]
    return value


def _add_keys(value: Any) -> Any:
    if isinstance(value, dict):
        out = {k: _add_keys(v) for k, v in value.items()}
        out["x_unexpected_field"] = {"nested": [1, "two", None]}
        out["x_new_number"] = 42
        return out
    if isinstance(value, list):
        return [_add_keys(v) for v in value]
    return value


def _json_fault(kind: str, body: bytes) -> bytes:
    """The simulator's JSON, rewritten by a payload fault (non-JSON bodies pass unchanged)."""
    try:
        payload = json.loads(body)
    except ValueError:
        return body
    if kind == "wrong_types":
        # numbers become strings, strings become numbers, booleans become objects
        payload = _map_json(payload, lambda v: (WRONG_TYPE if _is_number(v) else
                                                12345 if isinstance(v, str) else
                                                {"bool": v} if isinstance(v, bool) else v))
        return json.dumps(payload).encode()
    if kind == "missing_keys":
        return json.dumps(_drop_keys(payload)).encode()
    if kind == "extra_keys":
        return json.dumps(_add_keys(payload)).encode()
    if kind == "huge_numbers":
        payload = _map_json(payload, lambda v: (HUGE if isinstance(v, int) else 1e300)
                            if _is_number(v) else v)
        return json.dumps(payload).encode()
    if kind == "nan":
        payload = _map_json(payload, lambda v: float("nan") if _is_number(v) else v)
        return json.dumps(payload).encode()     # Python writes the bare NaN token, as some servers do
    raise ValueError(f"not a payload fault: {kind}")


def apply_fault(kind: str, response: SimResponse) -> SimResponse:
    """`response` as it would look with fault `kind`."""
    if kind == "truncated_json":
        return SimResponse(response.status, response.body[: max(1, len(response.body) // 2)],
                           dict(response.headers))
    if kind == "html_200":
        return SimResponse(200, HTML_ERROR_PAGE, {"Content-Type": "text/html; charset=utf-8"})
    if kind in ("wrong_types", "missing_keys", "extra_keys", "huge_numbers", "nan"):
        return SimResponse(response.status, _json_fault(kind, response.body), dict(response.headers))
    if kind == "empty_body":
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return SimResponse(response.status, b"", headers)
    if kind == "slow":
        return SimResponse(response.status, response.body, dict(response.headers), delay=SLOW_DELAY)
    if kind == "reset":
        return SimResponse(response.status, b"", {}, reset=True)
    if kind.startswith("status_429"):
        headers = {"Retry-After": "2"} if kind.endswith("retry_after") else {}
        return SimResponse.text("Too Many Requests", 429, headers=headers)
    if kind.startswith("status_"):
        status = int(kind.split("_")[1])
        return SimResponse.text(f"{status} server error (injected)", status)
    if kind == "expired_auth":
        return SimResponse.json({"detail": "token expired", "status": 401}, 401,
                                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(KINDS)}")


@dataclass
class _Armed:
    kind: str
    times: int
    match: Callable[[SimRequest], bool]


@dataclass
class Injected:
    kind: str
    path: str
    at: float                  # wall clock, for matching log lines and health to faults


@dataclass
class FaultySim:
    """A simulator that answers with armed faults first, then as `sim` would."""

    sim: Simulator
    injected: list[Injected] = field(default_factory=list)
    _armed: list[_Armed] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def arm(self, kind: str, times: int = 1,
            match: str | Callable[[SimRequest], bool] | None = None) -> None:
        """Answer the next `times` matching requests with `kind`; `match`: a path substring
        or a predicate (default: every request). Armed faults are served in order."""
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(KINDS)}")
        if match is None:
            predicate: Callable[[SimRequest], bool] = lambda request: True  # noqa: E731
        elif isinstance(match, str):
            part = match
            predicate = lambda request: part in request.path  # noqa: E731
        else:
            predicate = match
        with self._lock:
            self._armed.append(_Armed(kind, times, predicate))

    @property
    def pending(self) -> int:
        with self._lock:
            return sum(a.times for a in self._armed)

    def handle(self, request: SimRequest) -> SimResponse:
        with self._lock:
            armed = next((a for a in self._armed if a.match(request)), None)
            if armed is not None:
                armed.times -= 1
                if armed.times <= 0:
                    self._armed.remove(armed)
                self.injected.append(Injected(armed.kind, request.path, time.time()))
        response = self.sim.handle(request)
        return apply_fault(armed.kind, response) if armed is not None else response

    def __getattr__(self, name: str) -> Any:      # the wrapped simulator's controls and stats
        return getattr(self.sim, name)
