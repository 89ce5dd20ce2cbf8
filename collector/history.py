"""Consistent history for every source, generated on a simulated clock, through the real path.

`generate_history(store, start, end)` asks each simulator's model for the payloads the real
collector would have fetched at each moment of [start, end), turns them into points with each
source's own parse functions, and commits them with `Store.append` in large batches. So the
history looks exactly like collected data: same measurements, tags, types and timestamps, and
a forwarder ships it to InfluxDB like any other backlog.

One car ties the sources together: the OVMS vehicle `CAR_VEHICLE` drives to work and back each
day and charges in the evening. Its charge sessions are the sessions of the go-e charger
(`GOE_SERIAL`, 10 s resolution, as the cloud API would deliver) and of evcc's first loadpoint
(same plug-in time, power, energy and SoC), and evcc's site balances PV, home, battery and that
charge. evcc's second loadpoint (a heat pump), the second OVMS vehicle and the ev.energy EVSE
(another charger, with its own smart-charging schedule) follow their simulators' own models.

Deterministic for a seed. Polls are simulated only where the answer can change: a poll that
would return the same message again produces no point in the real collector either. Points
carry the time their source gives, so OVMS points of the first poll may predate `start` by up
to ten minutes (the car's last message), and tariff forecasts reach past `end`. The sources'
cursors are left as a collector's would be at `end`.
"""

from __future__ import annotations

import bisect
import itertools
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator

import orjson

from collector.points import Point
from collector.sim.base import SimRequest
from collector.sim.evcc import DEFAULT_LOADPOINTS, EvccSim, LoadpointSpec
from collector.sim.evcc import Session as EvccSession
from collector.sim.evenergy import EvEnergySim
from collector.sim.goe import DEFAULT_TOKEN as GOE_TOKEN
from collector.sim.goe import GoeSimulator, SimCharger
from collector.sim.ovms import CHARGE_KW, DAY, REFERENCE_DAY, OvmsSim
from collector.sources.evcc import parse as evcc_parse
from collector.sources.evenergy import parse as evenergy_parse
from collector.sources.goe import parse as goe_parse
from collector.sources.ovms import parse as ovms_parse
from collector.store import Store

# Identities shared with the demo's live configuration, so history and live data line up.
GOE_SERIAL = "000001"
GOE_INTERVAL = 10                    # seconds between go-e samples
EVCC_SITE = "home"
EVCC_STATE_INTERVAL = 30             # evcc's default state_interval
EVCC_TARIFFS = ("grid", "feedin", "co2")
CAR_VEHICLE = "DEMO1"                # the OVMS car that charges on the go-e charger / evcc
CAR_CARDS = ("Alex", "Guest")        # the go-e charger's RFID cards; the car's charges use the first
GOE_CARDS_INTERVAL = 3600            # the go-e source's default card-list poll
OVMS_USER, OVMS_PASSWORD = "demo", "demo-password"
OVMS_INTERVAL = 60                   # the OVMS source's default interval
EVENERGY_EVSES = 1

BATCH_POINTS = 50_000                # points per Store.append transaction (bounds memory)
CHARGE_W = CHARGE_KW * 1000.0
_CAR_AMPS = 31                       # what a 7.2 kW single-phase on-board charger draws at 230 V
NS = 1_000_000_000


@dataclass(frozen=True)
class CarSession:
    """One evening on the charger: plugged in, charging, full, unplugged next morning."""

    plug: int           # unix seconds: the car connects (5 s before charging starts)
    charge_start: int
    charge_end: int
    unplug: int

    @property
    def energy_wh(self) -> float:
        return CHARGE_W * (self.charge_end - self.charge_start) / 3600.0


def car_sessions(ovms: OvmsSim, first_day: int, last_day: int) -> list[CarSession]:
    """The car's charge sessions plugged in on days first_day..last_day (days since 1970)."""
    out = []
    for day in range(first_day, last_day + 1):
        plan = ovms.day(CAR_VEHICLE, day)
        tomorrow = ovms.day(CAR_VEHICLE, day + 1)
        # OVMS logs the car unplugged a minute before the morning drive.
        out.append(CarSession(plan.charge_start - 5, plan.charge_start, plan.charge_end,
                              tomorrow.trips[0].start - 60))
    return out


class _SessionCharger(SimCharger):
    """One session as one charging cycle of the goe simulator's model, at the car's 7.2 kW."""

    @property
    def power_w(self) -> float:
        return CHARGE_W


