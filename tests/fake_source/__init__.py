"""A minimal source that lives outside the collector: one energy meter read over HTTP.

`tests/test_fake_source.py` registers it for a test and expects it in the configuration, the
schema, the demo and the export, without a change to central code. It follows
docs/adding-a-source.md and is kept as small as a real source can be.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator, Sequence

import httpx

from collector.config_types import Duration, Model
from collector.http_outcomes import SourceError, error_for_exception
from collector.measurement import Measurement, Tag, f, register
from collector.points import Point
from collector.poll import Outcome, Parsed
from collector.sim.base import SimRequest, SimResponse
from collector.sim.world import ManualClock, Simulators, toml_str
from collector.sources.base import (CheckResult, DemoHook, Job, Source, SourceContext,
                                    SourcePackage)
from collector.specs import CounterSpec

NAME = "fake"
NS = 1_000_000_000
log = logging.getLogger(__name__)

METER = Measurement(
    name="fake_meter",
    description="A test source's energy meter.",
    time="poll time",
    tags=(Tag("meter", "the meter's id"),),
    fields=(f("energy_wh", "Wh", "lifetime energy counter"),),
    source=NAME,
)
register(METER)


class Config(Model):
    """`[sources.fake]`."""

    url: str
    meter: str = "m1"
    interval: Duration = 60.0


def parse_reading(payload: Any, meter: str, time_ns: int) -> Parsed:
    """`{"energy_wh": 1234.5}` -> one point."""
    point = METER.point({"meter": meter}, {"energy_wh": payload.get("energy_wh")}, time_ns)
    return Parsed(points=[point] if point else [], nothing="" if point else "no reading")


class FakeSource:
    name = NAME

    def __init__(self, config: Config, ctx: SourceContext) -> None:
        self.config, self.ctx = config, ctx
        self.http = ctx.http_client(config.url)
        self.step = ctx.poll_step(NAME, f"meter {config.meter}", ctx.payload_problems(NAME, log))

    async def _fetch(self) -> Any:
        try:
            response = await self.http.get("/reading")
        except httpx.HTTPError as exc:
            raise error_for_exception(exc, f"{NAME} {self.config.url}") from None
        return response.json()

    async def _poll(self) -> Outcome:
        return await self.step.run(
            self._fetch, lambda payload: parse_reading(payload, self.config.meter, _now_ns()))

    def jobs(self) -> Sequence[Job]:
        return [Job(id=f"{NAME}:{self.config.meter}:reading", interval=self.config.interval,
                    run=self._poll, source=NAME, device=self.config.meter)]

    async def start(self) -> None:
        pass

    async def check(self) -> Sequence[CheckResult]:
        try:
            await self._fetch()
        except SourceError as exc:
            return [CheckResult(f"{NAME} {self.config.url}", False, str(exc))]
        return [CheckResult(f"{NAME} {self.config.url}", True, "reading answered")]

    async def close(self) -> None:
        await self.http.aclose()


def _now_ns() -> int:
    import time

    return time.time_ns()


def build(config: Config, ctx: SourceContext) -> Source:
    return FakeSource(config, ctx)


# -- the demo ------------------------------------------------------------------------------------

WATTS = 1000.0     # the meter's constant load


class FakeSim:
    """A meter drawing WATTS since the epoch of the world's clock."""

    def __init__(self, world: Simulators) -> None:
        self.clock = world.clock

    def reading(self, t: float) -> dict[str, float]:
        return {"energy_wh": round(WATTS * t / 3600.0, 1)}

    def handle(self, request: SimRequest) -> SimResponse:
        if request.path != "/reading":
            return SimResponse.json({"error": "not found"}, status=404)
        return SimResponse.json(self.reading(self.clock()))


class FakeHistory:
    """One reading an hour."""

    repeated: frozenset[str] = frozenset()
    on_change: frozenset[str] = frozenset()

    def __init__(self, world: Simulators, clock: ManualClock, start: int, end: int) -> None:
        self.sim = FakeSim(world)
        self.cursors: dict[str, str] = {}

    def points(self, t0: int, t1: int) -> Iterator[Point]:
        for t in range(-(-t0 // 3600) * 3600, t1, 3600):
            yield from parse_reading(self.sim.reading(t), "m1", t * NS).points

    def finish(self) -> list[Point]:
        return []


def _config(url: str, world: Simulators) -> str:
    return f"[sources.fake]\nurl = {toml_str(url)}\n"


def _demo() -> DemoHook:
    return DemoHook(title="fake meter", simulator=FakeSim, config=_config, history=FakeHistory)


SOURCE = SourcePackage(
    name=NAME, config=Config, measurements=(METER,), build=build,
    export_counters=(CounterSpec("fake_meter", lambda t: f"fake:{t.get('meter', '')}",
                                 (("energy_wh", "energy_wh"),)),),
    demo=_demo)
