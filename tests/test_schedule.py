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


def test_jobs_that_share_credentials_share_one_config_error_and_one_back_off(caplog):
    # A wrong token fails a charger's status poll and its card-list poll alike: one ERROR
    # line, one back-off for both, one "recovered" line when it works again.
    import logging

    from collector.http_outcomes import Action, SourceError
    from collector.poll import Outcome

    broken = {"yes": True}
    calls: list[str] = []

    def poll(name: str):
        async def run() -> Outcome:
            calls.append(name)
            if broken["yes"]:
                raise SourceError(Action.CONFIG, "HTTP 403: the token is wrong", cause="HTTP 403")
            return Outcome.WRITTEN
        return run

    status = Job(id="goe:000001:status", interval=1.0, run=poll("status"), source="goe", device="000001")
    cards = Job(id="goe:000001:cards", interval=1.0, run=poll("cards"), source="goe", device="000001")
    other = Job(id="goe:000002:status", interval=1.0, run=poll("other"), source="goe", device="000002")
    runner = JobRunner(Health())

    async def main(frozen) -> None:
        for second in range(80):
            if second == 40:
                broken["yes"] = False
            for job in (status, cards, other):
                await runner.run(job)
            frozen.tick(1.0)

    with caplog.at_level(logging.INFO), freeze_time("2026-11-21 09:30:00") as frozen:
        asyncio.run(main(frozen))
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert [e.split(":")[0:2] for e in errors] == [["goe", "000001"], ["goe", "000002"]]
    assert all("asking again in 10 s" in e for e in errors)
    # asked at 0, 10 and 30 s (fixed at 40 s), then at 70 s it works; the card poll is held by
    # the same back-off until then, and both run every second after it
    assert calls.count("status") == calls.count("other") == 3 + 10
    assert calls.count("cards") == 10
    recovered = [r.getMessage() for r in caplog.records if "recovered" in r.getMessage()]
    assert recovered == ["goe:000001: recovered from HTTP 403 (after 3 failures)",
                         "goe:000002: recovered from HTTP 403 (after 3 failures)"]
