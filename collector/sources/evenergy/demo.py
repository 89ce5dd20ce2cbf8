"""ev.energy in the demo: the world's EVSE, its configuration section and its history."""

from __future__ import annotations

import json
from collections.abc import Iterator

from collector.points import Point
from collector.sim.base import Simulator
from collector.sim.world import ManualClock, Simulators, toml_str
from collector.sources.base import DemoHook
from collector.sources.evenergy import parse
from collector.sources.evenergy.cursors import WATERMARK


def simulator(world: Simulators) -> Simulator:
    return world.evenergy


def config(url: str, world: Simulators) -> str:
    evses = [evse.id for evse in world.evenergy.evses]
    return f"""\
[sources.evenergy]
client_id = "demo-client"
client_secret = "demo-secret"   # DEMO VALUE: the simulator's OAuth client secret
user = "user01HSIMULATEDUSER0000000000"
base_url = {toml_str(url + "/v2")}
evses = {json.dumps(evses)}
status_interval = "1m"
command_interval = "1m"
backfill = "2d"
"""


class History:
    """Each EVSE's status and command logs, as the syncs of the window would have read them."""

    repeated: frozenset[str] = frozenset()
    on_change: frozenset[str] = frozenset()

    def __init__(self, world: Simulators, clock: ManualClock, start: int, end: int) -> None:
        self.evenergy = world.evenergy
        self.cursors: dict[str, str] = {}

    def points(self, t0: int, t1: int) -> Iterator[Point]:
        until = t1 - 1e-6   # the simulator's ranges are inclusive
        for evse in self.evenergy.evses:
            for stream, fetch, parse_logs in (
                    ("status_logs", self.evenergy.status_logs, parse.parse_status_logs),
                    ("command_logs", self.evenergy.command_logs, parse.parse_command_logs)):
                parsed = parse_logs(fetch(evse.id, float(t0), until), evse.id)
                if parsed.newest_ns is not None:
                    self.cursors.update(WATERMARK.entry(parsed.newest_ns, evse=evse.id, stream=stream))
                yield from parsed.points

    def finish(self) -> list[Point]:
        return []


DEMO = DemoHook(title="ev.energy", simulator=simulator, config=config, history=History)
