"""Group commit: many jobs' points in one durable SQLite transaction.

A job awaits `write()`; it returns once its points (and cursor updates) are committed. Commits
run in a worker thread, and everything that arrives while one is in progress goes into the
next, so a fleet of 1,000 chargers at 1 Hz does not cost a thousand fsyncs a second.

Under load the commits are also spaced (`[store] commit_interval`, 0.1 s by default): a point
waits at most that long to become durable, and 1,000 chargers polled every second make ten
commits a second instead of one per fsync the disk allows (about 200 here, each with its own
fixed cost in CPU and, on an SD card, wear). A lone write after a quiet spell commits at once.

When the store cannot commit (disk full, an I/O error) the waiting jobs hear about it, their
cursors stay where they were, and their points are held in memory (up to `max_held`) and
committed first in the next transaction that succeeds: a live reading (a go-e status) cannot
be asked for again, and history streams simply re-read from the unchanged cursor. The writer is
the one that knows when the store refuses and when it accepts again, so it says so: one ERROR
when commits start failing, a reminder with a count every few minutes, and one line when a
commit succeeds again (not when some poll that had nothing to commit succeeds).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

from collector.health import COLLECTOR, Health
from collector.http_outcomes import redact_text
from collector.log_throttle import LogThrottle
from collector.points import Point
from collector.store import Store, StoreError, Written

log = logging.getLogger(__name__)

# Points; a held go-e status takes about 1.8 KB, so at most ~180 MB: 100 s of 1,000 chargers
# at 1 Hz, 8 minutes of 200. A bridge over a short outage of the disk, not a second store.
MAX_HELD = 100_000
STORE_REMINDER_EVERY = 300.0


class PointWriter:
    def __init__(self, store: Store, health: Health, max_held: int = MAX_HELD,
                 commit_interval: float = 0.0) -> None:
        self.store = store
        self.health = health
        self.max_held = max_held
        # Under load, the next commit starts at least this long after the one before: a
        # fleet's polls then share a few commits a second instead of one each fsync.
        self.commit_interval = commit_interval
        self._last_commit = -commit_interval
        self._queue: list[tuple[Sequence[Point], Mapping[str, str] | None, str, float | None,
                                asyncio.Future]] = []
        self._committer: asyncio.Task | None = None
        self._held: list[tuple[Sequence[Point], float | None]] = []
        self._held_points = 0
        self._refusals = LogThrottle(log, STORE_REMINDER_EVERY)
        self._refused = 0             # commits refused since the last that succeeded

    @property
    def held(self) -> int:
        """Points waiting in memory for the store to accept them again."""
        return self._held_points

    async def write(self, points: Sequence[Point], cursors: Mapping[str, str] | None = None,
                    source: str = "", heartbeat: float | None = None) -> int:
        """Commit points and cursors together; returns how many rows were new or changed.

        `heartbeat` (seconds): write on change. A point whose fields equal its series' last
        stored point is not stored again until that long after it (for points stamped with the
        poll time; see `Store.append`); the last point left out is stored with the series' next
        change, so the old value ends exactly. None or 0 stores every point.
        """
        if not points and not cursors:
            return 0
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._queue.append((points, cursors, source, heartbeat, future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_loop())
        return await future

    async def _commit_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            wait = self._last_commit + self.commit_interval - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._last_commit = loop.time()
            group, self._queue = self._queue, []
            held = self._held
            try:
                written = await asyncio.to_thread(self._commit, group, held)
            except Exception as exc:  # every waiter hears about it; nothing was committed
                if isinstance(exc, StoreError):
                    self._hold(group)
                    self._refused += 1
                    message = redact_text(str(exc))
                    self.health.error(COLLECTOR, message)
                    self._refusals.log("store", logging.ERROR,
                                       "%s; new points are held in memory (collector_health."
                                       "held_points, up to %d) and committed as soon as it "
                                       "can write again", message, self.max_held)
                for *_, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            if self._refused:
                log.info("local store %s accepts writes again after %d refused commits: "
                         "committed %d points held in memory meanwhile", self.store.path,
                         self._refused, self._held_points)
                self._refusals.forget(lambda key: True)
                self._refused = 0
            if held:
                self._held, self._held_points = [], 0
                self.health.gauge(COLLECTOR, "held_points", 0)
            for (points, _, source, _, future), result in zip(group, written, strict=True):
                if source:
                    self.health.count(source, "points",
                                      len(points) - result.unchanged + result.value_ends)
                    if result.unchanged:
                        self.health.count(source, "points_unchanged", result.unchanged)
                if not future.done():
                    future.set_result(result.changed)

    def _hold(self, group: list) -> None:
        """Keep a failed group's points (not its cursors) for the next successful commit."""
        self.health.count(COLLECTOR, "store_errors")
        for points, _, _, heartbeat, _ in group:
            if points:
                self._held.append((points, heartbeat))
                self._held_points += len(points)
        while self._held_points > self.max_held and self._held:
            dropped, _ = self._held.pop(0)
            self._held_points -= len(dropped)
            self.health.count(COLLECTOR, "held_dropped", len(dropped))
            log.error("local store %s still refuses writes: %d held points over the in-memory "
                      "bound of %d dropped (oldest first)", self.store.path, len(dropped), self.max_held)
        self.health.gauge(COLLECTOR, "held_points", self._held_points)

    def _commit(self, group: list, held: list[tuple[Sequence[Point], float | None]]) -> list[Written]:
        groups: list[tuple] = [(points, None, heartbeat) for points, heartbeat in held]
        groups.extend((points, cursors, heartbeat) for points, cursors, _, heartbeat, _ in group)
        return self.store.commit_groups(groups)[len(held):]
