"""evcc payloads -> points. Pure: no I/O, no clock; never raises on a merely odd payload.

Every shape evcc has shipped maps to one schema (see `schema.py`):
- the `{"result": ...}` wrapper (up to 0.206) and bare objects (0.207+);
- grid as `gridPower`/`gridPowers`/`gridCurrents`/`gridEnergy` (before 0.133) or `grid: {...}`;
- `chargeCurrent` (before 0.203) or `offeredCurrent`; tariff rates with `price` or `value`;
- battery as flat `battery*` fields, as an array of devices, or as `battery: {..., devices}`
  (0.301+); `vehicles` as an array (old) or a map;
- values as JSON numbers (REST) or as the plain strings of evcc's MQTT topics.
Nulls, missing keys and wrong types leave fields out; wrong types are recorded in the report.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from collector.http_outcomes import Action, SourceError
from collector.measurement import CoercionReport, Measurement
from collector.points import Point
from collector.sources.evcc.schema import (
    BATTERY,
    LIFETIME_METERS,
    LOADPOINT,
    PV,
    SESSION,
    SITE,
    STATISTICS,
    TARIFF,
)
from collector.timestamps import format_rfc3339_ns, parse_rfc3339_ns

TARIFF_TYPES = ("grid", "feedin", "co2", "planner", "solar")
# Which field a tariff type's rate value goes into: the unit differs by type.
TARIFF_FIELD = {"grid": "price_per_kwh", "feedin": "price_per_kwh", "planner": "price_per_kwh",
                "co2": "co2_g_per_kwh", "solar": "power_w"}
STATISTICS_PERIODS = ("30d", "365d", "thisYear", "total")


# -- envelopes --------------------------------------------------------------------------------

def unwrap(payload: Any, what: str) -> Any:
    """The content of a response: `{"result": x}` (evcc up to 0.206) or `x` itself (0.207+)."""
    if isinstance(payload, dict):
        if "result" in payload and len(payload) <= 2:  # {"result": ..., "error"?: ...}
            return payload["result"]
        if "error" in payload and len(payload) == 1:
            raise SourceError(Action.DROP, f"{what}: evcc answered an error: {str(payload['error'])[:200]}")
    return payload


# -- values -----------------------------------------------------------------------------------

def _num(value: Any, name: str, report: CoercionReport) -> float | None:
    """A finite float from a JSON number or a numeric string; None for null/""; -0 -> 0."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        report.rejected.append((name, f"expected a number, got {value!r}"))
        return None
    if isinstance(value, (int, float)):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            report.rejected.append((name, f"not a number: {value[:40]!r}"))
            return None
    else:
        report.rejected.append((name, f"expected a number, got {type(value).__name__}"))
        return None
    if not math.isfinite(result):
        report.rejected.append((name, f"not finite: {value!r}"))
        return None
    return result + 0.0  # -0.0 -> 0.0, so `-0` and `0` are the same value


def _scaled(value: Any, factor: float, name: str, report: CoercionReport) -> float | None:
    """A number times `factor` (kWh -> Wh, 0..1 -> %), rounded to kill float noise."""
    number = _num(value, name, report)
    if number is None:
        return None
    return round(number * factor, 6) + 0.0


def _duration_s(value: Any, name: str, report: CoercionReport) -> float | None:
    """Seconds of a loadpoint duration. evcc before 0.127 sent durations over REST as Go's
    JSON does, in nanoseconds; durations are whole seconds, so 10^9 or more is nanoseconds
    (10^9 seconds would be 31 years)."""
    seconds = _num(value, name, report)
    if seconds is not None and abs(seconds) >= 1e9:
        return round(seconds / 1e9, 3)
    return seconds


def _text(value: Any) -> str | None:
    """A non-empty string for a tag or a string field; numbers (MQTT titles) become text."""
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    # RFID identifiers arrive padded with NUL characters ("#FreeCharging\x00\x00..."),
    # which are no text and which a string field must not carry.
    text = str(value).replace("\x00", "").strip()
    return text or None


