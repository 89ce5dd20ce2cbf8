"""ev.energy payloads -> points. Pure: no I/O, no clock.

A status log is identified by (EVSE, `sampled_at`), a command log by (EVSE, `logged_at`), so
each becomes one point with exactly that identity: the EVSE id as tag, that time as timestamp.
Re-fetching a page produces the same points, which the store and InfluxDB overwrite.

Units are converted to the schema's: milliamps to amps, millivolts to volts. Nulls and missing
keys leave fields out; unknown keys (the API adds fields, some integrations send `mode`) are
ignored; a value of the wrong type is left out and recorded in the `CoercionReport`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from collector.http_outcomes import Action, SourceError
from collector.measurement import CoercionReport, Measurement, Tag, b, f, s
from collector.points import Point
from collector.timestamps import parse_rfc3339_ns

NAME = "evenergy"

EVSE_TAG = Tag("evse", "ev.energy EVSE id (`evse` and 26 characters); ev.energy gives each EVSE "
                         "one id whichever client reads it, so it also keeps the points of several "
                         "`[[sources.evenergy]]` instances apart (no instance tag)")

STATUS = Measurement(
    name="evenergy_status",
    description="EVSE status logs from ev.energy (`GET /evses/{id}/status_logs`), one point per "
                "log. Fields the EVSE integration could not report (null) are absent.",
    time="`sampled_at`: when ev.energy sampled the EVSE",
    tags=(EVSE_TAG,),
    fields=(
        b("plugged_in", "a vehicle is connected (`is_plugged_in`)"),
        b("charging", "the EVSE is delivering charge (`is_charging`)"),
        f("charge_power_w", "W", "charge rate (`charge_rate_watts`)"),
        f("export_power_w", "W", "power exported to the grid (`export_power_watts`)"),
        f("meter_energy_wh", "Wh", "meter reading (`meter_reading_watt_hours`)"),
        s("pilot_state", "IEC 61851 control pilot state A..F (`control_pilot_status`)"),
        b("enabled", "the EVSE is enabled to charge (`is_enabled`)"),
        f("max_current_a", "A", "maximum current rating of the EVSE (`max_current_rating_milliamps` / 1000)"),
        f("cable_current_a", "A", "current rating of the cable (`cable_current_rating_milliamps` / 1000)"),
        f("voltage_v", "V", "supply voltage (`voltage_millivolts` / 1000)"),
        f("rssi_dbm", "dBm", "signal strength (`signal_strength_rssi_dbm`)"),
        f("inlet_power_w", "W", "power at the EVSE inlet (`inlet_power_watts`)"),
        f("soc_pct", "%", "vehicle state of charge (`state_of_charge_percentage`)"),
        s("mode", "charging mode as the integration names it, e.g. `Load match` (`mode`, when sent)"),
        f("log_delay_s", "s",
          "how long after sampling the log reached ev.energy (`logged_at` - `sampled_at`)"),
    ),
    source=NAME,
)

COMMAND = Measurement(
    name="evenergy_command",
    description="Commands ev.energy sent to an EVSE (`GET /evses/{id}/command_logs`), one point "
                "per command, e.g. smart-charging schedules, start and stop.",
    time="`logged_at`: when ev.energy logged the command",
    tags=(EVSE_TAG,),
    fields=(
        f("max_load_target_a", "A", "target maximum load sent (`max_load_target_milliamps` / 1000)"),
        b("enabled_target", "target state sent for is_enabled, i.e. free-vend (`is_enabled_target`)"),
        b("always_enabled", "the EVSE should always be enabled (`always_enabled`)"),
        s("reason", "why the command was sent (SCHEDULED_CHARGING, STOP_CHARGE, ...; unknown values kept)"),
        s("command_id", "ev.energy's internal id of this command dispatch (`internal_command_id`)"),
    ),
    source=NAME,
)

MEASUREMENTS = (STATUS, COMMAND)

# Exact integer nanoseconds, shared with the other sources (a time without a zone is UTC).
parse_time_ns = parse_rfc3339_ns


def format_time(ns: int, round_up: bool = False) -> str:
    """RFC 3339 UTC with microseconds, the precision the API uses; floor or ceiling."""
    micros = -(-ns // 1000) if round_up else ns // 1000
    dt = datetime.fromtimestamp(micros // 1_000_000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{micros % 1_000_000:06d}Z"


@dataclass
class ParsedLogs:
    points: list[Point] = field(default_factory=list)
    newest_ns: int | None = None        # over every item with a usable time, with or without fields
    oldest_ns: int | None = None
    items: int = 0
    skipped_items: list[str] = field(default_factory=list)   # why each unusable item was skipped

    def _saw(self, time_ns: int) -> None:
        self.newest_ns = time_ns if self.newest_ns is None else max(self.newest_ns, time_ns)
        self.oldest_ns = time_ns if self.oldest_ns is None else min(self.oldest_ns, time_ns)


def _number(value: Any, name: str, report: CoercionReport) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        report.rejected.append((name, f"expected a number, got {type(value).__name__}"))
        return None
    try:
        number = float(value)
    except ValueError:
        report.rejected.append((name, f"not a number: {value!r}"))
        return None
    if not math.isfinite(number):
        report.rejected.append((name, f"not finite: {value!r}"))
        return None
    return number


def _scaled(value: Any, name: str, divisor: float, report: CoercionReport) -> float | None:
    number = _number(value, name, report)
    return None if number is None else number / divisor


def _status_values(item: dict, sampled_ns: int, report: CoercionReport) -> dict[str, Any]:
    logged_ns = parse_time_ns(item.get("logged_at"))
    pilot = item.get("control_pilot_status")
    return {
        "plugged_in": item.get("is_plugged_in"),
        "charging": item.get("is_charging"),
        "charge_power_w": item.get("charge_rate_watts"),
        "export_power_w": item.get("export_power_watts"),
        "meter_energy_wh": item.get("meter_reading_watt_hours"),
        "pilot_state": (pilot.strip() or None) if isinstance(pilot, str) else pilot,
        "enabled": item.get("is_enabled"),
        "max_current_a": _scaled(item.get("max_current_rating_milliamps"),
                                 "max_current_rating_milliamps", 1000.0, report),
        "cable_current_a": _scaled(item.get("cable_current_rating_milliamps"),
                                   "cable_current_rating_milliamps", 1000.0, report),
        "voltage_v": _scaled(item.get("voltage_millivolts"), "voltage_millivolts", 1000.0, report),
        "rssi_dbm": item.get("signal_strength_rssi_dbm"),
        "inlet_power_w": item.get("inlet_power_watts"),
        "soc_pct": item.get("state_of_charge_percentage"),
        "mode": item.get("mode"),
        "log_delay_s": (logged_ns - sampled_ns) / 1e9 if logged_ns is not None else None,
    }


def _command_values(item: dict, _time_ns: int, report: CoercionReport) -> dict[str, Any]:
    return {
        "max_load_target_a": _scaled(item.get("max_load_target_milliamps"),
                                     "max_load_target_milliamps", 1000.0, report),
        "enabled_target": item.get("is_enabled_target"),
        "always_enabled": item.get("always_enabled"),
        "reason": item.get("reason"),
        "command_id": item.get("internal_command_id"),
    }


def _parse_logs(payload: Any, evse_id: str, measurement: Measurement, time_key: str,
                values: Callable[[dict, int, CoercionReport], dict[str, Any]],
                report: CoercionReport) -> ParsedLogs:
    if not isinstance(payload, list):
        raise SourceError(Action.DROP, f"ev.energy {measurement.name} for {evse_id}: expected a JSON "
                                       f"array of logs, got {type(payload).__name__}")
    out = ParsedLogs(items=len(payload))
    for n, item in enumerate(payload):
        if not isinstance(item, dict):
            out.skipped_items.append(f"item {n} is a {type(item).__name__}, not an object")
            continue
        time_ns = parse_time_ns(item.get(time_key))
        if time_ns is None:
            out.skipped_items.append(f"item {n} has no usable {time_key}: {item.get(time_key)!r}")
            continue
        out._saw(time_ns)
        point = measurement.point({"evse": evse_id}, values(item, time_ns, report), time_ns, report)
        if point is not None:
            out.points.append(point)
    return out


def parse_status_logs(payload: Any, evse_id: str, report: CoercionReport | None = None) -> ParsedLogs:
    """A page of `/evses/{id}/status_logs` -> `evenergy_status` points."""
    return _parse_logs(payload, evse_id, STATUS, "sampled_at", _status_values,
                       report if report is not None else CoercionReport())


def parse_command_logs(payload: Any, evse_id: str, report: CoercionReport | None = None) -> ParsedLogs:
    """A page of `/evses/{id}/command_logs` -> `evenergy_command` points."""
    return _parse_logs(payload, evse_id, COMMAND, "logged_at", _command_values,
                       report if report is not None else CoercionReport())


_EVSE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def parse_evses(payload: Any) -> tuple[list[str], list[str]]:
    """A page of `/evses` -> (EVSE ids, reasons for skipped items). `cpid` etc. are optional."""
    if not isinstance(payload, list):
        raise SourceError(Action.DROP,
                          f"ev.energy /evses: expected a JSON array, got {type(payload).__name__}")
    ids, skipped = [], []
    for n, item in enumerate(payload):
        evse_id = item.get("id") if isinstance(item, dict) else None
        if isinstance(evse_id, str) and _EVSE_ID.match(evse_id):
            ids.append(evse_id)
        else:
            skipped.append(f"item {n} has no usable id")
    return ids, skipped
