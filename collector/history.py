"""Consistent history for every source, generated on a simulated clock, through the real path.

`generate_history(store, start, end)` asks each registered source's demo hook for what it would
have collected in [start, end) from the demo's simulated world (`collector/sim/world.py`): the
payloads the simulators would have served, turned into points with the source's own parse
functions, committed with `Store.append` in large batches. So the history looks exactly like
collected data: same measurements, tags, types and timestamps, and a forwarder ships it to
InfluxDB like any other backlog.

Deterministic for a seed. Polls are simulated only where the answer can change: a poll that
would return the same message again produces no point in the real collector either. Points
carry the time their source gives, so OVMS points of the first poll may predate `start` by up
to ten minutes (the car's last message), and tariff forecasts reach past `end`. The sources'
cursors are left as a collector's would be at `end`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from collector.config_types import DEFAULT_HEARTBEAT
from collector.points import Point
from collector.sim.world import ManualClock, history_world
from collector.sources import demo_hooks
from collector.store import Store

BATCH_POINTS = 50_000                # points per Store.append transaction (bounds memory)


class _Sink:
    """Points into the store in big transactions, counted per measurement (distinct points).

    Points of the measurements a stream writes on change (stamped with the poll time) go in
    with the default heartbeat, as the collector writes them: an unchanged sample is not
    stored, and not counted.
    """

    def __init__(self, store: Store, repeated: frozenset[str], on_change: frozenset[str]) -> None:
        self.store = store
        self.repeated = repeated
        self.written_on_change = on_change
        self.buffer: list[Point] = []
        self.on_change: dict[str, tuple[float, list[Point]]] = {}   # measurement -> heartbeat, points
        self.size = 0
        self.counts: dict[str, int] = {}
        self._seen: set[tuple[Any, ...]] = set()

    def add(self, points: Iterable[Point]) -> None:
        for point in points:
            if point.measurement in self.repeated:
                key = point.key()
                if key in self._seen:
                    self.buffer.append(point)   # stored again: the store merges it
                    continue
                self._seen.add(key)
            self.counts[point.measurement] = self.counts.get(point.measurement, 0) + 1
            if point.measurement in self.written_on_change:
                self.on_change.setdefault(point.measurement,
                                          (DEFAULT_HEARTBEAT, []))[1].append(point)
            else:
                self.buffer.append(point)
            self.size += 1
        if self.size >= BATCH_POINTS:
            self.flush()

    def flush(self, cursors: dict[str, str] | None = None) -> None:
        if not (self.size or self.buffer or cursors):
            return
        groups: list[tuple] = [(points, None, heartbeat)
                               for heartbeat, points in self.on_change.values()]
        groups.append((self.buffer, cursors))
        written = self.store.commit_groups(groups)
        for measurement, result in zip(self.on_change, written, strict=False):
            self.counts[measurement] += result.value_ends - result.unchanged
        self.buffer, self.on_change, self.size = [], {}, 0


def _seconds(when: datetime) -> int:
    if when.tzinfo is None:
        raise ValueError(f"history bounds must be timezone-aware, got {when.isoformat()}")
    return math.floor(when.timestamp())


def generate_history(store: Store, start: datetime, end: datetime, seed: int = 1,
                     progress: bool = False) -> dict[str, int]:
    """Fill `store` with the data every source would have delivered in [start, end).

    Returns the number of distinct points per measurement. Deterministic for a seed: the same
    arguments give the same points (re-running upserts the same rows, changing nothing). The
    sources' cursors are set as a collector's would be at `end`, so a collector started on
    this store (as the demo does) carries on from there without refetching or leaving a gap.
    """
    t_start, t_end = _seconds(start), _seconds(end)
    if t_end <= t_start:
        raise ValueError(f"history end {end.isoformat()} is not after its start {start.isoformat()}")
    clock = ManualClock(float(t_start))
    world = history_world(seed, t_start, t_end, clock)
    streams = [hook.history(world, clock, t_start, t_end) for hook in demo_hooks().values() if hook.history]
    sink = _Sink(store, frozenset().union(*(stream.repeated for stream in streams)),
                 frozenset().union(*(stream.on_change for stream in streams)))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=round((t_end - t_start) / 86400, 2), unit="day", desc="history",
                   bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} days "
                              "[{elapsed}<{remaining}]")
    try:
        t0 = t_start
        while t0 < t_end:
            t1 = min(t_end, (t0 // 21600 + 1) * 21600)   # six hours at a time, in time order
            for stream in streams:
                sink.add(stream.points(t0, t1))
            if bar is not None:
                bar.update(round((t1 - t0) / 86400, 4))
            t0 = t1
        for stream in streams:
            sink.add(stream.finish())
        sink.flush({key: value for stream in streams for key, value in stream.cursors.items()})
    finally:
        if bar is not None:
            bar.close()
    return dict(sorted(sink.counts.items()))


__all__ = ["generate_history"]