class CarCharger(SimCharger):
    """A go-e charger whose car is the OVMS car: one `SimCharger` cycle per evening session.

    Each session is one charging cycle of the goe simulator's model, from its plug-in to the
    next plug-in, so `car`, `wh`, `eto`, `nrg` and `cdi` move as the real charger's would; the
    lifetime counter `eto` carries over from session to session. `state` follows the wall time
    it is given, so the same object serves the history and the live demo (in `GoeSimulator`).
    """

    def __init__(self, sessions: list[CarSession], seed: int) -> None:
        super().__init__(serial=GOE_SERIAL, firmware="058.2", variant=22, amp=32, phases=1,
                         car_max_a=_CAR_AMPS, cards=CAR_CARDS, card=0)
        self.starts: list[int] = []
        self.cycles: list[_SessionCharger] = []
        eto = 1_000_000 + (seed * 7919) % 4_000_000
        self.card_energy_base = eto     # the card list was set up with the charger
        for index, (session, following) in enumerate(zip(sessions, sessions[1:])):
            cycle = following.plug - session.plug
            charger = _SessionCharger(
                serial=GOE_SERIAL, firmware=self.firmware, variant=self.variant, amp=self.amp,
                phases=self.phases, car_max_a=self.car_max_a, cycle_s=cycle, arrive_at=0,
                leave_at=min(cycle, session.unplug - session.plug),
                session_wh=round(session.energy_wh, 1),
                # An offset of whole cycles keeps the cycle position and varies the noise.
                phase_offset=cycle * (index + 1), cards=self.cards, card=self.card,
                card_energy_base=self.card_energy_base)
            full = charger.power_w * charger.charge_s / 3600.0
            # state() adds (completed cycles) x (session energy) to eto_start; cancel that out.
            charger.eto_start = int(eto - (index + 1) * full)
            eto += full
            self.starts.append(session.plug)
            self.cycles.append(charger)

    def state(self, elapsed: int, wall: float = 0.0) -> dict[str, Any]:
        t = int(wall)
        index = bisect.bisect_right(self.starts, t) - 1
        if index < 0:
            raise ValueError(f"the simulated go-e charger has no data before {self.starts[0]}, asked for {t}")
        return self.cycles[index].state(t - self.starts[index], float(t))