def _phases(value: Any) -> list[Any]:
    """Up to three per-phase values from a list (REST) or a list of strings (MQTT)."""
    if isinstance(value, list):
        return (value + [None, None, None])[:3]
    return [None, None, None]


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None


def _first(obj: dict, *keys: str) -> Any:
    """The first of `keys` that is present and not null: one value under the names evcc has
    given it over the versions, newest first."""
    for key in keys:
        value = obj.get(key)
        if value is not None:
            return value
    return None


def _build(measurement: Measurement, tags: Mapping[str, Any], values: Mapping[str, Any],
           time_ns: int, report: CoercionReport, out: list[Point]) -> None:
    point = measurement.point({k: _text(v) for k, v in tags.items()}, values, time_ns, report)
    if point is not None:
        out.append(point)


# -- time -------------------------------------------------------------------------------------

# One parser for every source's RFC 3339 times; the names stay for this module's callers.
parse_time_ns = parse_rfc3339_ns
format_time_ns = format_rfc3339_ns


# -- state ------------------------------------------------------------------------------------

def parse_state(payload: Any, site: str, time_ns: int,
                report: CoercionReport | None = None) -> list[Point]:
    """Points of `/api/state` (or the same tree rebuilt from MQTT topics) at `time_ns`."""
    report = report if report is not None else CoercionReport()
    state = unwrap(payload, "/api/state")
    if not isinstance(state, dict):
        raise SourceError(Action.DROP, f"/api/state: expected a JSON object, got {type(state).__name__}")
    out: list[Point] = []
    _site_points(state, site, time_ns, report, out)
    loadpoints = state.get("loadpoints")
    if isinstance(loadpoints, list):
        vehicles = _vehicle_titles(state.get("vehicles"))
        for index, lp in enumerate(loadpoints, start=1):
            if isinstance(lp, dict):
                _loadpoint_point(lp, index, site, vehicles, time_ns, report, out)
            elif lp is not None:
                report.rejected.append((f"loadpoints[{index}]", f"not an object: {type(lp).__name__}"))
    return out


