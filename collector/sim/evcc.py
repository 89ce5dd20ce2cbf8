"""A simulated evcc: `/api/state`, `/api/sessions`, `/api/tariff/<type>`, and an MQTT publisher.

The site follows the clock: PV on a day curve with seeded clouds, a home load, a battery that
takes the surplus, and loadpoints whose charging sessions start and finish on a seeded
schedule, so the session list grows as time passes. Everything is a function of (seed, time),
so a frozen clock gives the same answers every time.

Meters advance only with the energy that flows: a loadpoint's `chargeTotalImport` is the
energy of its sessions so far (a session's `meterStart`/`meterStop` are its readings), and the
site's PV, grid-import and battery-discharge meters integrate their powers in 5-minute steps
from `start` (the power in the middle of each step stands for the whole step).

Shapes, by `version`:
- "0.130": `{"result": ...}`, `gridPower`/`gridPowers`/`gridCurrents`/`gridEnergy`, loadpoint
  `chargeCurrent`, tariff rates with `price`, `vehicles` as an array, flat `battery*` fields;
- "0.206": `{"result": ...}`, `grid: {...}`, `offeredCurrent`, rates with `value`, `vehicles`
  as a map, flat `battery*` fields plus a `battery` array of devices;
- "0.207": as 0.206 but bare (no wrapper);
- "0.301" (default): bare, `battery: {power, soc, capacity, energy, devices: [...]}`.

Run it alone: `python -m collector.sim.evcc --port 7070 [--version 0.206] [--mqtt-port 1883]`.
"""

from __future__ import annotations

import argparse
import base64
import copy
import functools
import hashlib
import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

from collector.sim.base import SimRequest, SimResponse

log = logging.getLogger(__name__)

VERSIONS = ("0.130", "0.206", "0.207", "0.301")
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
        if version not in VERSIONS:
            raise ValueError(f"version must be one of {VERSIONS}")
        self.version = version
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
            created = (self.start + (n + 0.3 + 0.4 * _noise(self.seed, "start", lp, n)) * spec.period_h * 3600)
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
            self._meter_steps = [np.concatenate((a, b)) for a, b in zip(old, new)]
            # One cumulative sum over all steps, however they were added: the same readings
            # whatever order of calls extended them (histories of other lengths agree).
            cum = tuple(np.concatenate(([0.0], np.cumsum(x))) for x in self._meter_steps)
            self._meter_cum = cum
        part = (now - self.start - steps * METER_STEP) / METER_STEP
        return tuple(float(c[steps] + (c[steps + 1] - c[steps]) * part) for c in cum)  # type: ignore[return-value]

    def _site_powers(self, times: Any) -> tuple[Any, Any, Any]:
        """PV, grid and battery power (W) at each of `times`, as `state` computes them."""
        import numpy as np

        # _pv_w and _home_w, vectorized (a history from the anchor has ~10^5 steps per year)
        offset = self.tz.utcoffset(None).total_seconds()  # type: ignore[union-attr]
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

        Floats are rounded to three decimals, as evcc's encoder does for REST and MQTT alike.
        """
        return _round_floats(self._state(now))

    def _state(self, now: float | None = None) -> dict:
        now = self.clock() if now is None else now
        old = self.version == "0.130"
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
            "version": {"0.130": "0.130.9", "0.206": "0.206.1", "0.207": "0.207.0", "0.301": "0.301.1"}[self.version],
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
            "greenShareLoadpoints": round(min(1.0, max(0.0, pv - home) / max(lp_total, 1.0)), 3) if lp_total else 0,
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
        if self.version == "0.301":
            state["battery"] = {"power": battery_power, "soc": soc, "capacity": 10.24,
                                "energy": device["energy"], "devices": [device]}
        else:
            state.update(batteryPower=battery_power, batterySoc=soc, batteryCapacity=10.24,
                         batteryEnergy=device["energy"])
            if self.version != "0.130":
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
            "chargeVoltages": [230.1, 229.8, 231.2] if spec.phases == 3 else [230.4, None, None],
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
            "vehicleRange": round(120.0 + 6.0 * charged_wh / 1000, 1) if vehicle else 0,
            "vehicleOdometer": 23456.7 if vehicle else 0,
            "effectiveLimitSoc": 80 if vehicle else 0,
            "sessionSolarPercentage": 63.5 if session else 0,
            "sessionPrice": round(charged_wh / 1000 * 0.21, 3) if session else None,
            "sessionPricePerKWh": 0.21 if session else None,
            "sessionCo2PerKWh": 155.0 if session else None,
            "planTime": None,
            "planProjectedStart": None,
        }
        if self.version == "0.130":
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
        return round(350 - 150 * max(0.0, math.sin(math.pi * (datetime.fromtimestamp(t, self.tz).hour - 6) / 14))
                     + 20 * _noise(self.seed, "co2", int(t // 3600)), 1)

    def tariff(self, kind: str, now: float | None = None) -> dict:
        now = self.clock() if now is None else now
        first = math.floor(now / 3600) * 3600
        hours = 48 if kind == "solar" else 24
        key = "price" if self.version == "0.130" else "value"
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
        return {"result": content} if self.version in ("0.130", "0.206") else content

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

def _mqtt_value(value: Any) -> str:
    """evcc's MQTT encoding: floats with at most three decimals and no trailing zeros,
    bools as true/false, null as an empty string."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)


