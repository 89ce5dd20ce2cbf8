"""Provider limits, enforced here whatever the schedule says.

Two kinds: a minimum interval per key (go-e: one request per second per charger, since the
charger cannot deliver data faster) and an hourly quota budget shared by every job of one
client (ev.energy), handed out in turn by a `FairQuota`. Both answer `try_acquire()` without
blocking: a job that is refused skips its request (the data could not be fresher) or waits
its turn. Clocks are injectable and default to `time.time`, so tests drive them with freezegun.

Every wait goes through `Limits.sleep`, so a stop ends the waits at once (`Stopping`): a poll
that has not sent its request yet has nothing to finish.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from collector.errors import CollectorError

Clock = Callable[[], float]


class Stopping(CollectorError):
    """The collector is stopping: a poll still waiting for its turn sends nothing."""


def wall_clock() -> float:
    """time.time, looked up at each call so freezegun's patch reaches it."""
    return time.time()


class IntervalLimiter:
    """At most one grant per `interval` seconds for each key.

    A grant is stamped when it is given, and again by `release()` when the answer is in: the
    next grant counts from then. The server handled the request before it answered, so two
    requests are at least `interval` apart as the server sees them, whatever the delays on
    the way (go-e asks for one request per second per charger).
    """

    def __init__(self, clock: Clock = wall_clock) -> None:
        self._clock = clock
        self._interval: dict[str, float] = {}
        self._last: dict[str, float] = {}

    def set_interval(self, key: str, seconds: float) -> None:
        # Several jobs may share a key (a charger polled by two streams); the strictest wins.
        self._interval[key] = max(seconds, self._interval.get(key, 0.0))

    def release(self, key: str) -> None:
        """The request of the last grant is answered (or failed): count the interval from now."""
        if key in self._last:
            self._last[key] = max(self._last[key], self._clock())

    def try_acquire(self, key: str) -> float:
        """0.0 when granted (and recorded); otherwise the seconds until the key is free."""
        now = self._clock()
        interval = self._interval.get(key, 0.0)
        last = self._last.get(key)
        if last is not None:
            wait = last + interval - now
            if wait > 0:
                return wait
        self._last[key] = now
        return 0.0

    async def acquire(self, key: str) -> None:
        # A time slot, not a flag, is awaited: no event to wait on, and `wait` is the exact time.
        while (wait := self.try_acquire(key)) > 0:  # noqa: ASYNC110
            await asyncio.sleep(wait)