def _site_points(state: dict, site: str, time_ns: int, report: CoercionReport,
                 out: list[Point]) -> None:
    grid = state.get("grid")
    grid = grid if isinstance(grid, dict) else {}

    def grid_value(new: str, old: str) -> Any:
        value = grid.get(new)
        return value if value is not None else state.get(old)

    grid_powers = _phases(grid_value("powers", "gridPowers"))
    grid_currents = _phases(grid_value("currents", "gridCurrents"))

    battery = state.get("battery")
    if isinstance(battery, dict):      # 0.301+: totals in the object, devices inside
        totals = battery
        devices = battery.get("devices")
    else:                              # flat totals; before 0.301 maybe an array of devices
        totals = {"power": state.get("batteryPower"), "soc": state.get("batterySoc"),
                  "capacity": state.get("batteryCapacity"), "energy": state.get("batteryEnergy")}
        devices = battery

    values = {
        "pv_power_w": _num(state.get("pvPower"), "pvPower", report),
        "pv_energy_wh": _scaled(state.get("pvEnergy"), 1000, "pvEnergy", report),
        "home_power_w": _num(state.get("homePower"), "homePower", report),
        "grid_power_w": _num(grid_value("power", "gridPower"), "grid.power", report),
        "grid_energy_wh": _scaled(grid_value("energy", "gridEnergy"), 1000, "grid.energy", report),
        "battery_power_w": _num(totals.get("power"), "battery.power", report),
        "battery_soc_pct": _num(totals.get("soc"), "battery.soc", report),
        "battery_capacity_wh": _scaled(totals.get("capacity"), 1000, "battery.capacity", report),
        "battery_energy_wh": _scaled(totals.get("energy"), 1000, "battery.energy", report),
        "tariff_grid_per_kwh": _num(state.get("tariffGrid"), "tariffGrid", report),
        "tariff_feedin_per_kwh": _num(state.get("tariffFeedIn"), "tariffFeedIn", report),
        "tariff_co2_g_per_kwh": _num(state.get("tariffCo2"), "tariffCo2", report),
        "tariff_solar_w": _num(state.get("tariffSolar"), "tariffSolar", report),
        "tariff_price_home_per_kwh": _num(state.get("tariffPriceHome"), "tariffPriceHome", report),
        "tariff_price_loadpoints_per_kwh": _num(state.get("tariffPriceLoadpoints"),
                                                "tariffPriceLoadpoints", report),
        "tariff_co2_home_g_per_kwh": _num(state.get("tariffCo2Home"), "tariffCo2Home", report),
        "tariff_co2_loadpoints_g_per_kwh": _num(state.get("tariffCo2Loadpoints"),
                                                "tariffCo2Loadpoints", report),
        "green_share_home_pct": _scaled(state.get("greenShareHome"), 100, "greenShareHome", report),
        "green_share_loadpoints_pct": _scaled(state.get("greenShareLoadpoints"), 100,
                                              "greenShareLoadpoints", report),
        "currency": _text(state.get("currency")),
        "version": _text(state.get("version")),
    }
    for n in range(3):
        values[f"grid_power_l{n + 1}_w"] = _num(grid_powers[n], "grid.powers", report)
        values[f"grid_current_l{n + 1}_a"] = _num(grid_currents[n], "grid.currents", report)
    _build(SITE, {"site": site}, values, time_ns, report, out)

    pv = state.get("pv")
    if isinstance(pv, list):
        for index, inverter in enumerate(pv, start=1):
            if isinstance(inverter, dict):
                _build(PV, {"site": site, "inverter": index}, {
                    "power_w": _num(inverter.get("power"), "pv.power", report),
                    "energy_wh": _scaled(inverter.get("energy"), 1000, "pv.energy", report),
                }, time_ns, report, out)

    if isinstance(devices, list):
        for index, device in enumerate(devices, start=1):
            if isinstance(device, dict):
                _build(BATTERY, {"site": site, "battery": index}, {
                    "power_w": _num(device.get("power"), "battery.power", report),
                    "soc_pct": _num(device.get("soc"), "battery.soc", report),
                    "capacity_wh": _scaled(device.get("capacity"), 1000, "battery.capacity", report),
                    "energy_wh": _scaled(device.get("energy"), 1000, "battery.energy", report),
                    "controllable": device.get("controllable"),
                }, time_ns, report, out)

    statistics = state.get("statistics")
    if isinstance(statistics, dict):
        for period in STATISTICS_PERIODS:
            stats = statistics.get(period)
            if isinstance(stats, dict):
                _build(STATISTICS, {"site": site, "period": period}, {
                    "charged_energy_wh": _scaled(stats.get("chargedKWh"), 1000, "chargedKWh", report),
                    "solar_pct": _num(stats.get("solarPercentage"), "solarPercentage", report),
                    "avg_price_per_kwh": _num(stats.get("avgPrice"), "avgPrice", report),
                    "avg_co2_g_per_kwh": _num(stats.get("avgCo2"), "avgCo2", report),
                }, time_ns, report, out)


def _vehicle_titles(vehicles: Any) -> dict[str, str]:
    """name -> title from `vehicles`: a map by name (now) or an array (old versions)."""
    titles: dict[str, str] = {}
    if isinstance(vehicles, dict):
        for name, vehicle in vehicles.items():
            title = _text(_get(vehicle, "title"))
            if title:
                titles[str(name)] = title
    elif isinstance(vehicles, list):
        for vehicle in vehicles:
            if isinstance(vehicle, dict):
                name, title = _text(vehicle.get("name")), _text(vehicle.get("title"))
                if name and title:
                    titles[name] = title
    return titles


