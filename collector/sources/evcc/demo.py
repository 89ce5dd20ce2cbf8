"""evcc in the demo: the world's site, its configuration section and its history."""

from __future__ import annotations

import json
from collections.abc import Iterator

from collector.points import Point
from collector.sim.base import Simulator
from collector.sim.world import EVCC_SITE, EVCC_TARIFFS, ManualClock, Simulators, toml_str
from collector.sources.base import DemoHook
from collector.sources.evcc import parse
from collector.sources.evcc.cursors import SESSIONS
from collector.sources.evcc.schema import MEASUREMENTS

STATE_INTERVAL = 30          # the source's default state_interval
NS = 1_000_000_000


def simulator(world: Simulators) -> Simulator:
    return world.evcc


def config(url: str, world: Simulators) -> str:
    return f"""\
[sources.evcc]
name = {toml_str(EVCC_SITE)}
url = {toml_str(url)}
state_interval = "10s"
sessions_interval = "1m"
tariffs = {json.dumps(list(EVCC_TARIFFS))}
tariff_interval = "15m"
"""


class History:
    """The site's state every STATE_INTERVAL, the forecasts hourly, the session log at the end."""

    # each tariff forecast is fetched again and again
    repeated = frozenset({"evcc_tariff"})
    # the site's state is stamped with the poll time
    on_change = frozenset(m.name for m in MEASUREMENTS if m.on_change)

    def __init__(self, world: Simulators, clock: ManualClock, start: int, end: int) -> None:
        self.evcc, self.clock = world.evcc, clock
        self.start, self.end = start, end
        self.cursors: dict[str, str] = {}

    def points(self, t0: int, t1: int) -> Iterator[Point]:
        first = -(-t0 // STATE_INTERVAL) * STATE_INTERVAL
        for t in range(first, t1, STATE_INTERVAL):
            self.clock.now = float(t)
            yield from parse.parse_state(self.evcc.state(float(t)), EVCC_SITE, t * NS)
        # The forecast moves on by the hour: an hourly fetch stores what a 15-minute one would.
        for t in range(-(-t0 // 3600) * 3600, t1, 3600):
            for kind in EVCC_TARIFFS:
                yield from parse.parse_tariff(self.evcc.tariff(kind, float(t)), EVCC_SITE, kind)

    def finish(self) -> list[Point]:
        rows = self.evcc.session_rows(now=float(self.end))
        parsed = parse.parse_sessions(rows, EVCC_SITE, since_ns=self.start * NS)
        mark = parsed.watermark_ns()
        if mark is not None:
            self.cursors.update(SESSIONS.entry(mark, site=EVCC_SITE))
        return parsed.points


DEMO = DemoHook(title="evcc", simulator=simulator, config=config, history=History)
