"""A collector context around the evcc source: real Store and PointWriter, a settable clock,
and the simulator reached in-process (no sockets) unless a test serves it for real."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from collector.health import Health
from collector.limits import Limits
from collector.sim.base import mock_transport
from collector.sim.evcc import EvccSim
from collector.sources.base import SourceContext
from collector.sources.evcc import Config
from collector.sources.evcc.source import EvccSource
from collector.store import Store
from collector.writer import PointWriter

# 2025-11-21T15:00:00Z: afternoon sun, a car charging in the garage, three days of history.
T0 = 1_763_737_200.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_context(tmp_path: Path, clock: Clock, sim: EvccSim | None = None,
                 db: str = "store.db") -> SourceContext:
    store = Store(tmp_path / db)
    health = Health()
    return SourceContext(cursors=store, writer=PointWriter(store, health), limits=Limits(clock),
                         health=health,
                         http_transport=mock_transport(sim) if sim is not None else None)


def make_source(ctx: SourceContext, **config: Any) -> EvccSource:
    settings = {"name": "home", "url": "http://evcc.local:7070"}
    settings.update(config)
    return EvccSource(Config.model_validate(settings), ctx)


def stored(ctx: SourceContext, measurement: str) -> list:
    return [p for chunk in ctx.writer.store.query(measurement) for p in chunk]