def _loadpoint_point(lp: dict, index: int, site: str, vehicles: Mapping[str, str], time_ns: int,
                     report: CoercionReport, out: list[Point]) -> None:
    offered = lp.get("offeredCurrent")
    if offered is None:
        offered = lp.get("chargeCurrent")  # before 0.203
    currents = _phases(lp.get("chargeCurrents"))
    voltages = _phases(lp.get("chargeVoltages"))
    vehicle_name = _text(lp.get("vehicleName"))
    vehicle_title = _text(lp.get("vehicleTitle")) or (vehicles.get(vehicle_name) if vehicle_name else None)
    values = {
        "mode": _text(lp.get("mode")),
        "connected": lp.get("connected"),
        "charging": lp.get("charging"),
        "enabled": lp.get("enabled"),
        "charge_power_w": _num(lp.get("chargePower"), "chargePower", report),
        "offered_current_a": _num(offered, "offeredCurrent", report),
        "min_current_a": _num(lp.get("minCurrent"), "minCurrent", report),
        "max_current_a": _num(lp.get("maxCurrent"), "maxCurrent", report),
        "phases_active": lp.get("phasesActive"),
        "charged_energy_wh": _num(lp.get("chargedEnergy"), "chargedEnergy", report),
        "session_energy_wh": _num(lp.get("sessionEnergy"), "sessionEnergy", report),
        "charge_duration_s": _duration_s(lp.get("chargeDuration"), "chargeDuration", report),
        "connected_duration_s": _duration_s(lp.get("connectedDuration"), "connectedDuration",
                                            report),
        "charge_total_import_wh": _scaled(lp.get("chargeTotalImport"), 1000, "chargeTotalImport", report),
        "vehicle_name": vehicle_name,
        "vehicle_title": vehicle_title,
        "vehicle_soc_pct": _num(lp.get("vehicleSoc"), "vehicleSoc", report),
        "vehicle_range_km": _num(lp.get("vehicleRange"), "vehicleRange", report),
        "vehicle_odometer_km": _num(lp.get("vehicleOdometer"), "vehicleOdometer", report),
        # `targetSoc` is the same limit before evcc 0.123 renamed it `limitSoc`.
        "limit_soc_pct": _num(_first(lp, "effectiveLimitSoc", "limitSoc", "targetSoc"), "limitSoc",
                              report),
        "session_solar_pct": _num(lp.get("sessionSolarPercentage"), "sessionSolarPercentage", report),
        "session_price": _num(lp.get("sessionPrice"), "sessionPrice", report),
        "session_price_per_kwh": _num(lp.get("sessionPricePerKWh"), "sessionPricePerKWh", report),
        "session_co2_g_per_kwh": _num(lp.get("sessionCo2PerKWh"), "sessionCo2PerKWh", report),
    }
    for n in range(3):
        values[f"charge_current_l{n + 1}_a"] = _num(currents[n], "chargeCurrents", report)
        values[f"charge_voltage_l{n + 1}_v"] = _num(voltages[n], "chargeVoltages", report)
    _build(LOADPOINT, {"site": site, "loadpoint": index, "loadpoint_title": lp.get("title")},
           values, time_ns, report, out)


# -- sessions ---------------------------------------------------------------------------------

@dataclass
class Sessions:
    """What one `/api/sessions` answer holds, beyond its points."""

    points: list[Point] = field(default_factory=list)
    finished: int = 0                       # finished sessions seen (written or not)
    running: int = 0                        # sessions without `finished`: not written yet
    unusable: int = 0                       # rows without a usable `created`
    newest_finished_ns: int | None = None   # `created` of the newest finished session
    oldest_running_ns: int | None = None    # `created` of the oldest running session

    def watermark_ns(self) -> int | None:
        """The oldest `created` a later sync must look at again (before its lookback)."""
        candidates = [t for t in (self.newest_finished_ns, self.oldest_running_ns) if t is not None]
        return min(candidates) if candidates else None


