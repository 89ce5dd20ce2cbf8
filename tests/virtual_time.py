"""Run asyncio code on freezegun's clock: whenever nothing can run, jump to the next timer.

Schedules, limits and quotas are tested for simulated hours in a second of real time: the
event loop's clock (`time.monotonic`) and the wall clock (`time.time`) both come from
freezegun, and when every task is waiting for a timer the loop ticks the frozen clock to the
earliest one instead of sleeping. Work handed to a thread (the store's commits) is waited for
first, so time never jumps past a commit in flight.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")


class _CountingExecutor(concurrent.futures.ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(max_workers=4)
        self.busy = 0
        self._lock = threading.Lock()

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        with self._lock:
            self.busy += 1
        future = super().submit(fn, *args, **kwargs)
        future.add_done_callback(self._done)
        return future

    def _done(self, _future: concurrent.futures.Future) -> None:
        with self._lock:
            self.busy -= 1


class FrozenTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self, frozen: Any) -> None:
        super().__init__()
        self._frozen = frozen
        self._executor = _CountingExecutor()
        self.set_default_executor(self._executor)

    def _run_once(self) -> None:  # CPython's loop step; we only move the clock before it
        ready = self._ready  # type: ignore[attr-defined]
        scheduled = [h for h in self._scheduled if not h.cancelled()]  # type: ignore[attr-defined]
        if not ready and scheduled and not self._executor.busy:
            delta = min(h.when() for h in scheduled) - self.time()
            if delta > 0:
                # a microsecond past it: the loop compares against now plus its clock
                # resolution (1 ns), which vanishes in a float of Unix seconds
                self._frozen.tick(delta + 1e-6)
        super()._run_once()  # type: ignore[misc]


def run_frozen(main: Coroutine[Any, Any, T], frozen: Any) -> T:
    """`asyncio.run(main)` on a loop that fast-forwards `frozen` (a freezegun factory)."""
    loop = FrozenTimeLoop(frozen)
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        asyncio.set_event_loop(None)
        loop.close()
