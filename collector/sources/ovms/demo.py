"""OVMS in the demo: the world's vehicles, the configuration section and their history."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

from collector.points import Point
from collector.sim.base import SimRequest, Simulator
from collector.sim.world import OVMS_PASSWORD, OVMS_USER, ManualClock, Simulators, toml_str
from collector.sources.base import DemoHook
from collector.sources.ovms import parse
from collector.sources.ovms.cursors import HISTORY, MSGTIME, UNITS

INTERVAL = 60                # the source's default interval


def simulator(world: Simulators) -> Simulator:
    return world.ovms


def config(url: str, world: Simulators) -> str:
    return f"""\
[sources.ovms]
url = {toml_str(url)}
username = {toml_str(OVMS_USER)}
password = {toml_str(OVMS_PASSWORD)}   # DEMO VALUE: the simulator's account password
interval = "10s"
history_interval = "1m"
"""


def _server_time(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


class History:
    """Polls only where the answer can change (a new message, the hourly TPMS), then the
    server's historical records of the window at the end."""

    # `/api/status` and `/api/charge` both carry the S and D messages
    repeated = frozenset({"ovms_charge", "ovms_vehicle"})
    on_change: frozenset[str] = frozenset()

    def __init__(self, world: Simulators, clock: ManualClock, start: int, end: int) -> None:
        self.ovms, self.clock = world.ovms, clock
        self.start, self.end = start, end
        self.vehicles = [v.id for v in self.ovms.vehicles.values() if v.connected]
        self._previous: dict[tuple[str, str], dict[str, str]] = {}
        self._units: dict[str, str] = {}
        self._last: dict[tuple[str, str], int] = {}
        self.cursors: dict[str, str] = {}

    def _get(self, path: str, **query: str) -> Any:
        request = SimRequest(method="GET", path=path, headers={},
                             query={"username": OVMS_USER, "password": OVMS_PASSWORD, **query})
        response = self.ovms.handle(request)
        if response.status != 200:
            raise RuntimeError(f"OVMS simulator answered {path} with {response.status}: "
                               f"{response.body[:200]!r}")
        return orjson.loads(response.body)

    def points(self, t0: int, t1: int) -> Iterator[Point]:
        first = -(-t0 // INTERVAL) * INTERVAL
        for vid in self.vehicles:
            for t in range(first, t1, INTERVAL):
                self.clock.now = float(t)
                message = self.ovms.message_time(vid, t)
                if self._last.get((vid, "msg")) != message:
                    self._last[(vid, "msg")] = message
                    yield from self._poll(vid, ("status", "charge", "location"))
                hour = t // 3600
                if self._last.get((vid, "tpms")) != hour:
                    self._last[(vid, "tpms")] = hour
                    yield from self._poll(vid, ("tpms",))

    def _poll(self, vid: str, streams: tuple[str, ...]) -> Iterator[Point]:
        for stream in streams:
            payload = self._get(f"/api/{stream}/{vid}")
            previous = self._previous.setdefault((vid, stream), {})
            if stream in ("status", "charge"):
                units = payload.get("units")
                if isinstance(units, str) and units:
                    self._units[vid] = units
                    self.cursors.update(UNITS.entry(units, vehicle=vid))
                parsed = parse.parse_status(payload, vid, previous, self._units.get(vid, "K"))
            elif stream == "location":
                parsed = parse.parse_location(payload, vid, previous, self._units.get(vid, "K"))
            else:
                parsed = parse.parse_tpms(payload, vid, previous)
            previous.update(parsed.msgtimes)
            for kind, stamp in parsed.msgtimes.items():
                self.cursors.update(MSGTIME.entry(stamp, vehicle=vid, stream=stream, kind=kind))
            yield from parsed.points

    def finish(self) -> list[Point]:
        self.clock.now = float(self.end)
        since = _server_time(self.start - 1)    # the server's `since` is exclusive
        end = _server_time(self.end)
        out: list[Point] = []
        for vid in self.vehicles:
            for row in self._get(f"/api/historical/{vid}"):
                kind = row["h_recordtype"]
                rows = [r for r in self._get(f"/api/historical/{vid}/{kind}", since=since)
                        if r["h_timestamp"] < end]
                parsed = parse.parse_history(rows, vid, kind, self._units.get(vid))
                if parsed.last_timestamp is not None:
                    self.cursors.update(HISTORY.entry(parsed.last_timestamp, vehicle=vid, record_type=kind))
                out.extend(parsed.points)
        return out


DEMO = DemoHook(title="OVMS", simulator=simulator, config=config, history=History)
