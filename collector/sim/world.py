"""The demo's simulated world: the four simulators, linked through one car.

One car ties the sources together: the OVMS vehicle `CAR_VEHICLE` drives to work and back each
day and charges in the evening. Its charge sessions are the sessions of the go-e charger
(`GOE_SERIAL`, 10 s resolution, as the cloud API would deliver) and of evcc's first loadpoint
(same plug-in time, power, energy and SoC), and evcc's site balances PV, home, battery and that
charge. evcc's second loadpoint (a heat pump), the second OVMS vehicle and the ev.energy EVSE
(another charger, with its own smart-charging schedule) follow their simulators' own models.

The live demo serves these simulators; the history generator (`collector/history.py`) asks
the same models, on a simulated clock, through each source's demo hook. Deterministic for a seed.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from collector.sim.evcc import DEFAULT_LOADPOINTS, EvccSim, LoadpointSpec
from collector.sim.evcc import Session as EvccSession
from collector.sim.evenergy import EvEnergySim
from collector.sim.goe import DEFAULT_TOKEN as GOE_TOKEN
from collector.sim.goe import GoeSimulator, SimCharger
from collector.sim.ovms import CHARGE_KW, DAY, REFERENCE_DAY, OvmsSim

# Identities shared by the live demo's configuration and the history, so they line up.
GOE_SERIAL = "000001"
EVCC_SITE = "home"
EVCC_TARIFFS = ("grid", "feedin", "co2")
CAR_VEHICLE = "DEMO1"                # the OVMS car that charges on the go-e charger / evcc
CAR_CARDS = ("Alex", "Guest")        # the go-e charger's RFID cards; the car's charges use the first
OVMS_USER, OVMS_PASSWORD = "demo", "demo-password"
EVENERGY_EVSES = 1

CHARGE_W = CHARGE_KW * 1000.0
_CAR_AMPS = 31                       # what a 7.2 kW single-phase on-board charger draws at 230 V


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
        eto_start = 1_000_000 + (seed * 7919) % 4_000_000
        self.card_energy_base = eto_start     # the card list was set up with the charger
        eto: float = eto_start
        for index, (session, following) in enumerate(itertools.pairwise(sessions)):
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
        charging_s = max(0.0, min(now - last.created, last.charge_s))
        return self._lp_done[lp][count - 1] + last.power_w * charging_s / 3600.0

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


class ManualClock:
    """A clock the history generator sets: simulators that read "now" read this."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def anchor_day(start: float) -> int:
    """The first day of the linked models: counters and session ids count from here.

    Fixed (2024-01-01, where the OVMS model's odometers start) so that every history and every
    demo agree on `eto`, evcc's session ids and energy counters, whatever window they cover.
    """
    return min(REFERENCE_DAY, int(start // DAY) - 1)


@dataclass
class Simulators:
    """The four simulators, linked through one car (see the module docstring), and what a
    source's demo hook needs to build a simulator of its own: the seed and the clock."""

    goe: GoeSimulator
    evcc: EvccSim
    evenergy: EvEnergySim
    ovms: OvmsSim
    seed: int = 1
    clock: Callable[[], float] = time.time


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
    return Simulators(goe=goe, evcc=evcc, evenergy=evenergy, ovms=ovms, seed=seed, clock=clock)


def history_world(seed: int, start: int, end: int, clock: ManualClock) -> Simulators:
    """The world as the history generator asks it, on `clock`, for [start, end)."""
    # ev.energy answers "what is visible now" for a range: now is the end of the history.
    return build_simulators(seed, start=float(start), until=float(end), clock=clock,
                            evenergy_clock=lambda: float(end), history_days=(end - start) / DAY + 2)


def sessions_config() -> str:
    """The `[sessions]` part of the demo's configuration: the world's charger, cars and card."""
    return f"""\
# Charging sessions are derived without this section too (sources joined by their data); it
# names the charger and the cars, sets the tariff, and gives the holder details a monthly
# statement prints (`ev-collector statement --month YYYY-MM --config this file`).
[sessions]
tariff = "evcc"                 # evcc's dynamic grid tariff; "fixed" or "flat" with price
price = 0.32                    # for hours evcc has no rate for
currency = "EUR"
ignore = [{toml_str("evcc:" + EVCC_SITE + "/Heat pump")}]   # an evcc loadpoint that is no EV charger

[sessions.chargers.garage]
goe = {toml_str(GOE_SERIAL)}
evcc = {toml_str(EVCC_SITE + "/Garage")}
vehicles = ["company-car"]

[sessions.vehicles.company-car]
ovms = {toml_str(CAR_VEHICLE)}
evcc = "Model 3"
holder = "Alex Example"         # DEMO VALUES: free text printed on the statement
plate = "B-EV 2026E"
employer = "Example Logistics GmbH, personnel no. 4711"

[sessions.vehicles.second-car]
ovms = "DEMO2"

[sessions.cards.Alex]           # the go-e charger's RFID card of that name
holder = "Alex Example"
"""


def toml_str(text: str) -> str:
    """A TOML basic string (JSON's escapes are valid TOML for the text we write)."""
    return json.dumps(text, ensure_ascii=False)


__all__ = ["CAR_CARDS", "CAR_VEHICLE", "EVCC_SITE", "GOE_SERIAL", "CarCharger", "CarSession",
           "ManualClock", "Simulators", "anchor_day", "build_simulators", "car_sessions",
           "history_world", "sessions_config", "toml_str"]
