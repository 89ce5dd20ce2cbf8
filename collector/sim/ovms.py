"""Simulated OVMS server v3 HTTP API (as the Perl server answers), for tests and the demo.

- Cookie sessions: `GET /api/cookie?username=&password=` (password or API token) answers
  `Login ok` with `Set-Cookie: ovmsapisession=...`; a session idle longer than
  `idle_timeout` (120 s like the server's `timeout_api`) is gone and calls answer 401
  "Authentication failed". Every call also accepts `username`/`password` parameters.
- Errors are text/plain: 401 "Authentication failed", 403 "Forbidden" (vehicle not in the
  account), 404 "Unrecognised API call".
- Vehicles: DEMO1 (km, TPMS via the old W message), DEMO2 (miles, TPMS via V3 Y, newer
  firmware with an extra trailing field in its grid log), DEMO3 (never connected: `{}`
  everywhere, no history).
- Each connected car follows a daily cycle in UTC: a commute out around 07:30, back around
  17:00, charging at home from about 18:30 to 90 % SOC. The on-board charger draws
  `CHARGE_KW` from the wall and puts 88-92 % of it into the battery (a seeded efficiency per
  day), so the energy a wallbox meters exceeds what the car reports as charged. While driving
  or charging the module reports every 60 s, else every 600 s, so `m_msgtime_*` stays put
  while the car is parked.
  Values are strings, flags are bit values (charging 16, caron 128, carlocked 8, ...).
- History: `*-LOG-Trip` at the start and end of each drive, `*-LOG-Grid` at each charge state
  change, and `*-OVM-Utilisation` (not decoded by the collector) as two records with the
  same timestamp each day; kept `history_days`; `since` is exclusive like the server's SQL.

Deterministic for a seed and a clock; `clock` defaults to `time.time` so freezegun drives it.
Run alone: `python -m collector.sim.ovms --port 6868`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

from collector.sim.base import SimRequest, SimResponse, SimServer, log_to_stdout

log = logging.getLogger(__name__)

DAY = 86400
MILE_KM = 1.609344
REFERENCE_DAY = 19723          # 2024-01-01: odometers count from here
CONSUMPTION_KWH_PER_KM = 0.17
CHARGE_KW = 7.2               # what the on-board charger draws from the wall
EFFICIENCY = (0.88, 0.92)      # share of it that reaches the battery (AC losses 8-12 %)
FULL_SOC = 90.0


def _ts(t: float) -> str:
    return datetime.fromtimestamp(int(t), tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _text(body: str, status: int, headers: dict[str, str] | None = None) -> SimResponse:
    return SimResponse.text(body + "\n", status, {"Access-Control-Allow-Origin": "*", **(headers or {})},
                            content_type="text/plain")


def _json(payload: Any) -> SimResponse:
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")) + "\n"
    return SimResponse(200, body.encode(), {"Content-Type": "application/json",
                                            "Access-Control-Allow-Origin": "*"})


@dataclass(frozen=True)
class Trip:
    start: int
    end: int
    km: float
    outbound: bool


@dataclass(frozen=True)
class Day:
    trips: tuple[Trip, Trip]
    charge_start: int
    charge_end: int
    km_before: float            # odometer at 00:00 (km)
    efficiency: float = 0.9     # battery energy / wall energy of the evening charge

    @property
    def battery_kw(self) -> float:
        """Power into the battery while charging."""
        return CHARGE_KW * self.efficiency


@dataclass
class SimVehicle:
    id: str
    units: str = "K"            # K or M
    connected: bool = True
    tpms: str = "W"             # W (psi, v2) or Y (kPa, v3)
    battery_kwh: float = 58.0
    odometer_base_km: float = 12000.0
    home: tuple[float, float] = (52.37403, 4.88969)
    work: tuple[float, float] = (52.30849, 4.76390)
    extra_grid_field: bool = False


@dataclass
class Session:
    user: str
    last_used: float
    peers: set[str] = field(default_factory=set)


class OvmsSim:
    def __init__(self, seed: int = 1, clock: Callable[[], float] | None = None,
                 users: dict[str, str] | None = None, tokens: dict[str, str] | None = None,
                 vehicles: list[SimVehicle] | None = None, idle_timeout: float = 120.0,
                 history_days: int = 14) -> None:
        self.seed = seed
        # Looked up on each call, so freezegun's patched time.time drives the default clock.
        self.clock = clock or (lambda: time.time())
        self.users = users if users is not None else {"demo": "demo-password"}
        self.tokens = tokens if tokens is not None else {"demo": "0123456789abcdef"}
        self.vehicles = {v.id: v for v in (vehicles or [
            SimVehicle("DEMO1"),
            SimVehicle("DEMO2", units="M", tpms="Y", battery_kwh=75.0, odometer_base_km=48000.0,
                       home=(51.50135, -0.14189), work=(51.52340, -0.08760), extra_grid_field=True),
            SimVehicle("DEMO3", connected=False),
        ])}
        self.idle_timeout = idle_timeout
        self.history_days = history_days
        self.sessions: dict[str, Session] = {}
        self.logins = 0
        self.logouts = 0
        self.requests: list[tuple[str, str]] = []     # (method, path): never the query
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        # Each day's plan once per simulator: the cache goes with the simulator (one on the
        # method would keep every simulator alive).
        self._day = lru_cache(maxsize=4096)(self._plan_day)

    # -- the car model -----------------------------------------------------------------------

    def _plan_day(self, vid: str, day: int) -> Day:
        rng = random.Random(f"{self.seed}:{vid}:{day}")
        base = day * DAY
        s1 = base + 7 * 3600 + 1800 + rng.randrange(0, 1200)
        d1 = rng.randrange(1500, 2400)
        s2 = base + 17 * 3600 + rng.randrange(0, 1800)
        d2 = rng.randrange(1500, 2700)
        km1 = round(rng.uniform(18.0, 30.0), 1)
        km2 = round(rng.uniform(18.0, 30.0), 1)
        vehicle = self.vehicles[vid]
        used = (km1 + km2) * CONSUMPTION_KWH_PER_KM
        charge_start = s2 + d2 + 1200 + rng.randrange(0, 1800)
        efficiency = round(rng.uniform(*EFFICIENCY), 4)
        charge_end = charge_start + int(used / (CHARGE_KW * efficiency) * 3600)
        km_before = vehicle.odometer_base_km + self._km_until(vid, day)
        return Day((Trip(s1, s1 + d1, km1, True), Trip(s2, s2 + d2, km2, False)),
                   charge_start, charge_end, km_before, efficiency)

    def _km_until(self, vid: str, day: int) -> float:
        if day <= REFERENCE_DAY:
            return 0.0
        previous = self._day(vid, day - 1)
        return previous.km_before - self.vehicles[vid].odometer_base_km + sum(t.km for t in previous.trips)

    def _warm(self, vid: str, day: int) -> None:
        # Fill the cache forward from the reference day so recursion stays shallow.
        for d in range(REFERENCE_DAY, day + 1, 100):
            self._day(vid, d)

    def day(self, vid: str, day: int) -> Day:
        """The plan of one day (days since 1970): its two drives and the evening charge.

        Public so that other generators (the history generator) can follow the same car.
        """
        self._warm(vid, day)
        return self._day(vid, day)

    def state(self, vid: str, t: float) -> dict[str, Any]:
        """What the car is doing at time t (metric)."""
        vehicle = self.vehicles[vid]
        day = int(t // DAY)
        self._warm(vid, day)
        today = self._day(vid, day)
        t1, t2 = today.trips
        km = today.km_before
        soc = FULL_SOC
        per_km = CONSUMPTION_KWH_PER_KM / vehicle.battery_kwh * 100.0
        state: dict[str, Any] = {"driving": False, "charging": False, "plugged": False,
                                 "speed": 0.0, "trip_km": 0.0, "position": vehicle.home,
                                 "trip_start": None, "parked_since": None}
        last_stop = (day - 1) * DAY + 17 * 3600 + 2400   # roughly yesterday evening
        for trip in (t1, t2):
            if t < trip.start:
                break
            frac = min(1.0, (t - trip.start) / (trip.end - trip.start))
            km += trip.km * frac
            soc -= trip.km * frac * per_km
            a, b = (vehicle.home, vehicle.work) if trip.outbound else (vehicle.work, vehicle.home)
            state["position"] = (a[0] + (b[0] - a[0]) * frac, a[1] + (b[1] - a[1]) * frac)
            state["trip_km"] = trip.km * frac
            if frac < 1.0:
                state["driving"] = True
                state["speed"] = trip.km / ((trip.end - trip.start) / 3600.0)
                state["trip_start"] = trip.start
            else:
                last_stop = trip.end
        if not state["driving"]:
            state["parked_since"] = last_stop
        if t >= today.charge_start:
            charged = min(t, today.charge_end) - today.charge_start
            soc += charged / 3600.0 * today.battery_kw / vehicle.battery_kwh * 100.0
            state["plugged"] = True
            state["charging"] = t < today.charge_end
        elif t < t1.start:
            state["plugged"] = True   # still plugged in from last night, charge done
        state["soc"] = max(0.0, min(100.0, soc))
        state["odometer_km"] = km
        state["charge_kwh"] = (min(t, today.charge_end) - today.charge_start) / 3600.0 * today.battery_kw \
            if t >= today.charge_start else 0.0
        state["efficiency"] = today.efficiency
        state["charge_seconds"] = max(0, int(min(t, today.charge_end) - today.charge_start)) \
            if t >= today.charge_start else 0
        state["ambient_c"] = round(8.0 + 6.0 * math.sin((t % DAY) / DAY * 2 * math.pi - 2.0), 1)
        return state

    def _active(self, vid: str, t: float) -> bool:
        s = self.state(vid, t)
        return bool(s["driving"] or s["charging"])

    def message_time(self, vid: str, t: float) -> int:
        """When the module last reported: every 60 s while active, every 600 s parked."""
        if self._active(vid, t):
            return int(t // 60 * 60)
        idle = int(t // 600 * 600)
        day = self._day(vid, int(t // DAY))
        ends = [tr.end for tr in day.trips] + [day.charge_end]
        recent = [e for e in ends if idle < e <= t]
        if recent:
            return int(max(recent) // 60 * 60)
        return idle

    # -- payloads ----------------------------------------------------------------------------

    def _dist(self, vehicle: SimVehicle, km: float) -> float:
        return km / MILE_KM if vehicle.units == "M" else km

    def _s_part(self, vehicle: SimVehicle, st: dict[str, Any]) -> dict[str, Any]:
        soc = st["soc"]
        full_range = vehicle.battery_kwh / CONSUMPTION_KWH_PER_KM
        charging = st["charging"]
        battery_kw = CHARGE_KW * st["efficiency"]
        remaining_min = (int((FULL_SOC - soc) / 100.0 * vehicle.battery_kwh / battery_kw * 60)
                         if charging else 0)
        return {
            "soc": f"{soc:.1f}", "units": vehicle.units,
            "idealrange": str(int(self._dist(vehicle, full_range * soc / 100.0))),
            "estimatedrange": str(int(self._dist(vehicle, full_range * soc / 100.0 * 0.92))),
            "idealrange_max": str(int(self._dist(vehicle, full_range))),
            "mode": "standard",
            "chargestate": "charging" if charging else ("done" if st["plugged"] else "stopped"),
            "cac100": "120.5", "soh": "97", "cooldown_active": "-1",
            "linevoltage": "230" if charging else "0",
            "chargecurrent": f"{CHARGE_KW * 1000 / 230 / 3:.2f}" if charging else "0.00",
            "chargepower": f"{battery_kw:.2f}" if charging else "0.00",
            "chargepowerinput": f"{CHARGE_KW:.2f}" if charging else "0.00",
            "chargerefficiency": f"{st['efficiency'] * 100:.2f}" if charging else "0.00",
            "battvoltage": f"{360 + soc * 0.4:.2f}",
            "chargetype": "0", "chargelimit": "16",
            "chargeduration": str(st["charge_seconds"]), "chargeb4": "0",
            "chargekwh": str(int(st["charge_kwh"] * 10)),
            "chargesubstate": "3" if charging else "7",
            "chargetimermode": "0", "chargestarttime": "0", "chargetimerstale": "-1",
            "charge_etr_full": str(remaining_min), "charge_etr_limit": str(remaining_min),
            "charge_limit_range": "0", "charge_limit_soc": str(int(FULL_SOC)),
            "cooldown_tbattery": "0", "cooldown_timelimit": "0", "charge_estimate": "0",
            "charge_etr_range": "-1", "charge_etr_soc": str(remaining_min),
        }

    def _d_part(self, vehicle: SimVehicle, st: dict[str, Any], t: float) -> dict[str, Any]:
        on = st["driving"]
        tenth = 10.0
        return {
            "fl_dooropen": 0, "fr_dooropen": 0, "cp_dooropen": 4 if st["plugged"] else 0,
            "pilotpresent": 8 if st["plugged"] else 0, "charging": 16 if st["charging"] else 0,
            "handbrake": 0 if on else 64, "caron": 128 if on else 0, "carlocked": 0 if on else 8,
            "valetmode": 0, "bt_open": 0, "tr_open": 0, "carawake": 2 if (on or st["charging"]) else 0,
            "charging_12v": 16 if (on or st["charging"]) else 0, "alarmsounding": 0,
            "temperature_pem": "31" if on else "14", "temperature_motor": "38" if on else "13",
            "temperature_battery": "24" if (on or st["charging"]) else "12",
            "temperature_charger": "35" if st["charging"] else "11",
            "temperature_ambient": f"{st['ambient_c']:.1f}", "temperature_cabin": "21.5" if on else "14.0",
            "tripmeter": str(int(self._dist(vehicle, st["trip_km"]) * tenth)),
            "odometer": str(int(self._dist(vehicle, st["odometer_km"]) * tenth)),
            "speed": f"{st['speed']:.1f}",            # v3 firmware: km/h whatever the units
            "parkingtimer": "0" if on or st["parked_since"] is None else str(int(t - st["parked_since"])),
            "staletemps": "1", "staleambient": "1",
            "vehicle12v": "14.2" if (on or st["charging"]) else "12.6", "vehicle12v_ref": "12.6",
            "vehicle12v_current": "15.3" if on else "0.4",
        }

    def _status(self, vehicle: SimVehicle, kind: str, now: float) -> dict[str, Any]:
        if not vehicle.connected:
            return {}
        when = self.message_time(vehicle.id, now)
        st = self.state(vehicle.id, when)
        s_part = self._s_part(vehicle, st)
        d_part = self._d_part(vehicle, st, when)
        stamp = {"m_msgtime_s": _ts(when), "m_msgage_s": int(now - when),
                 "m_msgtime_d": _ts(when), "m_msgage_d": int(now - when)}
        if kind == "status":
            keep_s = ("soc", "units", "idealrange", "idealrange_max", "estimatedrange", "mode",
                      "chargestate", "cac100", "soh", "cooldown_active")
            out = {k: s_part[k] for k in keep_s}
            out.update(d_part)
        else:
            out = dict(s_part)
            keep_d = ("cp_dooropen", "pilotpresent", "charging", "caron", "temperature_pem",
                      "temperature_motor", "temperature_battery", "temperature_charger",
                      "temperature_ambient", "temperature_cabin", "carawake", "staletemps",
                      "staleambient", "charging_12v", "vehicle12v", "vehicle12v_ref",
                      "vehicle12v_current")
            out.update({k: d_part[k] for k in keep_d})
        out.update(stamp)
        return out

    def _location(self, vehicle: SimVehicle, now: float) -> dict[str, Any]:
        if not vehicle.connected:
            return {}
        when = self.message_time(vehicle.id, now)
        st = self.state(vehicle.id, when)
        lat, lon = st["position"]
        power_kw = -CHARGE_KW * st["efficiency"] if st["charging"] else (12.5 if st["driving"] else 0.0)
        return {
            "latitude": f"{lat:.6f}", "longitude": f"{lon:.6f}", "direction": "215" if st["driving"] else "0",
            "altitude": "4", "gpslock": "1", "stalegps": "1",
            "speed": f"{self._dist(vehicle, st['speed']):.1f}",
            "tripmeter": str(int(self._dist(vehicle, st["trip_km"]) * 10)),
            "drivemode": "0",
            "power": f"{power_kw:.3f}",
            "energyused": f"{st['trip_km'] * CONSUMPTION_KWH_PER_KM:.3f}",
            "energyrecd": f"{st['trip_km'] * 0.02:.3f}",
            "invpower": "11.8" if st["driving"] else "0", "invefficiency": "94" if st["driving"] else "0",
            "m_msgtime_l": _ts(when), "m_msgage_l": int(now - when),
        }

    def _tpms(self, vehicle: SimVehicle, now: float) -> dict[str, Any]:
        if not vehicle.connected:
            return {}
        when = int(now // 3600 * 3600)   # the module sends TPMS hourly
        age = int(now - when)
        kpa = {"fl": 250.0, "fr": 251.0, "rl": 262.0, "rr": 261.0}
        temps = {"fl": 14.0, "fr": 15.0, "rl": 13.0, "rr": 13.0}
        if vehicle.tpms == "W":
            out: dict[str, Any] = {"m_msgtime_w": _ts(when), "m_msgage_w": age, "staletpms": "1"}
            for wheel in ("fr", "rr", "fl", "rl"):
                out[f"{wheel}_pressure"] = f"{kpa[wheel] * 0.14503773773020923:.1f}"
                out[f"{wheel}_temperature"] = f"{temps[wheel]:.0f}"
            return out
        out = {"m_msgtime_y": _ts(when), "m_msgage_y": age, "m_msgtime_w": _ts(when), "m_msgage_w": age,
               "stale_pressure": "1", "stale_temperature": "1", "stale_health": "-1", "stale_alert": "1",
               "staletpms": "1"}
        for wheel in ("fl", "fr", "rl", "rr"):
            out[f"{wheel}_pressure_kpa"] = f"{kpa[wheel]:.1f}"
            out[f"{wheel}_pressure"] = kpa[wheel] * 0.14503773773020923
            out[f"{wheel}_temperature"] = f"{temps[wheel]:.0f}"
            out[f"{wheel}_alert"] = "0"
        return out

    # -- history -----------------------------------------------------------------------------

    def _trip_record(self, vehicle: SimVehicle, t: int, trip: Trip, at_end: bool) -> str:
        st = self.state(vehicle.id, t)
        lat, lon = st["position"]
        place = (vehicle.work if trip.outbound else vehicle.home) if at_end else \
            (vehicle.home if trip.outbound else vehicle.work)
        location = "Work; Main Street 5" if place == vehicle.work else "Home"
        km = trip.km if at_end else 0.0
        full = vehicle.battery_kwh / CONSUMPTION_KWH_PER_KM
        used = km * CONSUMPTION_KWH_PER_KM
        cells = [
            "1", f"{lat:.8f}", f"{lon:.8f}", "4.0", location, f"{st['odometer_km']:.1f}", f"{km:.1f}",
            str(trip.end - trip.start if at_end else 0), "0", f"{st['soc']:.1f}",
            f"{full * st['soc'] / 100 * 0.92:.1f}", f"{full * st['soc'] / 100:.1f}", f"{full:.1f}",
            f"{used:.3f}", f"{km * 0.02:.3f}",
            "" if vehicle.units == "M" else f"{used / 0.37:.3f}",
            "" if vehicle.units == "M" else f"{km * 0.05:.3f}",
            "97.000", "", "120.500", f"{st['odometer_km'] * 0.16:.3f}", f"{st['odometer_km'] * 0.02:.3f}",
            "", "", f"{st['ambient_c']:.1f}", "21.5", "18.0", "31.0", "38.0", "25.0",
            "13", "15", "250", "262", "", "",
        ]
        return ",".join(cells)

    def _grid_record(self, vehicle: SimVehicle, t: int, state: str, seconds: int, kwh: float,
                     efficiency: float = 0.92) -> str:
        """A `*-LOG-Grid` record: `kwh` into the battery, `kwh / efficiency` from the wall."""
        st = self.state(vehicle.id, t)
        lat, lon = vehicle.home
        full = vehicle.battery_kwh / CONSUMPTION_KWH_PER_KM
        total_grid = st["odometer_km"] * CONSUMPTION_KWH_PER_KM / 0.92
        cells = [
            "1", f"{lat:.6f}", f"{lon:.6f}", "4.0", "Home", "type2", state,
            "onrequest" if state == "charging" else "", "standard", "16.0", "0.0", f"{FULL_SOC:.1f}",
            "", "", "", "", "0.0", "0.0", "0.0",
            str(seconds), f"{kwh:.3f}", f"{kwh / efficiency:.3f}", f"{total_grid:.3f}",
            "0", "0.000", "0.000", "0.000",
            f"{st['soc']:.1f}", f"{full * st['soc'] / 100 * 0.92:.1f}", f"{full * st['soc'] / 100:.1f}",
            f"{full:.1f}", f"{360 + st['soc'] * 0.4:.1f}", "18.0", "35.0" if state == "charging" else "15.0",
            "25.0", f"{st['ambient_c']:.1f}", "14.0", "97.000", "", "120.500",
            f"{st['odometer_km'] * 0.16:.3f}", f"{st['odometer_km'] * 0.02:.3f}", "", "",
            f"{st['odometer_km']:.1f}",
        ]
        if vehicle.extra_grid_field:
            cells.append("7.250")      # a field newer firmware added
        return ",".join(cells)

    def history_records(self, vid: str, now: float) -> dict[str, list[tuple[str, str, str]]]:
        """Every record the server still holds: type -> [(h_timestamp, h_recordnumber, h_data)]."""
        vehicle = self.vehicles[vid]
        out: dict[str, list[tuple[str, str, str]]] = {}
        if not vehicle.connected:
            return out
        first_day = int(now // DAY) - self.history_days
        self._warm(vid, first_day)
        for day in range(first_day, int(now // DAY) + 1):
            today = self._day(vid, day)
            entries: list[tuple[int, str, str, str]] = []
            entries.append((day * DAY + 5, "*-OVM-Utilisation", "0",
                            f"{day % 30},rx,{1200 + day % 97},tx,{800 + day % 53}"))
            entries.append((day * DAY + 5, "*-OVM-Utilisation", "1",
                            f"{day % 30},rx,{95000 + day % 89},tx,{42000 + day % 61}"))
            # Unplugged for the morning drive: the charge state leaves "done".
            entries.append((today.trips[0].start - 60, "*-LOG-Grid", "2",
                            self._grid_record(vehicle, today.trips[0].start - 60, "stopped", 0, 0.0)))
            for trip in today.trips:
                entries.append((trip.start + 3, "*-LOG-Trip", "1",
                                self._trip_record(vehicle, trip.start + 3, trip, False)))
                entries.append((trip.end + 3, "*-LOG-Trip", "1",
                                self._trip_record(vehicle, trip.end + 3, trip, True)))
            entries.append((today.charge_start, "*-LOG-Grid", "2",
                            self._grid_record(vehicle, today.charge_start, "charging", 0, 0.0)))
            seconds = today.charge_end - today.charge_start
            entries.append((today.charge_end, "*-LOG-Grid", "2",
                            self._grid_record(vehicle, today.charge_end, "done", seconds,
                                              seconds / 3600 * today.battery_kw, today.efficiency)))
            for t, kind, number, data in entries:
                if t <= now and t >= now - self.history_days * DAY:
                    out.setdefault(kind, []).append((_ts(t), number, data))
        for rows in out.values():
            rows.sort(key=lambda r: (r[0], int(r[1])))
        return out

    # -- HTTP --------------------------------------------------------------------------------

    def _authenticate(self, user: str | None, password: str | None) -> bool:
        return (user is not None and password is not None and
                (self.users.get(user) == password or self.tokens.get(user) == password))

    def _new_session(self, user: str, now: float) -> str:
        session_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        self.sessions[session_id] = Session(user, now)
        self.logins += 1
        return session_id

    def _expire(self, now: float) -> None:
        for sid in [s for s, sess in self.sessions.items() if now - sess.last_used > self.idle_timeout]:
            del self.sessions[sid]

    def handle(self, request: SimRequest) -> SimResponse:
        with self._lock:
            return self._handle(request)

    def _handle(self, request: SimRequest) -> SimResponse:
        now = self.clock()
        self._expire(now)
        self.requests.append((request.method, request.path))
        parts = [unquote(p) for p in request.path.split("/")]
        if len(parts) < 3 or parts[0] != "" or parts[1] != "api":
            return _text("Unrecognised API call", 404)
        function, rest = parts[2], parts[3:]
        method = request.method.upper()
        known = {("GET", "cookie"), ("DELETE", "cookie"), ("GET", "vehicles"), ("GET", "vehicle"),
                 ("DELETE", "vehicle"), ("GET", "status"), ("GET", "charge"), ("GET", "location"),
                 ("GET", "tpms"), ("GET", "historical"), ("GET", "protocol")}
        if (method, function) not in known:
            return _text("Unrecognised API call", 404)
        session_id = None
        for chunk in (request.headers.get("cookie") or "").split(";"):
            name, _, value = chunk.strip().partition("=")
            if name == "ovmsapisession":
                session_id = value
        session = self.sessions.get(session_id) if session_id else None
        user = session.user if session else None
        if user is None:
            q_user, q_pass = request.query.get("username"), request.query.get("password")
            if self._authenticate(q_user, q_pass):
                user = q_user
        if user is None:
            return _text("Authentication failed", 401)
        if session is not None:
            session.last_used = now
        if function == "cookie":
            if method == "GET":
                if session_id in self.sessions:
                    del self.sessions[session_id]
                sid = self._new_session(user, now)
                return _text("Login ok", 200, {"Set-Cookie": f"ovmsapisession={sid}"})
            if session_id in self.sessions:
                del self.sessions[session_id]
            self.logouts += 1
            return _text("Logout ok", 200)
        if function == "vehicles":
            return _json([{"id": v.id, "v_net_connected": 1 if v.connected else 0,
                           "v_apps_connected": sum(1 for s in self.sessions.values() if v.id in s.peers),
                           "v_btcs_connected": 0} for v in self.vehicles.values()])
        vehicle = self.vehicles.get(rest[0]) if rest else None
        if vehicle is None:
            return _text("Forbidden", 403)
        if function == "vehicle":
            if method == "DELETE":
                if session:
                    session.peers.discard(vehicle.id)
                return SimResponse(200, b"Disconnect OK\n", {"Content-Type": "application/json"})
            first = not any(vehicle.id in s.peers for s in self.sessions.values())
            if session:
                session.peers.add(vehicle.id)
            out: dict[str, Any] = {"v_net_connected": 1 if vehicle.connected else 0,
                                   "v_apps_connected": sum(1 for s in self.sessions.values()
                                                           if vehicle.id in s.peers),
                                   "v_btcs_connected": 0, "v_first_peer": 1 if first else 0}
            if vehicle.connected:
                when = self.message_time(vehicle.id, now)
                out.update({"m_msgtime_s": _ts(when), "m_msgage_s": int(now - when)})
            return _json(out)
        if function in ("status", "charge"):
            return _json(self._status(vehicle, function, now))
        if function == "location":
            return _json(self._location(vehicle, now))
        if function == "tpms":
            return _json(self._tpms(vehicle, now))
        if function == "protocol":
            return _json([])
        # historical
        since = request.query.get("since") or "0000-00-00"
        records = self.history_records(vehicle.id, now)
        if len(rest) < 2:
            summary = []
            for kind in sorted(records):
                rows = [r for r in records[kind] if r[0] > since]
                if rows:
                    summary.append({"h_recordtype": kind, "distinctrecs": str(len({r[1] for r in rows})),
                                    "totalrecs": str(len(rows)),
                                    "totalsize": str(sum(len(kind) + len(r[2]) + len(vehicle.id) + 20
                                                         for r in rows)),
                                    "first": rows[0][0], "last": rows[-1][0]})
            return _json(summary)
        kind = "/".join(rest[1:])
        return _json([{"h_timestamp": ts, "h_recordnumber": number, "h_data": data}
                      for ts, number, data in records.get(kind, []) if ts > since])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Simulated OVMS server v3 HTTP API")
    parser.add_argument("--port", type=int, default=6868)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--idle-timeout", type=float, default=120.0, help="session idle timeout (s)")
    parser.add_argument("--history-days", type=int, default=14)
    parser.add_argument("--username", default="demo")
    parser.add_argument("--password", default="demo-password")
    args = parser.parse_args(argv)
    log_to_stdout()
    sim = OvmsSim(seed=args.seed, users={args.username: args.password}, idle_timeout=args.idle_timeout,
                  history_days=args.history_days)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with SimServer(sim, port=args.port, host=args.host) as server:
        log.info("OVMS simulator on %s (user %s; vehicles %s)", server.url, args.username,
                 ", ".join(sim.vehicles))
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