def parse_sessions(payload: Any, site: str, since_ns: int | None = None,
                   report: CoercionReport | None = None) -> Sessions:
    """Points of the finished sessions in `/api/sessions` created at or after `since_ns`."""
    report = report if report is not None else CoercionReport()
    rows = unwrap(payload, "/api/sessions")
    if rows is None:
        rows = []  # evcc answers null when there are no sessions yet
    if not isinstance(rows, list):
        raise SourceError(Action.DROP, f"/api/sessions: expected a JSON array, got {type(rows).__name__}")
    result = Sessions()
    for row in rows:
        if not isinstance(row, dict):
            result.unusable += 1
            report.rejected.append(("session", f"not an object: {type(row).__name__}"))
            continue
        created = parse_time_ns(row.get("created"))
        if created is None:
            result.unusable += 1
            report.rejected.append(("created", f"not an RFC3339 time: {str(row.get('created'))[:40]!r}"))
            continue
        finished = parse_time_ns(row.get("finished"))
        if finished is None:
            result.running += 1
            if result.oldest_running_ns is None or created < result.oldest_running_ns:
                result.oldest_running_ns = created
            continue
        result.finished += 1
        if result.newest_finished_ns is None or created > result.newest_finished_ns:
            result.newest_finished_ns = created
        if since_ns is not None and created < since_ns:
            continue
        duration = _num(row.get("chargeDuration"), "chargeDuration", report)
        session_id = row.get("id")
        values = {
            "session_id": session_id if not isinstance(session_id, bool) else None,
            "finished_unix_s": finished // 1_000_000_000,
            "connected_duration_s": round((finished - created) / 1e9, 3) if finished >= created else None,
            "charge_duration_s": round(duration / 1e9, 3) if duration is not None else None,
            "energy_wh": _scaled(row.get("chargedEnergy"), 1000, "chargedEnergy", report),
            "meter_start_wh": _scaled(row.get("meterStart"), 1000, "meterStart", report),
            "meter_stop_wh": _scaled(row.get("meterStop"), 1000, "meterStop", report),
            "odometer_km": _num(row.get("odometer"), "odometer", report),
            "soc_start_pct": _num(row.get("socStart"), "socStart", report),
            "soc_end_pct": _num(row.get("socEnd"), "socEnd", report),
            "added_range_km": _num(row.get("addedRange"), "addedRange", report),
            "solar_pct": _num(row.get("solarPercentage"), "solarPercentage", report),
            "price": _num(row.get("price"), "price", report),
            "price_per_kwh": _num(row.get("pricePerKWh"), "pricePerKWh", report),
            "co2_g_per_kwh": _num(row.get("co2PerKWh"), "co2PerKWh", report),
            "reference_price_per_kwh": _num(row.get("referencePricePerKWh"), "referencePricePerKWh",
                                            report),
            "reference_co2_g_per_kwh": _num(row.get("referenceCo2PerKWh"), "referenceCo2PerKWh",
                                            report),
            "identifier": _text(row.get("identifier")),
        }
        _build(SESSION, {"site": site, "loadpoint_title": row.get("loadpoint"),
                         "vehicle": row.get("vehicle")}, values, created, report, result.points)
    return result


# -- tariffs ----------------------------------------------------------------------------------

def parse_tariff(payload: Any, site: str, tariff_type: str,
                 report: CoercionReport | None = None) -> list[Point]:
    """One point per forecast rate at its `start`; `value` (0.203+) or `price` (before)."""
    report = report if report is not None else CoercionReport()
    body = unwrap(payload, f"/api/tariff/{tariff_type}")
    rates = body.get("rates") if isinstance(body, dict) else body
    if rates is None:
        return []
    if not isinstance(rates, list):
        raise SourceError(Action.DROP, f"/api/tariff/{tariff_type}: expected a list of rates, "
                                       f"got {type(rates).__name__}")
    value_field = TARIFF_FIELD.get(tariff_type, "price_per_kwh")
    out: list[Point] = []
    for rate in rates:
        start = parse_time_ns(_get(rate, "start"))
        if start is None:
            report.rejected.append(("start", f"rate without a usable start: {str(rate)[:60]}"))
            continue
        end = parse_time_ns(rate.get("end"))
        value = rate.get("value")
        if value is None:
            value = rate.get("price")
        _build(TARIFF, {"site": site, "type": tariff_type}, {
            value_field: _num(value, "value", report),
            "duration_s": (end - start) / 1e9 if end is not None and end > start else None,
        }, start, report, out)
    return out


