"""One quota, many streams: every stream gets its turn, none starves, none is refused.

The whole source runs on its scheduler's grid against the simulator, for simulated hours
under freezegun (tests/virtual_time.py fast-forwards the clock whenever every job waits).
"""

from __future__ import annotations

import re
import time
from collections import defaultdict

from freezegun import freeze_time

from collector.schedule import JobRunner
from collector.sim.evenergy import EvEnergySim
from collector.sources.evenergy.source import quota_plan
from tests.sources.evenergy.conftest import run_schedule
from tests.virtual_time import run_frozen

START = "2024-05-01 12:00:00"


def record_streams(sim: EvEnergySim) -> dict[str, list[float]]:
    """stream ("<evse>:<kind>") -> times of its requests at the simulator."""
    seen: dict[str, list[float]] = defaultdict(list)
    handle = sim.handle

    def recording(request):
        parts = request.path.strip("/").split("/")
        if len(parts) == 4 and parts[1] == "evses":
            seen[f"{parts[2]}:{parts[3]}"].append(time.time())
        return handle(request)

    sim.handle = recording  # type: ignore[method-assign]
    return seen


def run_for(rig, seconds: float, clock, seen: dict[str, list[float]]) -> None:
    """Run the source's jobs for `seconds`; keep only the requests made in that time (runs
    still waiting for their turn at the end finish later)."""
    start = time.time()

    async def go() -> None:
        await run_schedule(list(rig.source.jobs()), JobRunner(rig.health), seconds)
    run_frozen(go(), clock)
    for stream, times in seen.items():
        times[:] = [t for t in times if t < start + seconds]


def test_two_evses_at_a_60_per_hour_quota_share_it_fairly(make_rig):
    # The case that starved: 4 streams asking every 60 s (240 requests an hour) for a
    # budget of 54 usable. Each stream gets a quarter, none waits more than a few turns.
    with freeze_time(START) as clock:
        sim = EvEnergySim(evses=2, quota=60)
        seen = record_streams(sim)
        evses = tuple(e.id for e in sim.evses)
        rig = make_rig(sim, evses=evses, quota_limit=60, status_interval="60s",
                       command_interval="60s", backfill="1h")
        start = time.time()
        run_for(rig, 1800, clock, seen)
    streams = [f"{evse}:{kind}" for evse in evses for kind in ("status_logs", "command_logs")]
    assert sorted(seen) == sorted(streams)
    for stream in streams:
        assert seen[stream][0] - start <= 600, stream        # fetched within the first 10 min
    total = sum(len(seen[s]) for s in streams)
    fair = total / len(streams)
    for stream in streams:
        assert 0.7 * fair <= len(seen[stream]) <= 1.3 * fair, (stream, len(seen[stream]), fair)
    # every stream's interval stretched alike: no gap much longer than the others'
    gaps = [b - a for s in streams for a, b in zip(seen[s], seen[s][1:])]
    assert max(gaps) <= 1.6 * (1800 / fair)
    assert sim.stats["429"] == 0
    assert 25 <= total <= 54 // 2 + 3                       # the usable half hour and the burst


def test_twenty_evses_far_beyond_the_quota_each_get_their_share(make_rig):
    with freeze_time(START) as clock:
        sim = EvEnergySim(evses=20, quota=120, token_ttl=10 * 3600)
        seen = record_streams(sim)
        evses = tuple(e.id for e in sim.evses)
        rig = make_rig(sim, evses=evses, quota_limit=120, status_interval="60s",
                       command_interval="60s", backfill="1h")
        run_for(rig, 3 * 3600, clock, seen)
    streams = [f"{evse}:{kind}" for evse in evses for kind in ("status_logs", "command_logs")]
    counts = [len(seen[s]) for s in streams]
    fair = sum(counts) / len(streams)                     # ~8 each: 108 an hour for 40 streams
    assert 7 <= fair <= 9
    assert all(0.7 * fair <= n <= 1.3 * fair for n in counts), counts
    assert sim.stats["429"] == 0


def test_at_the_advised_intervals_every_stream_is_served_on_time(make_rig):
    evses_n, limit = 10, 300
    warning = quota_plan(evses_n, 60, 60, limit, 0.1)
    status, command = (int(n) for n in re.search(
        r"status_interval >= (\d+) s and command_interval >= (\d+) s", warning).groups())
    with freeze_time(START) as clock:
        sim = EvEnergySim(evses=evses_n, quota=limit, token_ttl=10 * 3600)
        seen = record_streams(sim)
        evses = tuple(e.id for e in sim.evses)
        rig = make_rig(sim, evses=evses, quota_limit=limit, status_interval=f"{status}s",
                       command_interval=f"{command}s", backfill="1h")
        start = time.time()
        end = start + 2 * 3600
        run_for(rig, 2 * 3600, clock, seen)
    assert sim.stats["429"] == 0
    for evse in evses:
        for kind, interval in (("status_logs", status), ("command_logs", command)):
            times = seen[f"{evse}:{kind}"]
            # on time: one fetch per interval, none more than half an interval late
            assert len(times) >= (end - start) // interval, (kind, len(times))
            assert max(b - a for a, b in zip(times, times[1:])) <= 1.5 * interval, kind
