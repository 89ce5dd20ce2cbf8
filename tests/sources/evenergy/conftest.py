"""A collector pipeline around the ev.energy simulator, reached in-process (mock_transport)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from collector.health import Health
from collector.limits import Limits
from collector.schedule import JobRunner
from collector.sim.base import mock_transport
from collector.sim.evenergy import EvEnergySim
from collector.sources.base import Job, SourceContext
from collector.sources.evenergy import Config, build
from collector.sources.evenergy.source import EvEnergySource
from collector.store import Store
from collector.writer import PointWriter

BASE_URL = "http://evenergy.test/v2"


@dataclass
class Rig:
    sim: EvEnergySim
    store: Store
    health: Health
    limits: Limits
    ctx: SourceContext
    source: EvEnergySource
    config: Config
    extra: dict[str, Any] = field(default_factory=dict)

    def stored(self, measurement: str, evse: str | None = None) -> dict[int, dict]:
        """time_ns -> fields of one measurement (optionally one EVSE) in the local store."""
        out: dict[int, dict] = {}
        for chunk in self.store.query(measurement, tags={"evse": evse} if evse else None):
            for p in chunk:
                assert p.time_ns not in out or evse is None
                out[p.time_ns] = p.fields
        return out

    def count(self, measurement: str) -> int:
        return sum(len(chunk) for chunk in self.store.query(measurement))


def config_for(sim: EvEnergySim, **overrides: Any) -> Config:
    values: dict[str, Any] = dict(client_id="demo-client", client_secret="demo-secret",
                                  user=sim.user, base_url=BASE_URL)
    values.update(overrides)
    return Config(**values)


@pytest.fixture
def make_rig(tmp_path: Path):
    """make_rig(sim, **config) -> Rig; the store lives in tmp_path; everything closes after."""
    rigs: list[Rig] = []

    def make(sim: EvEnergySim, store_name: str = "store.db", limits: Limits | None = None,
             **overrides: Any) -> Rig:
        store = Store(tmp_path / store_name, synchronous="normal")
        health = Health()
        limits = limits or Limits()
        ctx = SourceContext(cursors=store, writer=PointWriter(store, health), limits=limits,
                            health=health, http_transport=mock_transport(sim))
        config = config_for(sim, **overrides)
        rig = Rig(sim, store, health, limits, ctx, build(config, ctx), config)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        asyncio.run(rig.source.close())
        rig.store.close()


async def run_schedule(jobs: list[Job], runner: JobRunner, seconds: float,
                       spread: float = 1.0) -> int:
    """Run jobs as the scheduler does, for `seconds` of frozen time (under `run_frozen`): each
    job first at once, then on its grid (a fixed phase per device); runs due while the previous
    run of the job is still going collapse into one. Returns the runs made."""
    import time
    from datetime import datetime, timezone

    from collector.schedule import GridTrigger, phase

    start = time.time()
    runs = 0

    def at(t: float) -> datetime:
        return datetime.fromtimestamp(t, timezone.utc)

    async def one(job: Job) -> None:
        nonlocal runs
        trigger = GridTrigger(job.interval, phase(job.device or job.id, job.interval, spread))
        due = start
        while due <= start + seconds:
            await asyncio.sleep(max(0.0, due - time.time()))
            await runner.run(job)
            runs += 1
            following = trigger.get_next_fire_time(at(due), at(time.time()))
            while following.timestamp() < time.time():       # coalesce what was missed
                following = trigger.get_next_fire_time(following, at(time.time()))
            due = following.timestamp()

    await asyncio.gather(*(one(job) for job in jobs))
    return runs