def count_by_measurement(points: Iterable[Point]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for point in points:
        counts[point.measurement] = counts.get(point.measurement, 0) + 1
    return counts


# -- MQTT -------------------------------------------------------------------------------------

def _unflatten(node: dict) -> Any:
    """A topic node -> JSON-like value: struct, array (count + /1..n), 3-phase list (/l1..l3)
    or leaf string. Items at /0 (evcc clears /0../9 of some arrays at start) are ignored."""
    value = node.get("")
    children = {k: v for k, v in node.items() if k != ""}
    if not children:
        return None if value is None or value == "" else value  # "" is evcc's null
    numbered = [k for k in children if k.isdigit()]
    if not numbered and set(children) <= {"l1", "l2", "l3"}:
        # A 3-phase value as current evcc publishes it: the sum at the topic, phases at /l1..l3.
        return [_unflatten(children[f"l{n}"]) if f"l{n}" in children else None for n in (1, 2, 3)]
    if numbered and all(k.isdigit() or re.fullmatch(r"l[1-3]", k) for k in children):
        # An array: its count at the topic itself, items at /1..n (3-phase also at /l1..l3).
        # Without a count evcc has emptied it (a nil slice): the items left are stale.
        try:
            count = int(float(value)) if value not in (None, "") else 0
        except ValueError:
            count = max(int(k) for k in numbered)
        if count <= 0:
            return None
        return [_unflatten(children[str(n)]) if str(n) in children else None
                for n in range(1, count + 1)]
    return {key: _unflatten(child) for key, child in children.items()}


def mqtt_rounds_floats(version: str | None) -> bool:
    """Whether evcc of this version writes MQTT floats with 5 significant digits ("%.5g", up to
    0.300.6; 0.300.7 changed it to three decimals). An unknown version is taken to."""
    match = re.match(r"\s*(\d+)\.(\d+)\.(\d+)", version or "")
    if match is None:
        return True
    return tuple(int(n) for n in match.groups()) <= (0, 300, 6)


def with_meters_from(points: Iterable[Point], rest_points: Iterable[Point]) -> list[Point]:
    """MQTT snapshot points with their lifetime meters (`LIFETIME_METERS`) replaced by those of
    `/api/state` read for the same cycle; without them where REST has none."""
    rest = {(p.measurement, tuple(sorted(p.tags.items()))): p for p in rest_points}
    out = []
    for point in points:
        meters = LIFETIME_METERS.get(point.measurement, frozenset())
        fields = {k: v for k, v in point.fields.items() if k not in meters}
        match = rest.pop((point.measurement, tuple(sorted(point.tags.items()))), None)
        if match is not None:
            fields.update((k, v) for k, v in match.fields.items() if k in meters)
        if fields:
            out.append(Point(point.measurement, point.tags, fields, point.time_ns))
    for point in rest.values():   # a device MQTT has no values for (yet): its meters alone
        only = {k: v for k, v in point.fields.items()
                if k in LIFETIME_METERS.get(point.measurement, frozenset())}
        if only:
            out.append(Point(point.measurement, point.tags, only, point.time_ns))
    return out


def state_from_topics(topics: Mapping[str, str], root: str = "evcc") -> dict:
    """The `/api/state` object rebuilt from evcc's retained MQTT topics under `root`.

    `<root>/site/<key>` become the site's keys, `<root>/loadpoints/<n>/...` the loadpoint
    array (as many as `<root>/loadpoints` counts, so a removed loadpoint's stale retained
    topics are ignored), `<root>/vehicles/<name>/...` the vehicle map. Leaves stay strings
    (the parse functions read numeric and boolean strings); an empty payload is null.
    """
    prefix = root.rstrip("/") + "/"
    tree: dict = {}
    for topic, payload in topics.items():
        if not topic.startswith(prefix):
            continue
        node = tree
        for part in topic[len(prefix):].split("/"):
            node = node.setdefault(part, {})
        node[""] = payload
    site = _unflatten(tree.get("site", {}))
    state: dict = dict(site) if isinstance(site, dict) else {}
    loadpoints = tree.get("loadpoints")
    if loadpoints is not None:
        unflat = _unflatten(loadpoints)
        state["loadpoints"] = unflat if isinstance(unflat, list) else []
    vehicles = _unflatten(tree.get("vehicles", {}))
    if isinstance(vehicles, dict):
        state["vehicles"] = vehicles
    return state
