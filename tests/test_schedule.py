"""The schedule: a fixed grid per job, a fixed phase per device, no drift."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

from freezegun import freeze_time

from collector.health import Health
from collector.schedule import GridTrigger, JobRunner, build_scheduler, phase
from collector.sources.base import Job
from tests.virtual_time import run_frozen


def at(t: float) -> datetime:
    return datetime.fromtimestamp(t, timezone.utc)


def test_the_grid_does_not_drift_over_a_day_of_one_second_runs():
    trigger = GridTrigger(1.0, 0.37)
    fire = trigger.get_next_fire_time(None, at(1_800_000_000.5))
    assert fire.timestamp() == 1_800_000_001.37
    for _ in range(86_400):
        fire = trigger.get_next_fire_time(fire, fire)
    # exactly a day later, on the same phase: nothing accumulated
    assert abs(fire.timestamp() - (1_800_000_001.37 + 86_400)) < 1e-5


def test_each_device_has_a_fixed_phase_spread_over_the_interval():
    phases = [phase(f"{n:06d}", 1.0, 1.0) for n in range(1000)]
    assert phases == [phase(f"{n:06d}", 1.0, 1.0) for n in range(1000)]   # stable
    assert all(0.0 <= p < 1.0 for p in phases)
    assert min(phases) < 0.01 and max(phases) > 0.99                       # spread over it all
    assert sum(p < 0.5 for p in phases) in range(450, 551)
    assert all(p < 0.1 for p in (phase(f"{n:06d}", 1.0, 0.1) for n in range(100)))
    assert {phase(f"{n:06d}", 60.0, 0.0) for n in range(10)} == {0.0}


def test_a_one_second_job_runs_every_second_on_the_scheduler_for_ten_minutes():
    # The real APScheduler, on freezegun's clock: APScheduler's own jitter made a 1 s job run
    # every ~1.05 s (114 runs in 120 s); on the grid it runs 600 times in 600 s, a second apart.
    runs: list[float] = []

    async def poll() -> None:
        runs.append(time.time())

    async def main() -> None:
        jobs = [Job(id="goe:000001:status", interval=1.0, run=poll, source="goe", device="000001")]
        scheduler = build_scheduler(jobs, JobRunner(Health()))   # the default spread
        scheduler.start()
        await asyncio.sleep(601)
        scheduler.shutdown(wait=False)

    with freeze_time("2026-11-21 09:30:00") as frozen:
        run_frozen(main(), frozen)
    on_grid = runs[1:]                      # the first run comes soon after start, off the grid
    assert 599 <= len(on_grid) <= 601
    gaps = [b - a for a, b in zip(on_grid, on_grid[1:])]
    assert all(abs(gap - 1.0) < 0.01 for gap in gaps), (min(gaps), max(gaps))
    offset = phase("000001", 1.0, 1.0)
    assert all(abs((t - offset) - round(t - offset)) < 0.01 for t in on_grid)
