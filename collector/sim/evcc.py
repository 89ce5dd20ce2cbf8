"""A simulated evcc: `/api/state`, `/api/sessions`, `/api/tariff/<type>`, and an MQTT publisher.

The site follows the clock: PV on a day curve with seeded clouds, a home load, a battery that
takes the surplus, and loadpoints whose charging sessions start and finish on a seeded
schedule, so the session list grows as time passes. Everything is a function of (seed, time),
so a frozen clock gives the same answers every time.

Meters advance only with the energy that flows: a loadpoint's `chargeTotalImport` is the
energy of its sessions so far (a session's `meterStart`/`meterStop` are its readings), and the
site's PV, grid-import and battery-discharge meters integrate their powers in 5-minute steps
from `start` (the power in the middle of each step stands for the whole step).

Shapes follow `version`, any evcc version from 0.130 ("0.130", "0.206", "0.207", "0.301" name
0.130.9, 0.206.1, 0.207.5 and 0.301.1):
- before 0.133: `gridPower`/`gridPowers`/`gridCurrents`/`gridEnergy`, `vehicles` as an array
  (real evcc has had a map since 0.123; the array keeps older releases' shape covered), flat
  `battery*` fields only; from 0.133 `grid: {...}`, `vehicles` as a map, flat `battery*`
  fields plus a `battery` array of devices;
- before 0.203: loadpoint `chargeCurrent` and tariff rates with `price`; later `offeredCurrent`
  and `value`;
- before 0.207: answers wrapped in `{"result": ...}`; later bare;
- from 0.301: `battery: {power, soc, capacity, energy, devices: [...]}`.
The MQTT publisher (below) follows evcc's `server/mqtt.go` for the same version.

Run it alone: `python -m collector.sim.evcc --port 7070 [--version 0.300.6] [--mqtt-port 1883]`.
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import logging
import math
import random
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from collector.sim.base import SimRequest, SimResponse

log = logging.getLogger(__name__)

# Short names of the shapes, and the release each stands for.
VERSIONS = {"0.130": "0.130.9", "0.206": "0.206.1", "0.207": "0.207.5", "0.301": "0.301.1"}
OLDEST = (0, 130, 0)
TARIFF_TYPES = ("grid", "feedin", "co2", "planner", "solar")
DAY = 86400.0
METER_STEP = 300.0                # seconds per integration step of the site meters


_ROUNDED = frozenset({float, dict, list})


def _round_floats(value: Any) -> Any:
    # Exact types, and no call for values that pass unchanged: the history generator builds
    # hundreds of thousands of states through here.
    kind = type(value)
    if kind is float:
        return round(value, 3) + 0.0 if math.isfinite(value) else None
    if kind is dict:
        return {k: _round_floats(v) if type(v) in _ROUNDED else v for k, v in value.items()}
    if kind is list:
        return [_round_floats(v) if type(v) in _ROUNDED else v for v in value]
    return value


def parse_version(text: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) of "0.300.6", "0.300.6 (3f2a1b)" or "0.207"; None for other text."""
    match = re.match(r"\s*(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    if match is None:
        return None
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def _noise(seed: int, *key: object) -> float:
    """A deterministic number in [0, 1) for (seed, key)."""
    digest = hashlib.sha256(repr((seed,) + key).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@functools.lru_cache(maxsize=16)
def _noise_blocks(seed: int, kind: str, first: int, last: int) -> Any:
    """`_noise(seed, kind, block)` for blocks first..last, as an array (cached: every simulator
    of a process that starts at the same anchor needs the same years of it)."""
    import numpy as np

    return np.array([_noise(seed, kind, block) for block in range(first, last + 1)])


def _block_noise(seed: int, kind: str, block_s: int, times: Any) -> Any:
    """`_noise(seed, kind, int(t // block_s))` for each of `times`."""
    import numpy as np

    blocks = (times // block_s).astype(np.int64)
    first, last = int(blocks[0]), int(blocks[-1])
    return _noise_blocks(seed, kind, first, last)[blocks - first]


@dataclass(frozen=True)
class LoadpointSpec:
    title: str
    vehicle_name: str | None      # None: a heat pump or another load without a vehicle
    vehicle_title: str | None
    period_h: float               # a session starts about every period_h hours
    max_current: float = 16.0
    phases: int = 3
    capacity_kwh: float = 60.0


DEFAULT_LOADPOINTS = (
    LoadpointSpec("Garage", "model3", "Model 3", period_h=10.0),
    LoadpointSpec("Heat pump", None, None, period_h=14.0, max_current=10.0, phases=1),
)


@dataclass
class Session:
    id: int
    lp: int                       # loadpoint index, from 0
    created: float                # unix seconds
    finished: float
    charge_s: float               # seconds charging
    power_w: float


class EvccSim:
    def __init__(self, version: str = "0.301", seed: int = 1, loadpoints: int = 2,
                 clock: Callable[[], float] = time.time, start: float | None = None,
                 tz_hours: int = 1, tariffs: tuple[str, ...] = ("grid", "feedin", "co2", "solar"),
                 auth: tuple[str, str] | None = None, site_title: str = "Home") -> None:
        self.version = VERSIONS.get(version, version)   # the full release, e.g. "0.300.6"
        release = parse_version(self.version)
        if release is None or release < OLDEST:
            raise ValueError(f"version must be an evcc release from 0.130 (e.g. 0.207.5), "
                             f"or one of {', '.join(VERSIONS)}; got {version!r}")
        self.release: tuple[int, int, int] = release
        self.seed = seed
        self.clock = clock
        self.loadpoints = DEFAULT_LOADPOINTS[:max(1, min(2, loadpoints))]
        self.tz = timezone(timedelta(hours=tz_hours))
        now = clock()
        # History starts three days before the current day, so a first sync has sessions.
        self.start = start if start is not None else math.floor(now / DAY) * DAY - 3 * DAY
        self.tariffs = tariffs
        self.auth = auth
        self.site_title = site_title
        self.corrections: dict[int, dict[str, Any]] = {}
        self.requests: list[tuple[str, dict]] = []
        self.ignore_month_filter = False  # as evcc versions before the filter existed

    # -- the model ------------------------------------------------------------------------

    def _sessions_of(self, lp: int, until: float) -> Iterator[tuple[float, float, float, float]]:
        spec = self.loadpoints[lp]
        n = 0
        while True:
            created = (self.start
                       + (n + 0.3 + 0.4 * _noise(self.seed, "start", lp, n)) * spec.period_h * 3600)
            if created > until:
                return
            connected = (1.5 + 3.0 * _noise(self.seed, "len", lp, n)) * 3600
            charge = connected * (0.4 + 0.5 * _noise(self.seed, "charge", lp, n))
            if n % 7 == 3:
                charge = 0.0  # a short visit without charging: chargeDuration 0
            power = 230.0 * spec.max_current * spec.phases * (0.7 + 0.3 * _noise(self.seed, "p", lp, n))
            yield created, created + connected, charge, power
            n += 1

    def sessions(self, now: float) -> list[Session]:
        """Every session created up to `now`, ids in creation order (as evcc's database)."""
        raw = [(created, lp, finished, charge, power)
               for lp in range(len(self.loadpoints))
               for created, finished, charge, power in self._sessions_of(lp, now)]
        raw.sort()
        return [Session(i + 1, lp, created, finished, charge, power)
                for i, (created, lp, finished, charge, power) in enumerate(raw)]

    def _active(self, lp: int, now: float) -> Session | None:
        for session in reversed(self.sessions(now)):
            if session.lp == lp and session.created <= now < session.finished:
                return session
        return None

    def _lp_sessions(self, lp: int, now: float) -> list[Session]:
        """The loadpoint's sessions created up to `now`, oldest first."""
        return [s for s in self.sessions(now) if s.lp == lp]

    def charged_wh(self, lp: int, now: float) -> float:
        """Energy the loadpoint has delivered from `start` up to `now` (its meter's advance)."""
        return sum(s.power_w * max(0.0, min(now - s.created, s.charge_s)) / 3600.0
                   for s in self._lp_sessions(lp, now))

    def meter_kwh(self, lp: int, now: float) -> float:
        """`chargeTotalImport`: a base reading plus what the loadpoint has delivered."""
        return 1500.0 + 700.0 * lp + self.charged_wh(lp, now) / 1000.0

    def _lp_power_at(self, lp: int, times: Any) -> Any:
        """Charging power of a loadpoint at each of `times` (a numpy array of unix seconds)."""
        import numpy as np

        rows = self._lp_sessions(lp, float(times[-1])) if len(times) else []
        if not rows:
            return np.zeros(len(times))
        created = np.array([r.created for r in rows])
        ends = created + np.array([r.charge_s for r in rows])
        power = np.array([r.power_w for r in rows])
        idx = np.searchsorted(created, times, side="right") - 1
        ok = idx >= 0
        idx = np.where(ok, idx, 0)
        return np.where(ok & (times < ends[idx]), power[idx], 0.0)

    def _site_meters(self, now: float) -> tuple[float, float, float]:
        """PV, grid-import and battery-discharge energy (Wh) from `start` up to `now`."""
        import numpy as np

        steps = max(0, int((now - self.start) // METER_STEP))
        cum = getattr(self, "_meter_cum", None)
        if cum is None or len(cum[0]) <= steps + 1:
            have = 0 if cum is None else len(cum[0]) - 1
            per_day = int(DAY // METER_STEP)
            upto = (steps // per_day + 2) * per_day     # whole days ahead: extended rarely
            mids = self.start + (np.arange(have, upto) + 0.5) * METER_STEP
            pv, grid, battery = self._site_powers(mids)
            new = [x * METER_STEP / 3600.0 for x in (pv, np.maximum(grid, 0.0), np.maximum(battery, 0.0))]
            old = self._meter_steps if cum is not None else [np.zeros(0)] * 3
            self._meter_steps: list[Any] = [np.concatenate((a, b)) for a, b in zip(old, new, strict=True)]
            # One cumulative sum over all steps, however they were added: the same readings
            # whatever order of calls extended them (histories of other lengths agree).
            cum = tuple(np.concatenate(([0.0], np.cumsum(x))) for x in self._meter_steps)
            self._meter_cum = cum
        part = (now - self.start - steps * METER_STEP) / METER_STEP
        pv, grid, battery = (float(c[steps] + (c[steps + 1] - c[steps]) * part) for c in cum)
        return pv, grid, battery

    def _site_powers(self, times: Any) -> tuple[Any, Any, Any]:
        """PV, grid and battery power (W) at each of `times`, as `state` computes them."""
        import numpy as np

        # _pv_w and _home_w, vectorized (a history from the anchor has ~10^5 steps per year)
        offset = self.tz.utcoffset(None).total_seconds()
        hour = ((times + offset) % DAY) / 3600.0
        clouds = 0.6 + 0.4 * _block_noise(self.seed, "cloud", 600, times)
        daylight = (hour > 6.0) & (hour < 20.0)
        pv = np.where(daylight, np.round(9800.0 * np.sin(np.pi * (hour - 6.0) / 14.0) ** 2 * clouds, 3), 0.0)
        home = 350.0 + 900.0 * _block_noise(self.seed, "home", 300, times)
        lp_total = sum(self._lp_power_at(lp, times) for lp in range(len(self.loadpoints)))
        battery = -np.clip(pv - home - lp_total, -3000.0, 5000.0)
        grid = home + lp_total - pv - battery
        return pv, grid, battery

    def _pv_w(self, now: float) -> float:
        local = datetime.fromtimestamp(now, self.tz)
        hour = local.hour + local.minute / 60 + local.second / 3600
        if not 6.0 < hour < 20.0:
            return 0.0
        clouds = 0.6 + 0.4 * _noise(self.seed, "cloud", int(now // 600))
        return round(9800.0 * math.sin(math.pi * (hour - 6.0) / 14.0) ** 2 * clouds, 3)

    def _home_w(self, now: float) -> float:
        return round(350.0 + 900.0 * _noise(self.seed, "home", int(now // 300)), 3)

    def _charge(self, lp: int, now: float) -> tuple[Session | None, float]:
        session = self._active(lp, now)
        if session is None:
            return None, 0.0
        charging = now < session.created + session.charge_s
        return session, (session.power_w if charging else 0.0)

    def _battery_soc(self, now: float) -> float:
        local = datetime.fromtimestamp(now, self.tz)
        hour = local.hour + local.minute / 60
        return round(20.0 + 70.0 * max(0.0, math.sin(math.pi * (hour - 8.0) / 16.0)), 1)

    # -- /api/state -----------------------------------------------------------------------

    def state(self, now: float | None = None) -> dict:
        """The state object in the configured version's shape (without the wrapper).

        Floats are rounded to three decimals, as evcc's REST encoder does (MQTT has its own
        encoding: `EvccMqttPublisher` works from `_state`, the values before rounding).
        """
        return _round_floats(self._state(now))

    def _state(self, now: float | None = None) -> dict:
        now = self.clock() if now is None else now
        old = self.release < (0, 133, 0)
        pv = self._pv_w(now)
        home = self._home_w(now)
        lps = []
        lp_total = 0.0
        for index, spec in enumerate(self.loadpoints):
            session, power = self._charge(index, now)
            lp_total += power
            lps.append(self._loadpoint(index, spec, session, power, now))
        surplus = pv - home - lp_total
        battery_power = round(-max(-3000.0, min(5000.0, surplus)), 3)
        soc = self._battery_soc(now)
        grid = round(home + lp_total - pv - battery_power, 3) + 0.0
        pv_wh, grid_wh, battery_wh = self._site_meters(now)
        grid_energy = round(12000.0 + grid_wh / 1000.0, 3)
        per_phase = [round(grid / 3, 3)] * 3
        currents = [round(p / 230.0, 3) for p in per_phase]
        state: dict[str, Any] = {
            "siteTitle": self.site_title,
            "version": self.version,
            "currency": "EUR",
            "pvPower": pv,
            "pvEnergy": round(8000.0 + pv_wh / 1000.0, 3),
            "pv": [{"power": round(pv * 0.6, 3)}, {"power": round(pv * 0.4, 3)}],
            "homePower": home,
            "tariffGrid": self._grid_price(now, now),
            "tariffFeedIn": 0.082,
            "tariffCo2": self._co2(now, now),
            "tariffSolar": round(pv * 1.05, 3),
            "tariffPriceHome": round(self._grid_price(now, now) * 0.6, 3),
            "tariffPriceLoadpoints": round(self._grid_price(now, now) * 0.5, 3),
            "tariffCo2Home": 180.5,
            "tariffCo2Loadpoints": 150.25,
            "greenShareHome": round(min(1.0, pv / max(home, 1.0)), 3),
            "greenShareLoadpoints": (round(min(1.0, max(0.0, pv - home) / max(lp_total, 1.0)), 3)
                                     if lp_total else 0),
            "statistics": {period: {"avgCo2": 210.4, "avgPrice": 0.241, "chargedKWh": kwh,
                                    "solarPercentage": 41.8}
                           for period, kwh in (("30d", 310.2), ("365d", 3120.9),
                                               ("thisYear", 2850.1), ("total", 9120.7))},
            "loadpoints": lps,
            "auxPower": None,
            "fatal": None,
        }
        vehicles = [spec for spec in self.loadpoints if spec.vehicle_name]
        if old:
            state["gridPower"] = grid
            state["gridPowers"] = per_phase
            state["gridCurrents"] = currents
            state["gridEnergy"] = grid_energy
            state["vehicles"] = [{"name": s.vehicle_name, "title": s.vehicle_title} for s in vehicles]
        else:
            state["grid"] = {"power": grid, "energy": grid_energy, "powers": per_phase,
                             "currents": currents}
            state["vehicles"] = {s.vehicle_name: {"title": s.vehicle_title, "capacity": s.capacity_kwh,
                                                  "minSoc": 0, "limitSoc": 80, "plan": None}
                                 for s in vehicles}
        device = {"power": battery_power, "soc": soc, "capacity": 10.24,
                  "energy": round(900.0 + battery_wh / 1000.0, 3), "controllable": False}
        if self.release >= (0, 301, 0):
            state["battery"] = {"power": battery_power, "soc": soc, "capacity": 10.24,
                                "energy": device["energy"], "devices": [device]}
        else:
            state.update(batteryPower=battery_power, batterySoc=soc, batteryCapacity=10.24,
                         batteryEnergy=device["energy"])
            if not old:
                state["battery"] = [device]
        return state

    def _loadpoint(self, index: int, spec: LoadpointSpec, session: Session | None, power: float,
                   now: float) -> dict:
        connected = session is not None
        charging = power > 0
        phases = spec.phases if charging else 0
        current = round(power / (230.0 * spec.phases), 3) if charging else 0.0
        charged_s = min(now - session.created, session.charge_s) if session else 0.0
        charged_wh = round(session.power_w * charged_s / 3600, 3) if session else 0.0
        vehicle = connected and spec.vehicle_name is not None
        lp: dict[str, Any] = {
            "title": spec.title,
            "mode": "pv" if index == 0 else "now",
            "connected": connected,
            "charging": charging,
            "enabled": charging,
            "chargePower": power,
            "chargeCurrents": [current] * spec.phases + [0.0] * (3 - spec.phases),
            # a Go []float64: an unused phase is 0, never null
            "chargeVoltages": [230.1, 229.8, 231.2] if spec.phases == 3 else [230.4, 0.0, 0.0],
            "phasesActive": phases,
            "minCurrent": 6,
            "maxCurrent": spec.max_current,
            "chargedEnergy": charged_wh,
            "sessionEnergy": charged_wh,
            "chargeDuration": int(charged_s),          # durations: whole seconds
            "connectedDuration": int(now - session.created) if session else 0,
            "chargeTotalImport": round(self.meter_kwh(index, now), 3),
            "vehicleName": spec.vehicle_name if vehicle else "",
            "vehicleTitle": spec.vehicle_title if vehicle else "",
            "vehicleSoc": round(30.0 + 100.0 * charged_wh / 1000 / spec.capacity_kwh, 1) if vehicle else 0,
            "vehicleRange": round(120.0 + 6.0 * charged_wh / 1000) if vehicle else 0,  # int64
            "vehicleOdometer": 23456.7 if vehicle else 0,
            "effectiveLimitSoc": 80 if vehicle else 0,
            "sessionSolarPercentage": 63.5 if session else 0,
            "sessionPrice": round(charged_wh / 1000 * 0.21, 3) if session else None,
            "sessionPricePerKWh": 0.21 if session else None,
            "sessionCo2PerKWh": 155.0 if session else None,
            "planTime": None,
            "planProjectedStart": None,
        }
        if self.release < (0, 203, 0):
            lp["chargeCurrent"] = current
        else:
            lp["offeredCurrent"] = current
        return lp

    # -- /api/sessions --------------------------------------------------------------------

    def _time(self, t: float, digits: int) -> str:
        local = datetime.fromtimestamp(t, self.tz)
        base = local.strftime("%Y-%m-%dT%H:%M:%S")
        fraction = f"{t % 1:.9f}"[2:2 + digits] if digits else ""
        offset = local.strftime("%z")
        return f"{base}{'.' + fraction if fraction else ''}{offset[:3]}:{offset[3:]}"

    def session_rows(self, now: float | None = None, year: int | None = None,
                     month: int | None = None) -> list[dict]:
        """`/api/sessions`: newest first; optionally one local month."""
        now = self.clock() if now is None else now
        rows = []
        for s in self.sessions(now):
            spec = self.loadpoints[s.lp]
            local = datetime.fromtimestamp(s.created, self.tz)
            if year and month and (local.year, local.month) != (year, month):
                continue
            running = s.finished > now
            digits = s.id % 10  # 0..9 fractional digits, as seen in real databases
            energy_kwh = s.power_w * s.charge_s / 3600 / 1000
            meter_start = round(self.meter_kwh(s.lp, s.created), 3)
            vehicle = spec.vehicle_name is not None
            row: dict[str, Any] = {
                "id": s.id,
                "created": self._time(s.created, digits),
                "finished": None if running else self._time(s.finished, 9 - digits),
                "loadpoint": spec.title,
                "identifier": "",
                "vehicle": spec.vehicle_title if vehicle else "",
                "odometer": 23000.0 + 40.0 * s.id if vehicle else None,
                "meterStart": meter_start if vehicle else None,
                "meterStop": None if running or not vehicle else round(meter_start + energy_kwh, 3),
                "chargedEnergy": energy_kwh + 1e-13 * s.id,  # float noise as in real rows
                "chargeDuration": int(s.charge_s * 1e9),
                "socStart": 30 if vehicle else None,
                "socEnd": (round(30 + 100 * energy_kwh / spec.capacity_kwh, 1) if vehicle else None),
                "addedRange": None,
                "solarPercentage": round(100 * _noise(self.seed, "solar", s.id), 3),
                "price": round(energy_kwh * 0.21, 3),
                "pricePerKWh": 0.21,
                "co2PerKWh": None if s.id % 5 == 0 else 160.5,
            }
            row.update(self.corrections.get(s.id, {}))
            rows.append(row)
        rows.reverse()
        return rows

    def correct_session(self, session_id: int, **changes: Any) -> None:
        """Change a stored session, as evcc does when it fixes up a recent one."""
        self.corrections.setdefault(session_id, {}).update(changes)

    # -- /api/tariff ----------------------------------------------------------------------

    def _grid_price(self, t: float, now: float) -> float:
        revision = int(now // (6 * 3600))  # the forecast is revised every six hours
        hour = datetime.fromtimestamp(t, self.tz).hour
        return round(0.22 + 0.08 * math.sin(math.pi * (hour - 4) / 12)
                     + 0.02 * _noise(self.seed, "price", int(t // 3600), revision), 3)

    def _co2(self, t: float, now: float) -> float:
        return round(350 - 150 * max(0.0,
                                     math.sin(math.pi * (datetime.fromtimestamp(t, self.tz).hour - 6) / 14))
                     + 20 * _noise(self.seed, "co2", int(t // 3600)), 1)

    def tariff(self, kind: str, now: float | None = None) -> dict:
        now = self.clock() if now is None else now
        first = math.floor(now / 3600) * 3600
        hours = 48 if kind == "solar" else 24
        key = "price" if self.release < (0, 203, 0) else "value"
        rates = []
        for n in range(hours):
            start = first + n * 3600
            if kind == "grid":
                value: float = self._grid_price(start, now)
            elif kind == "planner":
                value = round(self._grid_price(start, now) * 0.95, 3)
            elif kind == "feedin":
                value = 0.082
            elif kind == "co2":
                value = self._co2(start, now)
            else:
                value = self._pv_w(start + 1800)
            rates.append({"start": self._time(start, 0), "end": self._time(start + 3600, 0), key: value})
        return {"rates": rates}

    # -- HTTP -----------------------------------------------------------------------------

    def _wrap(self, content: Any) -> Any:
        return {"result": content} if self.release < (0, 207, 0) else content

    def handle(self, request: SimRequest) -> SimResponse:
        self.requests.append((request.path, dict(request.query)))
        if self.auth is not None:
            expected = "Basic " + base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
            if request.headers.get("Authorization") != expected:
                return SimResponse.text("401 Unauthorized\n", 401,
                                        {"WWW-Authenticate": 'Basic realm="evcc"'})
        if request.method != "GET":
            return SimResponse.json({"error": "method not allowed"}, 405)
        path = request.path.rstrip("/")
        if path == "/api/state":
            return SimResponse.json(self._wrap(self.state()))
        if path == "/api/sessions":
            try:
                year = int(request.query["year"]) if "year" in request.query else None
                month = int(request.query["month"]) if "month" in request.query else None
            except ValueError:
                return SimResponse.json({"error": "invalid year or month"}, 400)
            if self.ignore_month_filter:
                year = month = None
            return SimResponse.json(self.session_rows(year=year, month=month))  # a bare array
        if path.startswith("/api/tariff/"):
            kind = path.rsplit("/", 1)[1]
            if kind not in self.tariffs:
                return SimResponse.json({"error": f"tariff {kind} not configured"}, 404)
            return SimResponse.json(self._wrap(self.tariff(kind)))
        if path == "/api/health":
            return SimResponse.text("OK")
        return SimResponse.text("404 page not found\n", 404)


# -- MQTT ---------------------------------------------------------------------------------
#
# evcc's MQTT publisher (`server/mqtt.go` and `plugin/mqtt/client.go`, read at 0.207.5,
# 0.300.6, 0.300.7 and 0.301.2), which the publisher below follows for the simulator's version:
# - it connects with the will `<root>/status` = "offline" (retained, QoS 1) and publishes
#   "online" on connect; at start, and again at shutdown, it empties every retained topic under
#   `<root>/` but the status (a zero-length retained message each, until the broker has been
#   quiet for a second); when its process has ended the broker publishes the will;
# - after the start-up cleanup: `<root>/loadpoints` and `<root>/vehicles` (counts), and
#   empty `<root>/site/pv/0..9`, `<root>/site/battery/0..9`, `<root>/site/vehicles/0..9`;
# - every value goes out retained with QoS 1, each from a goroutine of its own: in no
#   guaranteed order. `<root>/updated` (Unix seconds) goes out with a value when the last one is
#   more than a second old, so once per cycle. Measurements are republished every cycle,
#   changed or not; settings (titles, min/max currents, currency, version, vehicles) when they
#   are set, statistics once an hour;
# - encoding: nil "", strings as they are, bools true/false, ints in decimal, durations in
#   whole seconds, floats "%.5g" up to 0.300.6, "%.3f" in 0.300.7 and "%.3f" without
#   trailing zeros from 0.300.8;
# - a top-level []float64 of three (charge currents and voltages; before 0.133 the grid's
#   phases too) goes to `/l1../l3` with the sum at the topic itself; any other slice publishes
#   its length and its items at `/1..n`; a map publishes each key; a struct each exported field
#   under its Go name with the first letter lower-cased (`excessDCPower` where the JSON tag
#   says `excessdcpower`), a zero `omitempty` field as "".

# Published when set, not every cycle (statistics: hourly).
SITE_OCCASIONAL = ("currency", "siteTitle", "statistics", "vehicles", "version")
LOADPOINT_SETTINGS = ("maxCurrent", "minCurrent", "title")
STATISTICS_EVERY = 3600.0
# Keys evcc publishes as Go integers (durations as whole seconds); other numbers are float64.
_GO_INTS = frozenset({"phasesActive", "phasesConfigured", "phasesEnabled", "effectiveLimitSoc",
                      "limitSoc", "minSoc", "vehicleRange", "chargeDuration", "connectedDuration",
                      "chargeRemainingDuration", "priority", "phases"})


@dataclass(frozen=True)
class GoField:
    """One exported field of a Go struct: its Go name names the subtopic."""

    name: str
    value: Any
    omitempty: bool = True
    pointer: bool = False     # a pointer is zero only when nil


@dataclass(frozen=True)
class GoStruct:
    fields: tuple[GoField, ...]


def _zero(value: Any) -> bool:
    """Go's `reflect.Value.IsZero` for the values used here (a nil slice or map is None)."""
    if isinstance(value, GoStruct):
        return all(_zero(f.value) if not f.pointer else f.value is None for f in value.fields)
    return value is None or value is False or value == "" or (
        type(value) in (int, float) and value == 0)


def _float(value: Any) -> float:
    return 0.0 if value is None else float(value)


def _float_ptr(value: Any) -> float | None:
    return None if value is None else float(value)


def _floats(values: Any) -> list[float] | None:
    return None if values is None else [_float(v) for v in values]


def _measurement(item: dict) -> GoStruct:
    """evcc's measurement struct (grid, pv and battery devices; `types.Measurement` in 0.301)."""
    return GoStruct((
        GoField("Title", item.get("title") or ""),
        GoField("Icon", item.get("icon") or ""),
        GoField("Power", _float(item.get("power")), omitempty=False),
        GoField("Energy", _float(item.get("energy"))),
        GoField("Powers", _floats(item.get("powers"))),
        GoField("Currents", _floats(item.get("currents"))),
        GoField("ExcessDCPower", _float(item.get("excessdcpower"))),
        GoField("Capacity", _float_ptr(item.get("capacity")), pointer=True),
        GoField("Soc", _float_ptr(item.get("soc")), pointer=True),
        GoField("Controllable", item.get("controllable"), pointer=True),
    ))


def _battery_state(battery: dict) -> GoStruct:
    """`types.BatteryState` (0.301+)."""
    devices = battery.get("devices")
    return GoStruct((
        GoField("Power", _float(battery.get("power")), omitempty=False),
        GoField("Energy", _float(battery.get("energy"))),
        GoField("Capacity", _float(battery.get("capacity"))),
        GoField("Soc", _float(battery.get("soc")), omitempty=False),
        GoField("Devices", [_measurement(d) for d in devices] if devices else None),
        GoField("Forecast", None, pointer=True),
    ))


def _vehicle(vehicle: dict, release: tuple[int, int, int]) -> GoStruct:
    """The `vehicleStruct` evcc publishes per vehicle."""
    fields = [
        GoField("Title", vehicle.get("title") or "", omitempty=False),
        GoField("Icon", vehicle.get("icon") or ""),
        GoField("Capacity", _float(vehicle.get("capacity"))),
        GoField("Phases", int(vehicle.get("phases") or 0)),
        GoField("MinSoc", int(vehicle.get("minSoc") or 0)),
        GoField("LimitSoc", int(vehicle.get("limitSoc") or 0)),
        GoField("MinCurrent", _float(vehicle.get("minCurrent"))),
        GoField("MaxCurrent", _float(vehicle.get("maxCurrent"))),
        GoField("Priority", int(vehicle.get("priority") or 0)),
        GoField("Features", vehicle.get("features")),
        GoField("Plan", None, pointer=True),
        GoField("RepeatingPlans", [], omitempty=False),
    ]
    if release >= (0, 300, 0):
        fields.append(GoField("PlanStrategy", GoStruct((
            GoField("Continuous", False, omitempty=False),
            GoField("Precondition", 0, omitempty=False))), omitempty=False))
    return GoStruct(tuple(fields))


def go_value(key: str, value: Any, release: tuple[int, int, int]) -> Any:
    """A value of the REST state as the Go value evcc publishes under `key`."""
    if key == "grid" and isinstance(value, dict):
        return _measurement(value)
    if key in ("pv", "battery", "aux", "ext") and isinstance(value, list):
        return [_measurement(item) for item in value]
    if key == "battery" and isinstance(value, dict):
        return _battery_state(value)
    if key == "vehicles":
        # A map by name (evcc had one since 0.123; the simulator's oldest shape lists them).
        by_name = value if isinstance(value, dict) else {v.get("name"): v for v in value or []}
        return {name: _vehicle(v, release) for name, v in by_name.items()}
    if key == "statistics" and isinstance(value, dict):
        return {period: {k: _float(v) for k, v in stats.items()} for period, stats in value.items()}
    if isinstance(value, list) and all(isinstance(v, (int, float)) for v in value):
        return [float(v) for v in value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return int(value) if key in _GO_INTS else float(value)


def float_format(release: tuple[int, int, int]) -> Callable[[float], str]:
    """How evcc's MQTT `encode` writes a float64 in this release."""
    if release <= (0, 300, 6):
        return lambda value: f"{value:.5g}"
    if release == (0, 300, 7):
        return lambda value: f"{value:.3f}"
    return lambda value: f"{value:.3f}".rstrip("0").rstrip(".")


class MqttEncoder:
    """evcc's topic and payload rules for one release: value -> (topic, payload) messages."""

    def __init__(self, release: tuple[int, int, int]) -> None:
        self.release = release
        self._float = float_format(release)

    def encode(self, value: Any) -> str:
        if value is None:
            return ""
        if value is True or value is False:
            return "true" if value else "false"
        if isinstance(value, float):
            return self._float(value)
        return str(value)

    def messages(self, topic: str, value: Any) -> list[tuple[str, str]]:
        """`publish`: a top-level []float64 of three is phases plus their sum."""
        if (isinstance(value, list) and len(value) == 3
                and all(isinstance(v, float) for v in value)):
            phases = [(f"{topic}/l{n}", self.encode(v)) for n, v in enumerate(value, start=1)]
            return phases + [(topic, self.encode(sum(value)))]
        out: list[tuple[str, str]] = []
        self._complex(topic, value, out)
        return out

    def _complex(self, topic: str, value: Any, out: list[tuple[str, str]]) -> None:
        if isinstance(value, list):
            out.append((topic, str(len(value))))
            for n, item in enumerate(value, start=1):
                self._complex(f"{topic}/{n}", item, out)
        elif isinstance(value, dict):
            for key, item in value.items():
                self._complex(f"{topic}/{key}", item, out)
        elif isinstance(value, GoStruct):
            for field in value.fields:
                sub = f"{topic}/{field.name[:1].lower()}{field.name[1:]}"
                zero = field.value is None if field.pointer else _zero(field.value)
                if zero and field.omitempty:
                    out.append((sub, ""))
                else:
                    self._complex(sub, field.value, out)
        else:
            out.append((topic, self.encode(value)))


def site_topic(root: str, key: str) -> str:
    """evcc's `Run`: the site's `vehicles` go to `<root>/vehicles`, its other keys to `site/`."""
    return f"{root}/vehicles" if key == "vehicles" else f"{root}/site/{key}"


def mqtt_header(state: dict, root: str = "evcc") -> list[tuple[str, str]]:
    """What evcc publishes once after its start-up cleanup, before any value."""
    out = [(f"{root}/loadpoints", str(len(state.get("loadpoints") or []))),
           (f"{root}/vehicles", str(len(state.get("vehicles") or {})))]
    for n in range(10):
        out += [(f"{root}/site/pv/{n}", ""), (f"{root}/site/battery/{n}", ""),
                (f"{root}/site/vehicles/{n}", "")]
    return out


def mqtt_messages(state: dict, root: str = "evcc", version: str = "0.301.1",
                  cycle_only: bool = False) -> list[tuple[str, str]]:
    """evcc's messages for a REST-shaped `state` (site keys, `loadpoints`, `vehicles`) in
    publishing order, without `<root>/updated`: by default all it has published once a cycle
    has run after its start (header, settings, measurements); `cycle_only` leaves out the
    header and what evcc publishes only when it is set."""
    release = parse_version(version) or OLDEST
    encoder = MqttEncoder(release)
    settings = not cycle_only
    out: list[tuple[str, str]] = mqtt_header(state, root) if settings else []
    for key, value in state.items():
        if key == "loadpoints" or (not settings and key in SITE_OCCASIONAL):
            continue
        out += encoder.messages(site_topic(root, key), go_value(key, value, release))
    for n, loadpoint in enumerate(state.get("loadpoints") or [], start=1):
        for key, value in loadpoint.items():
            if settings or key not in LOADPOINT_SETTINGS:
                out += encoder.messages(f"{root}/loadpoints/{n}/{key}", go_value(key, value, release))
    return out


class EvccMqttPublisher:
    """Publishes a simulator's state to a real broker as evcc of the simulator's version does
    (see above): start-up cleanup, every measurement each cycle in shuffled order, shutdown
    cleanup. `cleanup_quiet` is how long the broker must be quiet to end a cleanup (evcc: 1 s)."""

    def __init__(self, sim: EvccSim, host: str, port: int, root: str = "evcc",
                 seed: int | None = None, cleanup_quiet: float = 1.0) -> None:
        import paho.mqtt.client as mqtt

        self.sim = sim
        self.root = root
        self.encoder = MqttEncoder(sim.release)
        self.cleanup_quiet = cleanup_quiet
        self._rng = random.Random(sim.seed if seed is None else seed)
        self._settings: dict[str, list[tuple[str, str]]] = {}   # last published, by key
        self._statistics_at: float | None = None
        self.status_topic = f"{root}/status"
        self._closed = False
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"evcc-sim-{id(self)}")
        client.will_set(self.status_topic, "offline", qos=1, retain=True)
        client.connect(host, port, 30)
        client.loop_start()
        self._client = client
        self.publish(self.status_topic, "online")
        self.start()

    def publish(self, topic: str, payload: str) -> None:
        """One retained QoS 1 message, waited for (also for tests that write topics by hand)."""
        self._client.publish(topic, payload, qos=1, retain=True).wait_for_publish(timeout=10)

    def _publish_all(self, messages: list[tuple[str, str]]) -> None:
        infos = [self._client.publish(topic, payload, qos=1, retain=True)
                 for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(timeout=10)

    def cleanup(self) -> list[str]:
        """evcc's `Cleanup`: empty every retained topic under the root but the status; returns
        the topics emptied."""
        emptied: list[str] = []
        last = [time.monotonic()]

        def on_message(client: Any, userdata: Any, message: Any) -> None:
            if message.payload and message.topic != self.status_topic:
                emptied.append(message.topic)
                last[0] = time.monotonic()
                client.publish(message.topic, b"", qos=1, retain=True)

        self._client.message_callback_add(f"{self.root}/#", on_message)
        self._client.subscribe(f"{self.root}/#", qos=1)
        while time.monotonic() - last[0] < self.cleanup_quiet:
            time.sleep(min(0.05, self.cleanup_quiet))
        self._client.unsubscribe(f"{self.root}/#")
        self._client.message_callback_remove(f"{self.root}/#")
        self._settings.clear()
        self._statistics_at = None
        return emptied

    def start(self) -> None:
        """What evcc does between connecting and its first cycle."""
        self.cleanup()
        self._publish_all(mqtt_header(self.sim.state(), self.root))

    def publish_state(self, now: float | None = None) -> dict:
        """One evcc cycle at `now`: `updated` and every measurement (settings when they
        changed, statistics hourly), retained, shuffled. Returns the REST state of that moment."""
        now = self.sim.clock() if now is None else now
        raw = self.sim._state(now)   # evcc's values before its REST encoder rounds them
        messages = [(f"{self.root}/updated", str(int(now)))]
        messages += mqtt_messages(raw, self.root, self.sim.version, cycle_only=True)
        for key in SITE_OCCASIONAL:
            if key in raw:
                messages += self._setting(key, now, self.encoder.messages(
                    site_topic(self.root, key), go_value(key, raw[key], self.sim.release)))
        for n, loadpoint in enumerate(raw.get("loadpoints") or [], start=1):
            for key in (k for k in LOADPOINT_SETTINGS if k in loadpoint):
                topic = f"{self.root}/loadpoints/{n}/{key}"
                messages += self._setting(topic, now, self.encoder.messages(
                    topic, go_value(key, loadpoint[key], self.sim.release)))
        self._rng.shuffle(messages)
        self._publish_all(messages)
        return _round_floats(raw)

    def _setting(self, key: str, now: float, messages: list[tuple[str, str]]) -> list[tuple[str, str]]:
        if key == "statistics":
            if self._statistics_at is not None and now - self._statistics_at < STATISTICS_EVERY:
                return []
            self._statistics_at = now
        elif self._settings.get(key) == messages:
            return []
        self._settings[key] = messages
        return messages

    def close(self) -> None:
        """evcc's shutdown: cleanup, then the process ends and the broker publishes the will
        (done here by hand: a clean disconnect does not trigger it). Closing twice is a no-op."""
        if self._closed:
            return
        self._closed = True
        try:
            self.cleanup()
            self.publish(self.status_topic, "offline")
        finally:
            self._client.disconnect()
            self._client.loop_stop()


def main(argv: list[str] | None = None) -> None:
    from collector.sim.base import SimServer, log_to_stdout

    parser = argparse.ArgumentParser(description="A simulated evcc (REST, optionally MQTT)")
    parser.add_argument("--port", type=int, default=7070)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--version", default="0.301",
                        help="the evcc release to behave like, from 0.130 (e.g. 0.207.5, "
                             "0.300.6, 0.300.7, 0.301.2); shorthands: " + ", ".join(VERSIONS))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--loadpoints", type=int, choices=(1, 2), default=2)
    parser.add_argument("--mqtt-host", default="127.0.0.1")
    parser.add_argument("--mqtt-port", type=int, default=None, help="publish to this broker too")
    parser.add_argument("--mqtt-root", default="evcc")
    parser.add_argument("--mqtt-interval", type=float, default=30.0)
    args = parser.parse_args(argv)
    try:
        sim = EvccSim(version=args.version, seed=args.seed, loadpoints=args.loadpoints)
    except ValueError as exc:
        parser.error(str(exc))
    log_to_stdout()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    publisher = (EvccMqttPublisher(sim, args.mqtt_host, args.mqtt_port, args.mqtt_root)
                 if args.mqtt_port else None)
    with SimServer(sim, port=args.port, host=args.host) as server:
        log.info("evcc simulator (version %s) on %s", sim.version, server.url)
        try:
            while not stop.is_set():
                if publisher is not None:
                    publisher.publish_state()
                stop.wait(args.mqtt_interval if publisher else 3600)
        finally:
            if publisher is not None:
                publisher.close()   # evcc's shutdown cleanup


if __name__ == "__main__":
    main()
