"""PointWriter: group commit, and what happens to points the store cannot take."""

import asyncio
import time

import pytest

from collector.health import COLLECTOR, Health
from collector.points import Point
from collector.store import Store, StoreError
from collector.writer import PointWriter


def p(t, dev="a"):
    return Point("m", {"dev": dev}, {"v": 1.0, "note": "x" * 2000}, t)


def test_points_the_full_store_refused_are_committed_when_space_returns(tmp_path):
    store = Store(tmp_path / "s.db")
    health = Health()
    writer = PointWriter(store, health)
    store.append([p(0)])
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]

    async def scenario():
        store._db.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(StoreError, match="disk is full"):
            await writer.write([p(t, dev=f"d{t}") for t in range(1, 20)], {"cursor": "new"})
        assert writer.held == 19 and health.gauges[COLLECTOR]["held_points"] == 19
        store._db.execute("PRAGMA max_page_count = 1073741823")
        await writer.write([p(100)])

    try:
        asyncio.run(scenario())
        assert writer.held == 0 and health.get(COLLECTOR, "store_errors") == 1
        assert store.pending_count() == 21          # the first, the 19 held, the last
        assert store.cursor("cursor") is None        # a refused cursor is not committed later
    finally:
        store.close()


def test_held_points_are_bounded_and_the_overflow_counted(tmp_path):
    store = Store(tmp_path / "s.db")
    health = Health()
    writer = PointWriter(store, health, max_held=10)
    store.append([p(0)])
    store._db.execute(f"PRAGMA max_page_count = {store._db.execute('PRAGMA page_count').fetchone()[0]}")

    async def scenario():
        for batch in range(3):
            with pytest.raises(StoreError):
                await writer.write([p(batch * 100 + t, dev=f"d{batch}-{t}") for t in range(6)])

    try:
        asyncio.run(scenario())
        assert writer.held == 6                       # the newest batch; two older ones dropped
        assert health.get(COLLECTOR, "held_dropped") == 12
    finally:
        store.close()


def test_under_load_commits_are_spaced_and_a_lone_write_commits_at_once(tmp_path):
    """A fleet's polls arriving one after another share commits `commit_interval` apart; a
    write after a quiet spell does not wait."""
    store = Store(tmp_path / "s.db")
    writer = PointWriter(store, Health(), commit_interval=0.5)
    commits: list[tuple[float, int]] = []
    commit_groups = store.commit_groups

    def counted(groups):
        commits.append((time.monotonic(), len(groups)))     # the loop's clock, in the commit's thread
        return commit_groups(groups)

    store.commit_groups = counted

    async def scenario():
        loop = asyncio.get_running_loop()
        started = loop.time()
        polls = []
        for k in range(40):                              # 40 polls, one every 10 ms
            polls.append(asyncio.create_task(writer.write([p(k, dev=f"d{k}")])))
            await asyncio.sleep(0.01)
        await asyncio.gather(*polls)
        busy = loop.time() - started
        await asyncio.sleep(0.6)                         # quiet
        before = loop.time()
        await writer.write([p(100)])
        return busy, loop.time() - before

    try:
        busy, lone = asyncio.run(scenario())
        times = [t for t, _ in commits]
        assert sum(n for _, n in commits) == 41 and store.pending_count() == 41
        assert len(commits) <= busy / 0.5 + 2            # not one commit per poll
        assert all(b - a >= 0.49 for a, b in zip(times[:-2], times[1:-1], strict=True))
        assert lone < 0.4                                # the lone write did not wait 0.5 s
    finally:
        store.close()