@dataclass
class QuotaBudget:
    """An hourly request quota shared by every stream of one client.

    Requests are paced by a token bucket refilled at the usable rate (the quota less a
    reserve), so they spread over the hour instead of spending the quota in a burst, and a
    rolling-window log caps the total. The provider's own `limit`/`remaining` headers correct
    both: when the server says fewer remain than we think, we believe the server.
    """

    limit: int
    reserve: float = 0.1
    window: float = 3600.0
    burst_fraction: float = 0.05
    # When the server's figure says the reserve is reached, one request may go after this long
    # to hear a fresh figure (the server's rolling hour frees requests we cannot see).
    probe_interval: float = 300.0
    clock: Clock = wall_clock
    _grants: deque = field(default_factory=deque, init=False)
    _tokens: float = field(default=0.0, init=False)
    _refilled_at: float | None = field(default=None, init=False)
    _server_remaining: int | None = field(default=None, init=False)
    _server_seen_at: float = field(default=0.0, init=False)
    _granted_since_server: int = field(default=0, init=False)
    _blocked_until: float = field(default=0.0, init=False)

    @property
    def usable(self) -> int:
        return max(1, math.floor(self.limit * (1.0 - self.reserve)))

    @property
    def reserve_count(self) -> int:
        return self.limit - self.usable

    @property
    def capacity(self) -> float:
        return max(1.0, self.usable * self.burst_fraction)

    def _refill(self, now: float) -> None:
        if self._refilled_at is None:
            self._tokens = self.capacity
        else:
            rate = self.usable / self.window
            self._tokens = min(self.capacity, self._tokens + (now - self._refilled_at) * rate)
        self._refilled_at = now
        while self._grants and self._grants[0] <= now - self.window:
            self._grants.popleft()

    def used_in_window(self) -> int:
        self._refill(self.clock())
        return len(self._grants)

    def remaining(self) -> int:
        """Requests left in the rolling hour by our own count, lowered by the server's word."""
        now = self.clock()
        self._refill(now)
        ours = self.limit - len(self._grants)
        if self._server_remaining is not None and now - self._server_seen_at < self.window:
            # A figure older than the window says nothing: every request it counted has left
            # the server's rolling hour since.
            # Grants made since the server spoke are not in its figure yet. (A request still in
            # flight when another's answer arrives is missed once; the reserve covers that.)
            ours = min(ours, self._server_remaining - self._granted_since_server)
        return max(0, ours)

    def try_acquire(self) -> float:
        """0.0 when a request may go now (and it is counted); else the seconds to wait."""
        now = self.clock()
        self._refill(now)
        if now < self._blocked_until:
            return self._blocked_until - now
        if len(self._grants) >= self.usable:
            return self._grants[0] + self.window - now
        if self.remaining() <= self.reserve_count and not self._may_probe(now):
            # The server counts requests we cannot see (another app of this client). Its
            # figure only changes when we ask, so wait until a probe may go (or our oldest
            # grant leaves the window, whichever is sooner).
            probe = self._server_seen_at + self.probe_interval - now
            oldest = self._grants[0] + self.window - now if self._grants else probe
            return max(1.0, min(probe, oldest))
        if self._tokens < 1.0:
            return (1.0 - self._tokens) * self.window / self.usable
        self._tokens -= 1.0
        self._grants.append(now)
        self._granted_since_server += 1
        return 0.0

    def _may_probe(self, now: float) -> bool:
        """One request to refresh a stale server figure, taken from the reserve.

        Without it a low figure would never change: it is only refreshed by a response, and
        the budget would refuse every request forever. At most one probe per
        `probe_interval`, and never when the server said nothing at all is left.
        """
        if self._server_remaining is None or self._server_remaining - self._granted_since_server <= 0:
            return False
        return now - self._server_seen_at >= self.probe_interval and self._granted_since_server == 0

    def observe(self, limit: int | None, remaining: int | None) -> None:
        """Take the provider's rate-limit headers from a response."""
        if limit is not None and limit > 0 and limit != self.limit:
            self.limit = limit
        if remaining is not None:
            self._server_remaining = remaining
            self._server_seen_at = self.clock()
            self._granted_since_server = 0

    def block_for(self, seconds: float) -> None:
        """Honour a 429's Retry-After."""
        self._blocked_until = max(self._blocked_until, self.clock() + max(0.0, seconds))

    async def acquire(self) -> None:
        # As in IntervalLimiter.acquire: the wait is until the next request may go, not a poll.
        while (wait := self.try_acquire()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(wait)


class FairQuota:
    """One quota budget handed out in turn to every stream that draws on it.

    A stream asks for a request with `turn()` and waits until it is granted: a refused request
    keeps its place instead of being dropped. Whenever the budget can grant one, the waiting
    stream that is most overdue goes: the time since its last grant in units of its own
    interval. So when the streams ask for more than the budget gives, every stream's interval
    stretches by the same factor and none starves; a stream resuming a page run it could not
    finish (`first=True`) goes before all of them.
    """

    def __init__(self, budget: QuotaBudget, limits: Limits) -> None:
        self.budget = budget
        self._limits = limits
        self._interval: dict[str, float] = {}
        self._last: dict[str, float] = {}
        self._waiting: dict[asyncio.Future, tuple[str, bool, int]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._arrivals = 0

    def register(self, stream: str, interval: float) -> None:
        """The stream's nominal interval: what "overdue" is measured in."""
        self._interval[stream] = interval

    async def turn(self, stream: str, first: bool = False) -> None:
        """Wait for this stream's turn; returns with one request taken from the budget."""
        if self._limits.stopping:
            raise Stopping()
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._arrivals += 1
        self._waiting[future] = (stream, first, self._arrivals)
        self._limits._waiters.add(future)
        try:
            self._dispatch()
            await future
        finally:
            self._waiting.pop(future, None)
            self._limits._waiters.discard(future)

    def _rank(self, entry: tuple[str, bool, int], now: float) -> tuple[bool, float, int]:
        stream, first, arrival = entry
        last = self._last.get(stream)
        overdue = math.inf if last is None else (now - last) / self._interval.get(stream, 60.0)
        return (not first, -overdue, arrival)

    def _dispatch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while True:
            live = {f: e for f, e in self._waiting.items() if not f.done()}
            if not live:
                return
            now = self.budget.clock()
            future = min(live, key=lambda f: self._rank(live[f], now))
            wait = self.budget.try_acquire()
            if wait > 0:
                self._timer = asyncio.get_running_loop().call_later(wait, self._dispatch)
                return
            stream = self._waiting.pop(future)[0]
            self._last[stream] = now
            future.set_result(None)


class Limits:
    """The process-wide registry of limits, shared by every job."""

    def __init__(self, clock: Clock = wall_clock) -> None:
        self.clock = clock
        self.intervals = IntervalLimiter(clock)
        self._quotas: dict[str, QuotaBudget] = {}
        self._fair: dict[str, FairQuota] = {}
        self._waiters: set[asyncio.Future] = set()
        self.stopping = False

    def quota(self, key: str, limit: int, reserve: float = 0.1) -> QuotaBudget:
        """The budget for `key`, created on first use and shared after."""
        budget = self._quotas.get(key)
        if budget is None:
            budget = QuotaBudget(limit=limit, reserve=reserve, clock=self.clock)
            self._quotas[key] = budget
        return budget

    def fair_quota(self, key: str, limit: int, reserve: float = 0.1) -> FairQuota:
        """The fair queue in front of the budget for `key` (one per OAuth client)."""
        fair = self._fair.get(key)
        if fair is None:
            fair = self._fair[key] = FairQuota(self.quota(key, limit, reserve), self)
        return fair

    def quotas(self) -> dict[str, QuotaBudget]:
        return dict(self._quotas)

    async def sleep(self, seconds: float) -> None:
        """`asyncio.sleep`, ended early by `stop()` with `Stopping`."""
        if self.stopping:
            raise Stopping()
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        handle = loop.call_later(max(0.0, seconds), _resolve, future)
        self._waiters.add(future)
        try:
            await future
        finally:
            handle.cancel()
            self._waiters.discard(future)

    def stop(self) -> None:
        """End every wait for a turn: those polls have sent nothing and stop at once."""
        self.stopping = True
        for future in list(self._waiters):
            if not future.done():
                future.set_exception(Stopping())


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