def flatten_topics(state: dict, root: str = "evcc", phases_as_items: bool = False) -> dict[str, str]:
    """The state as evcc publishes it: site keys under `<root>/site`, loadpoints under
    `<root>/loadpoints/<n>` (their count at `<root>/loadpoints`), vehicles under
    `<root>/vehicles/<name>` (their count at `<root>/vehicles`); structs and maps flattened to
    subtopics, arrays as their count plus `/1..n`. A 3-phase list of numbers goes to `/l1..l3`
    with the sum at the topic itself (current evcc), or, with `phases_as_items`, as an array
    that also repeats its items at `/l1..l3` (the convention some older versions followed)."""
    topics: dict[str, str] = {}

    def walk(topic: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{topic}/{key}", item)
        elif isinstance(value, list):
            phases = len(value) == 3 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                             or v is None for v in value)
            if phases and not phases_as_items:
                topics[topic] = _mqtt_value(float(sum(v or 0.0 for v in value)))
            else:
                topics[topic] = str(len(value))
                for n, item in enumerate(value, start=1):
                    walk(f"{topic}/{n}", item)
            if phases:
                for n, item in enumerate(value, start=1):
                    walk(f"{topic}/l{n}", item)
        else:
            topics[topic] = _mqtt_value(value)

    site = {k: v for k, v in state.items() if k not in ("loadpoints", "vehicles")}
    walk(f"{root}/site", site)
    loadpoints = state.get("loadpoints") or []
    topics[f"{root}/loadpoints"] = str(len(loadpoints))
    for n, lp in enumerate(loadpoints, start=1):
        walk(f"{root}/loadpoints/{n}", lp)
    vehicles = state.get("vehicles")
    if isinstance(vehicles, dict):
        topics[f"{root}/vehicles"] = str(len(vehicles))
        for name, vehicle in vehicles.items():
            walk(f"{root}/vehicles/{name}", vehicle)
    return topics


class EvccMqttPublisher:
    """Publishes a simulator's state to a real broker the way evcc does: retained, changed
    topics only, then `<root>/updated` with the cycle's Unix time."""

    def __init__(self, sim: EvccSim, host: str, port: int, root: str = "evcc",
                 phases_as_items: bool | None = None) -> None:
        import paho.mqtt.client as mqtt

        self.sim = sim
        self.root = root
        # Older versions' 3-phase convention for the old shapes, current evcc's for the new.
        self.phases_as_items = (sim.version in ("0.130", "0.206") if phases_as_items is None
                                else phases_as_items)
        self.published: dict[str, str] = {}
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"evcc-sim-{id(self)}")
        self._client.will_set(f"{root}/status", "offline", qos=1, retain=True)
        self._client.connect(host, port, 30)
        self._client.loop_start()
        self._publish(f"{root}/status", "online")

    def _publish(self, topic: str, payload: str) -> None:
        info = self._client.publish(topic, payload, qos=1, retain=True)
        info.wait_for_publish(timeout=10)

    def publish_state(self, now: float | None = None, state: dict | None = None) -> dict:
        """Publish one update cycle as evcc does: `<root>/updated` (Unix seconds) as the
        cycle's values begin, then the values, retained, only those that changed."""
        now = self.sim.clock() if now is None else now
        state = copy.deepcopy(state) if state is not None else self.sim.state(now)
        self._publish(f"{self.root}/updated", str(int(now)))
        for topic, payload in flatten_topics(state, self.root, self.phases_as_items).items():
            if self.published.get(topic) != payload:
                self._publish(topic, payload)
                self.published[topic] = payload
        return state

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def main(argv: list[str] | None = None) -> None:
    from collector.sim.base import SimServer, log_to_stdout

    parser = argparse.ArgumentParser(description="A simulated evcc (REST, optionally MQTT)")
    parser.add_argument("--port", type=int, default=7070)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--version", choices=VERSIONS, default="0.301")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--loadpoints", type=int, choices=(1, 2), default=2)
    parser.add_argument("--mqtt-host", default="127.0.0.1")
    parser.add_argument("--mqtt-port", type=int, default=None, help="publish to this broker too")
    parser.add_argument("--mqtt-root", default="evcc")
    parser.add_argument("--mqtt-interval", type=float, default=30.0)
    args = parser.parse_args(argv)
    log_to_stdout()
    sim = EvccSim(version=args.version, seed=args.seed, loadpoints=args.loadpoints)
    publisher = (EvccMqttPublisher(sim, args.mqtt_host, args.mqtt_port, args.mqtt_root)
                 if args.mqtt_port else None)
    with SimServer(sim, port=args.port, host=args.host) as server:
        log.info("evcc simulator (version %s) on %s", args.version, server.url)
        try:
            while True:
                if publisher is not None:
                    publisher.publish_state()
                time.sleep(args.mqtt_interval if publisher else 3600)
        except KeyboardInterrupt:
            pass
        finally:
            if publisher is not None:
                publisher.close()


if __name__ == "__main__":
    main()