class _CarEvcc(EvccSim):
    """evcc whose first loadpoint charges the OVMS car; the second keeps the simulator's model.

    Sessions are computed once up to `until` (the simulator recomputes them on every call).
    """

    def __init__(self, ovms: OvmsSim, sessions: list[CarSession], until: float,
                 installed: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        base = DEFAULT_LOADPOINTS[0]
        self.loadpoints = (LoadpointSpec(base.title, base.vehicle_name, base.vehicle_title,
                                         period_h=24.0, max_current=32.0, phases=1,
                                         capacity_kwh=ovms.vehicles[CAR_VEHICLE].battery_kwh),
                           *DEFAULT_LOADPOINTS[1:2])
        self.ovms = ovms
        raw = [(float(s.charge_start), 0, float(s.unplug), float(s.charge_end - s.charge_start), CHARGE_W)
               for s in sessions if s.charge_start <= until]
        raw += [(created, 1, finished, charge, power)
                for created, finished, charge, power in self._sessions_of(1, until)]
        raw.sort()
        self._all = [EvccSession(n + 1, lp, created, finished, charge, power)
                     for n, (created, lp, finished, charge, power) in enumerate(raw)]
        self._created = [s.created for s in self._all]
        # Sessions before `installed` are not served (ids still count from the anchor), as if
        # this evcc's database began then: a first sync is not years of sessions.
        self._first = bisect.bisect_left(self._created, installed) if installed is not None else 0
        self._by_lp = {lp: [s for s in self._all if s.lp == lp] for lp in (0, 1)}
        self._by_lp_created = {lp: [s.created for s in rows] for lp, rows in self._by_lp.items()}
        # Energy of each loadpoint's sessions before the k-th: its meter without a scan.
        self._lp_done = {lp: list(itertools.accumulate((s.power_w * s.charge_s / 3600.0 for s in rows),
                                                       initial=0.0))
                         for lp, rows in self._by_lp.items()}
        for session in self._by_lp[0]:
            start = ovms.state(CAR_VEHICLE, session.created)
            end = ovms.state(CAR_VEHICLE, session.created + session.charge_s)
            self.correct_session(session.id, socStart=round(start["soc"], 1),
                                 socEnd=round(end["soc"], 1),
                                 odometer=round(start["odometer_km"], 1))

    def sessions(self, now: float) -> list[EvccSession]:
        return self._all[self._first:bisect.bisect_right(self._created, now)]

    def _lp_sessions(self, lp: int, now: float) -> list[EvccSession]:
        # Every session from the anchor, also those before `installed`: the meter saw them.
        return self._by_lp.get(lp, [])[:bisect.bisect_right(self._by_lp_created.get(lp, []), now)]

    def charged_wh(self, lp: int, now: float) -> float:
        count = bisect.bisect_right(self._by_lp_created.get(lp, []), now)
        if count == 0:
            return 0.0
        last = self._by_lp[lp][count - 1]   # sessions of a loadpoint do not overlap
        return self._lp_done[lp][count - 1] + last.power_w * max(0.0, min(now - last.created, last.charge_s)) / 3600.0

    def _active(self, lp: int, now: float) -> EvccSession | None:
        rows = self._by_lp.get(lp, [])
        index = bisect.bisect_right(self._by_lp_created.get(lp, []), now) - 1
        if index >= 0 and rows[index].created <= now < rows[index].finished:
            return rows[index]
        return None

    def _loadpoint(self, index: int, spec: LoadpointSpec, session: EvccSession | None, power: float,
                   now: float) -> dict:
        lp = super()._loadpoint(index, spec, session, power, now)
        if index == 0 and session is not None:
            car = self.ovms.state(CAR_VEHICLE, now)
            lp["vehicleSoc"] = round(car["soc"], 1)
            lp["vehicleOdometer"] = round(car["odometer_km"], 1)
        return lp


# -- the generator ----------------------------------------------------------------------------


# Measurements whose points arrive more than once: each tariff forecast is fetched again and
# again, and OVMS `/api/status` and `/api/charge` both carry the S and D messages.
_REPEATED = frozenset({"evcc_tariff", "ovms_charge", "ovms_vehicle"})


class _Sink:
    """Points into the store in big transactions, counted per measurement (distinct points)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.buffer: list[Point] = []
        self.counts: dict[str, int] = {}
        self._seen: set[tuple[Any, ...]] = set()

    def add(self, points: Iterable[Point]) -> None:
        for point in points:
            if point.measurement in _REPEATED:
                key = point.key()
                if key in self._seen:
                    self.buffer.append(point)   # stored again: the store merges it
                    continue
                self._seen.add(key)
            self.counts[point.measurement] = self.counts.get(point.measurement, 0) + 1
            self.buffer.append(point)
        if len(self.buffer) >= BATCH_POINTS:
            self.flush()

    def flush(self, cursors: dict[str, str] | None = None) -> None:
        if self.buffer or cursors:
            self.store.append(self.buffer, cursors)
            self.buffer = []


def _request(path: str, **query: str) -> SimRequest:
    return SimRequest(method="GET", path=path, query=query, headers={})


def anchor_day(start: float) -> int:
    """The first day of the linked models: counters and session ids count from here.

    Fixed (2024-01-01, where the OVMS model's odometers start) so that every history and every
    demo agree on `eto`, evcc's session ids and energy counters, whatever window they cover.
    """
    return min(REFERENCE_DAY, int(start // DAY) - 1)


@dataclass
class Simulators:
    """The four simulators, linked through one car (see the module docstring)."""

    goe: GoeSimulator
    evcc: EvccSim
    evenergy: EvEnergySim
    ovms: OvmsSim


def build_simulators(seed: int = 1, start: float | None = None, until: float | None = None,
                     clock: Callable[[], float] | None = None,
                     evenergy_clock: Callable[[], float] | None = None,
                     history_days: float = 30.0) -> Simulators:
    """Simulators whose models agree; `clock` defaults to the wall clock (the live demo).

    The car's sessions are laid out from the anchor to `until` (default: a year from now; past
    it the charger repeats its last cycle). The servers hold `history_days` of history (OVMS
    at least 14, as its server keeps), and evcc's sessions from `start` (default: a week ago).
    """
    now = time.time()
    clock = clock or (lambda: time.time())
    first = anchor_day(start if start is not None else now)
    until = until if until is not None else now + 366 * DAY
    ovms = OvmsSim(seed=seed, clock=clock, history_days=max(14, math.ceil(history_days) + 1))
    sessions = car_sessions(ovms, first, int(until // DAY) + 1)
    charger = CarCharger(sessions, seed)
    goe = GoeSimulator(chargers={GOE_SERIAL: charger}, token=GOE_TOKEN, clock=clock, epoch=0.0)
    evcc = _CarEvcc(ovms, sessions, until=until, seed=seed, clock=clock, start=float(first * DAY),
                    tariffs=EVCC_TARIFFS,
                    installed=start if start is not None else now - 7 * DAY)
    evenergy = EvEnergySim(evses=EVENERGY_EVSES, seed=seed, clock=evenergy_clock or clock,
                           history_days=history_days)
    return Simulators(goe=goe, evcc=evcc, evenergy=evenergy, ovms=ovms)


class _Generator:
    def __init__(self, start: int, end: int, seed: int) -> None:
        self.start, self.end, self.seed = start, end, seed
        self.clock = float(start)
        days = (end - start) / DAY + 2
        # ev.energy answers "what is visible now" for a range: now is the end of the history.
        sims = build_simulators(seed, start=float(start), until=float(end), clock=lambda: self.clock,
                                evenergy_clock=lambda: float(end), history_days=days)
        self.charger = sims.goe.chargers[GOE_SERIAL]
        self.evcc, self.evenergy, self.ovms = sims.evcc, sims.evenergy, sims.ovms
        self.ovms_vehicles = [v.id for v in self.ovms.vehicles.values() if v.connected]
        self._ovms_previous: dict[tuple[str, str], dict[str, str]] = {}
        self._ovms_units: dict[str, str] = {}
        self._ovms_last: dict[tuple[str, str], int] = {}
        self.cursors: dict[str, str] = {}

    # Each step covers [t0, t1) and yields the points a collector would have stored.

    def goe_points(self, t0: int, t1: int) -> Iterator[Point]:
        first = -(-t0 // GOE_INTERVAL) * GOE_INTERVAL
        state, parse = self.charger.state, goe_parse.parse_status
        for t in range(first, t1, GOE_INTERVAL):
            status = state(0, float(t))
            yield from parse(status, GOE_SERIAL, t * NS)
            if t % GOE_CARDS_INTERVAL == 0 or t == first == self.start:
                yield from goe_parse.parse_cards(status, GOE_SERIAL, t * NS)

    def evcc_points(self, t0: int, t1: int) -> Iterator[Point]:
        first = -(-t0 // EVCC_STATE_INTERVAL) * EVCC_STATE_INTERVAL
        for t in range(first, t1, EVCC_STATE_INTERVAL):
            self.clock = float(t)
            yield from evcc_parse.parse_state(self.evcc.state(float(t)), EVCC_SITE, t * NS)
        # The forecast moves on by the hour: an hourly fetch stores what a 15-minute one would.
        for t in range(-(-t0 // 3600) * 3600, t1, 3600):
            for kind in EVCC_TARIFFS:
                yield from evcc_parse.parse_tariff(self.evcc.tariff(kind, float(t)), EVCC_SITE, kind)

    def evcc_sessions(self) -> list[Point]:
        rows = self.evcc.session_rows(now=float(self.end))
        parsed = evcc_parse.parse_sessions(rows, EVCC_SITE, since_ns=self.start * NS)
        mark = parsed.watermark_ns()
        if mark is not None:
            self.cursors[f"evcc:{EVCC_SITE}:sessions"] = evcc_parse.format_time_ns(mark)
        return parsed.points

    def evenergy_points(self, t0: int, t1: int) -> Iterator[Point]:
        until = t1 - 1e-6   # the simulator's ranges are inclusive
        for evse in self.evenergy.evses:
            for stream, fetch, parse in (
                    ("status_logs", self.evenergy.status_logs, evenergy_parse.parse_status_logs),
                    ("command_logs", self.evenergy.command_logs, evenergy_parse.parse_command_logs)):
                parsed = parse(fetch(evse.id, float(t0), until), evse.id)
                if parsed.newest_ns is not None:
                    self.cursors[f"evenergy:{evse.id}:{stream}"] = evenergy_parse.format_time(parsed.newest_ns)
                yield from parsed.points

    def _ovms_get(self, path: str, **query: str) -> Any:
        response = self.ovms.handle(_request(path, username=OVMS_USER, password=OVMS_PASSWORD, **query))
        if response.status != 200:
            raise RuntimeError(f"OVMS simulator answered {path} with {response.status}: "
                               f"{response.body[:200]!r}")
        return orjson.loads(response.body)

    def ovms_points(self, t0: int, t1: int) -> Iterator[Point]:
        first = -(-t0 // OVMS_INTERVAL) * OVMS_INTERVAL
        for vid in self.ovms_vehicles:
            for t in range(first, t1, OVMS_INTERVAL):
                self.clock = float(t)
                message = self.ovms.message_time(vid, t)
                if self._ovms_last.get((vid, "msg")) != message:
                    self._ovms_last[(vid, "msg")] = message
                    yield from self._ovms_poll(vid, ("status", "charge", "location"))
                hour = t // 3600
                if self._ovms_last.get((vid, "tpms")) != hour:
                    self._ovms_last[(vid, "tpms")] = hour
                    yield from self._ovms_poll(vid, ("tpms",))

    def _ovms_poll(self, vid: str, streams: tuple[str, ...]) -> Iterator[Point]:
        for stream in streams:
            payload = self._ovms_get(f"/api/{stream}/{vid}")
            previous = self._ovms_previous.setdefault((vid, stream), {})
            if stream in ("status", "charge"):
                units = payload.get("units")
                if isinstance(units, str) and units:
                    self._ovms_units[vid] = units
                    self.cursors[f"ovms:{vid}:units"] = units
                parsed = ovms_parse.parse_status(payload, vid, previous,
                                                 self._ovms_units.get(vid, "K"))
            elif stream == "location":
                parsed = ovms_parse.parse_location(payload, vid, previous,
                                                   self._ovms_units.get(vid, "K"))
            else:
                parsed = ovms_parse.parse_tpms(payload, vid, previous)
            previous.update(parsed.msgtimes)
            for kind, stamp in parsed.msgtimes.items():
                self.cursors[f"ovms:{vid}:msgtime:{stream}:{kind}"] = stamp
            yield from parsed.points

    def ovms_history(self) -> list[Point]:
        self.clock = float(self.end)
        since = _server_time(self.start - 1)    # the server's `since` is exclusive
        end = _server_time(self.end)
        out: list[Point] = []
        for vid in self.ovms_vehicles:
            for row in self._ovms_get(f"/api/historical/{vid}"):
                kind = row["h_recordtype"]
                rows = [r for r in self._ovms_get(f"/api/historical/{vid}/{kind}", since=since)
                        if r["h_timestamp"] < end]
                parsed = ovms_parse.parse_history(rows, vid, kind, self._ovms_units.get(vid))
                if parsed.last_timestamp is not None:
                    self.cursors[f"ovms:{vid}:history:{kind}"] = parsed.last_timestamp
                out.extend(parsed.points)
        return out


def _server_time(t: int) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(when: datetime) -> int:
    if when.tzinfo is None:
        raise ValueError(f"history bounds must be timezone-aware, got {when.isoformat()}")
    return math.floor(when.timestamp())


def generate_history(store: Store, start: datetime, end: datetime, seed: int = 1,
                     progress: bool = False) -> dict[str, int]:
    """Fill `store` with the data every source would have delivered in [start, end).

    Returns the number of distinct points per measurement. Deterministic for a seed: the same
    arguments give the same points (re-running upserts the same rows, changing nothing). The
    sources' cursors are set as a collector's would be at `end`, so a collector started on
    this store (as the demo does) carries on from there without refetching or leaving a gap.
    """
    t_start, t_end = _seconds(start), _seconds(end)
    if t_end <= t_start:
        raise ValueError(f"history end {end.isoformat()} is not after its start {start.isoformat()}")
    generator = _Generator(t_start, t_end, seed)
    sink = _Sink(store)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=round((t_end - t_start) / 86400, 2), unit="day", desc="history",
                   bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} days "
                              "[{elapsed}<{remaining}]")
    try:
        t0 = t_start
        while t0 < t_end:
            t1 = min(t_end, (t0 // 21600 + 1) * 21600)   # six hours at a time, in time order
            sink.add(generator.goe_points(t0, t1))
            sink.add(generator.evcc_points(t0, t1))
            sink.add(generator.ovms_points(t0, t1))
            sink.add(generator.evenergy_points(t0, t1))
            if bar is not None:
                bar.update(round((t1 - t0) / 86400, 4))
            t0 = t1
        sink.add(generator.evcc_sessions())
        sink.add(generator.ovms_history())
        sink.flush(generator.cursors)
    finally:
        if bar is not None:
            bar.close()
    return dict(sorted(sink.counts.items()))


__all__ = ["CAR_CARDS", "CAR_VEHICLE", "EVCC_SITE", "GOE_SERIAL", "CarCharger", "CarSession", "Simulators",
           "build_simulators", "car_sessions", "generate_history"]
