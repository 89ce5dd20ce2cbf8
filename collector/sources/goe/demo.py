"""go-eCharger in the demo: the world's charger, its configuration section and its history."""

from __future__ import annotations

from collections.abc import Iterator

from collector.points import Point
from collector.sim.base import Simulator
from collector.sim.world import GOE_SERIAL, GOE_TOKEN, ManualClock, Simulators, toml_str
from collector.sources.base import DemoHook
from collector.sources.goe import parse

INTERVAL = 10                # seconds between samples, as the cloud API would deliver them
CARDS_INTERVAL = 3600        # the source's default card-list poll
NS = 1_000_000_000


def simulator(world: Simulators) -> Simulator:
    return world.goe


def config(url: str, world: Simulators) -> str:
    return f"""\
[sources.goe]
interval = "5s"
cloud_url = {toml_str(url + "/{serial}")}   # the real cloud: https://{{serial}}.api.v3.go-e.io

[[sources.goe.chargers]]
serial = {toml_str(GOE_SERIAL)}
api = "cloud"
token = {toml_str(GOE_TOKEN)}   # DEMO VALUE: the simulator's Cloud API key
"""


class History:
    """The charger's status every INTERVAL seconds, its card list hourly."""

    repeated: frozenset[str] = frozenset()
    on_change: frozenset[str] = frozenset()

    def __init__(self, world: Simulators, clock: ManualClock, start: int, end: int) -> None:
        self.charger = world.goe.chargers[GOE_SERIAL]
        self.start = start
        self.cursors: dict[str, str] = {}

    def points(self, t0: int, t1: int) -> Iterator[Point]:
        first = -(-t0 // INTERVAL) * INTERVAL
        state, parse_status = self.charger.state, parse.parse_status
        for t in range(first, t1, INTERVAL):
            status = state(0, float(t))
            yield from parse_status(status, GOE_SERIAL, t * NS)
            if t % CARDS_INTERVAL == 0 or t == first == self.start:
                yield from parse.parse_cards(status, GOE_SERIAL, t * NS)

    def finish(self) -> list[Point]:
        return []


DEMO = DemoHook(title="go-e", simulator=simulator, config=config, history=History)
