"""OVMS server v3 payloads -> points. Pure functions: no I/O, no clock.

Facts these functions rely on (see README.md and /shared/API-NOTES):

- The server answers `/api/status|charge|location|tpms/<id>` from the last protocol message of
  each kind it holds: `S` (state: SOC, ranges, charge), `D` (doors and environment), `L`
  (location), `W`/`Y` (TPMS). Each part carries its own `m_msgtime_<kind>` (UTC, no zone). A
  point is timestamped with the time of the message its values came from, so `/api/status`
  yields an `ovms_charge` point at `m_msgtime_s` and an `ovms_vehicle` point at `m_msgtime_d`.
- Values are mostly strings ("63.5"); flags carry their bit value (charging 16, carlocked 8,
  caron 128, carawake 2); `stale*` indicators are -1 (none), 0 (stale) or >0 (fresh) and are
  kept as integers. `{}` means the server holds no record.
- With `units` "M" the module reports distances in miles, speeds in mph, and odometer/trip in
  1/10 of a mile; everything is converted to km here. v3 firmware reports the `D` speed in km/h
  whatever the units (only `L` speed follows the units setting); we follow the firmware.
- Historical records (`h_timestamp`, `h_recordnumber`, `h_data`) are CSV, commas in strings
  replaced by `;`. `*-LOG-Trip` and `*-LOG-Grid` are always metric (firmware metric units).
  Their record number is the format version (Trip 1, Grid 2), so several records share a
  timestamp only across types or across record numbers. Point identity is (measurement,
  vehicle, record_type, h_timestamp + h_recordnumber nanoseconds): the record number becomes
  the sub-second part of the time instead of a tag, so same-second records stay distinct
  without a high-cardinality tag; it is also kept as the `record_number` field.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from collector.http_outcomes import Action, SourceError
from collector.measurement import CoercionReport, Field, Measurement, Tag, b, f, i, s
from collector.points import Point

log = logging.getLogger(__name__)

NAME = "ovms"
MILE_KM = 1.609344
PSI_KPA = 6.894757293168361
NS = 1_000_000_000

VEHICLE_TAG = Tag("vehicle", "OVMS vehicle id as registered on the server; the collector refuses "
                               "a vehicle id that two `[[sources.ovms]]` instances would both collect, "
                               "so it keeps their points apart (no instance tag)")
RECORD_TYPE_TAG = Tag("record_type", "historical record type, e.g. `*-LOG-Trip`")
WHEEL_TAG = Tag("wheel", "wheel name as the module reports it, lower case (fl, fr, rl, rr, ...)")

# -- value converters ----------------------------------------------------------------------
# Each converter takes the raw value and the distance factor (1.0 for km, 1.609344 for miles)
# and returns a value for Measurement.point (which coerces and reports what it cannot use).


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _raw(value: Any, _factor: float) -> Any:
    return value


def _scale(multiplier: float, by_distance: bool = False, divide_distance: bool = False
           ) -> Callable[[Any, float], Any]:
    """Multiply a numeric value; by the distance factor too (miles -> km) when asked."""

    def convert(value: Any, factor: float) -> Any:
        number = _number(value)
        if number is None:
            return value  # let the coercion report say what was wrong
        scaled = number * multiplier
        if by_distance:
            scaled *= factor
        if divide_distance:
            scaled /= factor
        return round(scaled, 6)

    return convert


def _flag(value: Any, _factor: float) -> Any:
    """Bit-value flags: 0 is false, any other number (8, 16, 128...) is true."""
    number = _number(value)
    if number is None:
        return value
    return number != 0


def _code(value: Any, _factor: float) -> Any:
    """A numeric code; None (no field) for text, which `_label` keeps instead."""
    return value if _number(value) is not None else None


def _label(value: Any, _factor: float) -> Any:
    """Text such as "type2"; None (no field) for a number, which `_code` keeps instead."""
    return value.strip() if isinstance(value, str) and _number(value) is None else None


_DIST = _scale(1.0, by_distance=True)          # ranges in km or miles
_DIST_TENTHS = _scale(0.1, by_distance=True)   # odometer/trip in 1/10 km or 1/10 mile
_KILO = _scale(1000.0)                          # kW -> W, kWh -> Wh


@dataclass(frozen=True)
class Col:
    """One source value: its key (API) or column name (CSV), the field it feeds, how."""

    key: str
    field: Field
    convert: Callable[[Any, float], Any] = _raw


def _c(key: str, fld: Field, convert: Callable[[Any, float], Any] = _raw) -> Col:
    return Col(key, fld, convert)


# -- live sampling: the S, D, L and TPMS parts ------------------------------------------------

S_COLUMNS: tuple[Col, ...] = (
    _c("soc", f("soc_pct", "%", "state of charge")),
    _c("units", s("distance_units", "the module's distance units: K (km) or M (miles); values here are km")),
    _c("linevoltage", f("line_voltage_v", "V", "charging line voltage")),
    _c("chargecurrent", f("charge_current_a", "A", "charge current")),
    _c("chargestate", s("charge_state", "charging, topoff, done, prepare, heating, stopped, ...")),
    _c("mode", s("charge_mode", "standard, storage, range, performance, ...")),
    _c("idealrange", f("ideal_range_km", "km", "ideal range (converted from miles when units=M)"), _DIST),
    _c("estimatedrange", f("estimated_range_km", "km", "estimated range"), _DIST),
    _c("chargelimit", f("charge_limit_a", "A", "charge current limit")),
    _c("chargeduration",
       i("charge_duration_s", "s",
         "duration of the running charge (v3 firmware sends seconds; v2 docs say minutes)")),
    _c("chargeb4", i("charge_b4", "code", "charger B4 byte (vehicle specific)")),
    _c("chargekwh", f("charge_energy_wh", "Wh", "energy of the running charge (sent in 1/10 kWh)"),
       _scale(100.0)),
    _c("chargesubstate", s("charge_substate", "charge sub-state (code or name)")),
    _c("chargetimermode", i("charge_timer_mode", "code", "0 on plug-in, 1 timer")),
    _c("chargestarttime",
       i("charge_timer_start", "code", "charge timer start time (vehicle specific encoding)")),
    _c("chargetimerstale", i("charge_timer_stale", "code", "-1 none, 0 stale, >0 fresh")),
    _c("cac100", f("cac_ah", "Ah", "calculated battery capacity")),
    _c("charge_etr_full", i("charge_etr_full_min", "min", "time until full")),
    _c("charge_etr_limit", i("charge_etr_limit_min", "min", "time until the charge limit")),
    _c("charge_limit_range", f("charge_limit_range_km", "km", "configured range limit"), _DIST),
    _c("charge_limit_soc", f("charge_limit_soc_pct", "%", "configured SOC limit")),
    _c("cooldown_active",
       i("cooldown_active", "code", "cooldown indicator as sent (v3 firmware: 0 cooling, -1 not)")),
    _c("cooldown_tbattery",
       f("cooldown_battery_temperature_c", "°C", "cooldown lower battery temperature limit")),
    _c("cooldown_timelimit", i("cooldown_time_limit_min", "min", "cooldown time limit")),
    _c("charge_estimate", i("charge_estimate_min", "min", "charge time estimate for the current charger")),
    _c("charge_etr_range", i("charge_etr_range_min", "min", "time until the range limit")),
    _c("charge_etr_soc", i("charge_etr_soc_min", "min", "time until the SOC limit")),
    _c("idealrange_max", f("ideal_range_max_km", "km", "maximum ideal range"), _DIST),
    # `chargetype` is a number from v2 firmware (v3 firmware sends "0"), text such as "type2"
    # from modules that send the v3 metric: each to a field of its own type.
    _c("chargetype",
       i("charge_type_id", "code", "plug type id (OpenChargeMap connection type) when sent as a number"),
       _code),
    _c("chargetype",
       s("charge_type", "plug type when sent as text (e.g. type2, ccs, chademo; as in ovms_grid)"), _label),
    _c("chargepower", f("charge_power_w", "W", "charge power output (sent in kW)"), _KILO),
    _c("battvoltage", f("battery_voltage_v", "V", "main battery voltage")),
    _c("soh", f("soh_pct", "%", "battery state of health")),
    _c("chargepowerinput", f("charge_power_input_w", "W", "charge power input (sent in kW)"), _KILO),
    _c("chargerefficiency", f("charger_efficiency_pct", "%", "charger efficiency")),
    # Only in the raw protocol message S (historical type "S"), not in the API answers:
    _c("battcurrent", f("battery_current_a", "A", "main battery current (protocol S only)")),
    _c("rangespeed", f("range_speed_kmh", "km/h", "ideal range gain (+) or loss speed (protocol S only)"),
       _DIST),
    _c("chargekwhgrid",
       f("charge_grid_energy_wh", "Wh", "energy drawn from the grid this session (protocol S only)"), _KILO),
    _c("chargekwhgridtotal",
       f("charge_grid_energy_total_wh", "Wh", "energy drawn from the grid, total (protocol S only)"), _KILO),
    _c("battcapacity", f("battery_capacity_wh", "Wh", "usable battery capacity (protocol S only)"), _KILO),
    _c("chargetimestamp",
       i("last_charge_end_unix_s", "s", "time of the last charge end, unix seconds (protocol S only)")),
)

D_COLUMNS: tuple[Col, ...] = (
    _c("fl_dooropen", b("front_left_door_open", "front left door open"), _flag),
    _c("fr_dooropen", b("front_right_door_open", "front right door open"), _flag),
    _c("cp_dooropen", b("charge_port_open", "charge port open"), _flag),
    _c("pilotpresent", b("pilot_present", "charge pilot signal present (plugged in)"), _flag),
    _c("charging", b("charging", "charging now"), _flag),
    _c("handbrake", b("handbrake", "hand brake applied"), _flag),
    _c("caron", b("car_on", "ignition on"), _flag),
    _c("carlocked", b("locked", "car locked"), _flag),
    _c("valetmode", b("valet_mode", "valet mode active"), _flag),
    _c("bt_open", b("bonnet_open", "bonnet open"), _flag),
    _c("tr_open", b("trunk_open", "trunk open"), _flag),
    _c("carawake", b("awake", "car awake"), _flag),
    _c("charging_12v", b("charging_12v", "12 V battery charging"), _flag),
    _c("alarmsounding", b("alarm_sounding", "alarm sounding"), _flag),
    _c("temperature_pem", f("pem_temperature_c", "°C", "power electronics temperature")),
    _c("temperature_motor", f("motor_temperature_c", "°C", "motor temperature")),
    _c("temperature_battery", f("battery_temperature_c", "°C", "main battery temperature")),
    _c("temperature_charger", f("charger_temperature_c", "°C", "charger temperature")),
    _c("temperature_ambient", f("ambient_temperature_c", "°C", "ambient temperature")),
    _c("temperature_cabin", f("cabin_temperature_c", "°C", "cabin temperature")),
    _c("tripmeter", f("trip_km", "km", "trip meter (sent in 1/10 distance unit)"), _DIST_TENTHS),
    _c("odometer", f("odometer_km", "km", "odometer (sent in 1/10 distance unit)"), _DIST_TENTHS),
    _c("speed", f("speed_kmh", "km/h", "vehicle speed (v3 firmware sends km/h here)")),
    _c("parkingtimer", i("parking_time_s", "s", "time parked, 0 when not parked")),
    _c("staletemps", i("stale_temps", "code", "temperatures: -1 none, 0 stale, >0 fresh")),
    _c("staleambient", i("stale_ambient", "code", "ambient temperature: -1 none, 0 stale, >0 fresh")),
    _c("vehicle12v", f("battery_12v_voltage_v", "V", "12 V battery voltage")),
    _c("vehicle12v_ref", f("battery_12v_ref_voltage_v", "V", "12 V reference voltage")),
    _c("vehicle12v_current", f("battery_12v_current_a", "A", "12 V current (DC converter output)")),
)

L_COLUMNS: tuple[Col, ...] = (
    _c("latitude", f("latitude_deg", "°", "latitude")),
    _c("longitude", f("longitude_deg", "°", "longitude")),
    _c("direction", f("direction_deg", "°", "heading")),
    _c("altitude", f("altitude_m", "m", "altitude")),
    _c("gpslock", b("gps_lock", "GPS has a fix"), _flag),
    _c("stalegps", i("stale_gps", "code", "GPS: -1 none, 0 stale, >0 fresh")),
    _c("speed", f("speed_kmh", "km/h", "speed (converted from mph when units=M)"), _DIST),
    _c("tripmeter", f("trip_km", "km", "trip meter (sent in 1/10 distance unit)"), _DIST_TENTHS),
    _c("drivemode", i("drive_mode", "code", "drive mode (vehicle specific code)")),
    _c("power", f("battery_power_w", "W", "main battery power, negative while charging (sent in kW)"), _KILO),
    _c("energyused", f("energy_used_wh", "Wh", "energy used this trip (v3 firmware sends kWh)"), _KILO),
    _c("energyrecd", f("energy_recovered_wh", "Wh", "energy recovered this trip (v3 firmware sends kWh)"),
       _KILO),
    _c("invpower", f("inverter_power_w", "W", "inverter motor power (sent in kW)"), _KILO),
    _c("invefficiency", f("inverter_efficiency_pct", "%", "inverter efficiency")),
    # Only in the raw protocol message L:
    _c("gpsmode", s("gps_mode", "NMEA receiver mode (protocol L only)")),
    _c("gpssatcount", i("gps_satellites", "code", "satellites in use (protocol L only)")),
    _c("gpshdop", f("gps_hdop", "ratio", "horizontal dilution of precision (protocol L only)")),
    _c("gpsspeed", f("gps_speed_kmh", "km/h", "GPS speed (protocol L only)"), _DIST),
    _c("gpssq", i("gps_signal_quality_pct", "%", "GPS signal quality (protocol L only)")),
)

TPMS_FIELDS: tuple[Field, ...] = (
    f("pressure_kpa", "kPa", "tyre pressure (W messages send psi; converted)"),
    f("temperature_c", "°C", "tyre temperature"),
    f("health_pct", "%", "tyre/sensor health (Y messages only)"),
    i("alert_level", "code", "0 none, 1 warning, 2 alert (Y messages only)"),
    i("stale_tpms", "code", "TPMS values: -1 none, 0 stale, >0 fresh"),
    i("stale_pressure", "code", "pressures: -1 undefined, 0 stale, 1 valid (Y messages only)"),
    i("stale_temperature", "code", "temperatures: -1 undefined, 0 stale, 1 valid (Y messages only)"),
    i("stale_health", "code", "health: -1 undefined, 0 stale, 1 valid (Y messages only)"),
    i("stale_alert", "code", "alerts: -1 undefined, 0 stale, 1 valid (Y messages only)"),
)

# -- historical logs -------------------------------------------------------------------------

_RECORD_FIELDS = (
    i("record_number", "index", "h_recordnumber (for LOG types: the record format version)"),
    s("extra", "CSV fields beyond those known, from newer firmware, kept verbatim"),
)

_POSITION = (
    _c("gpslock", b("gps_lock", "GPS had a fix"), _flag),
    _c("lat", f("latitude_deg", "°", "latitude")),
    _c("lon", f("longitude_deg", "°", "longitude")),
    _c("alt", f("altitude_m", "m", "altitude")),
    _c("location", s("location", "location name as configured on the module (`;` where it had commas)")),
)

TRIP_COLUMNS: tuple[Col, ...] = _POSITION + (
    _c("odometer", f("odometer_km", "km", "odometer at the log entry")),
    _c("trip", f("trip_km", "km", "trip distance")),
    _c("drivetime", i("drive_time_s", "s", "driving time of the trip")),
    _c("drivemode", i("drive_mode", "code", "drive mode (vehicle specific code)")),
    _c("soc", f("soc_pct", "%", "state of charge")),
    _c("range_est", f("estimated_range_km", "km", "estimated range")),
    _c("range_ideal", f("ideal_range_km", "km", "ideal range")),
    _c("range_full", f("full_range_km", "km", "range at 100 % SOC")),
    _c("energy_used", f("energy_used_wh", "Wh", "energy used on the trip (sent in kWh)"), _KILO),
    _c("energy_recd", f("energy_recovered_wh", "Wh", "energy recovered on the trip (sent in kWh)"), _KILO),
    _c("coulomb_used", f("coulomb_used_ah", "Ah", "charge used on the trip")),
    _c("coulomb_recd", f("coulomb_recovered_ah", "Ah", "charge recovered on the trip")),
    _c("soh", f("soh_pct", "%", "battery state of health")),
    _c("health", s("battery_health", "battery health text (vehicle specific)")),
    _c("cac", f("cac_ah", "Ah", "calculated battery capacity")),
    _c("energy_used_total", f("energy_used_total_wh", "Wh", "lifetime energy used (sent in kWh)"), _KILO),
    _c("energy_recd_total", f("energy_recovered_total_wh", "Wh", "lifetime energy recovered (sent in kWh)"),
       _KILO),
    _c("coulomb_used_total", f("coulomb_used_total_ah", "Ah", "lifetime charge used")),
    _c("coulomb_recd_total", f("coulomb_recovered_total_ah", "Ah", "lifetime charge recovered")),
    _c("env_temp", f("ambient_temperature_c", "°C", "ambient temperature")),
    _c("cabintemp", f("cabin_temperature_c", "°C", "cabin temperature")),
    _c("bat_temp", f("battery_temperature_c", "°C", "battery temperature")),
    _c("inv_temp", f("inverter_temperature_c", "°C", "inverter temperature")),
    _c("mot_temp", f("motor_temperature_c", "°C", "motor temperature")),
    _c("charge_12v_temp", f("dcdc_temperature_c", "°C", "12 V converter temperature")),
    _c("tpms_temp_min", f("tpms_temperature_min_c", "°C", "lowest tyre temperature")),
    _c("tpms_temp_max", f("tpms_temperature_max_c", "°C", "highest tyre temperature")),
    _c("tpms_pressure_min", f("tpms_pressure_min_kpa", "kPa", "lowest tyre pressure")),
    _c("tpms_pressure_max", f("tpms_pressure_max_kpa", "kPa", "highest tyre pressure")),
    _c("tpms_health_min", f("tpms_health_min_pct", "%", "lowest tyre health")),
    _c("tpms_health_max", f("tpms_health_max_pct", "%", "highest tyre health")),
)

GRID_COLUMNS: tuple[Col, ...] = _POSITION + (
    _c("charge_type", s("charge_type", "charge type (e.g. type2, ccs, chademo)")),
    _c("charge_state", s("charge_state", "charge state at the log entry")),
    _c("charge_substate", s("charge_substate", "charge sub-state")),
    _c("charge_mode", s("charge_mode", "charge mode")),
    _c("charge_climit", f("charge_current_limit_a", "A", "charge current limit")),
    _c("charge_limit_range", f("charge_limit_range_km", "km", "charge range limit")),
    _c("charge_limit_soc", f("charge_limit_soc_pct", "%", "charge SOC limit")),
    _c("gen_type", s("gen_type", "generator (V2X) type")),
    _c("gen_state", s("gen_state", "generator state")),
    _c("gen_substate", s("gen_substate", "generator sub-state")),
    _c("gen_mode", s("gen_mode", "generator mode")),
    _c("gen_climit", f("gen_current_limit_a", "A", "generator current limit")),
    _c("gen_limit_range", f("gen_limit_range_km", "km", "generator range limit")),
    _c("gen_limit_soc", f("gen_limit_soc_pct", "%", "generator SOC limit")),
    _c("charge_time", i("charge_time_s", "s", "duration of the charge")),
    _c("charge_kwh", f("charge_energy_wh", "Wh", "energy charged into the battery (sent in kWh)"), _KILO),
    _c("charge_kwh_grid",
       f("charge_grid_energy_wh", "Wh", "energy drawn from the grid this charge (sent in kWh)"), _KILO),
    _c("charge_kwh_grid_total",
       f("charge_grid_energy_total_wh", "Wh", "energy drawn from the grid, lifetime (sent in kWh)"), _KILO),
    _c("gen_time", i("gen_time_s", "s", "duration of the generator session")),
    _c("gen_kwh", f("gen_energy_wh", "Wh", "energy delivered by the battery (sent in kWh)"), _KILO),
    _c("gen_kwh_grid", f("gen_grid_energy_wh", "Wh", "energy fed to the grid this session (sent in kWh)"),
       _KILO),
    _c("gen_kwh_grid_total",
       f("gen_grid_energy_total_wh", "Wh", "energy fed to the grid, lifetime (sent in kWh)"), _KILO),
    _c("bat_soc", f("soc_pct", "%", "state of charge")),
    _c("range_est", f("estimated_range_km", "km", "estimated range")),
    _c("range_ideal", f("ideal_range_km", "km", "ideal range")),
    _c("range_full", f("full_range_km", "km", "range at 100 % SOC")),
    _c("bat_voltage", f("battery_voltage_v", "V", "battery voltage")),
    _c("bat_temp", f("battery_temperature_c", "°C", "battery temperature")),
    _c("charge_temp", f("charger_temperature_c", "°C", "charger temperature")),
    _c("charge_12v_temp", f("dcdc_temperature_c", "°C", "12 V converter temperature")),
    _c("env_temp", f("ambient_temperature_c", "°C", "ambient temperature")),
    _c("cabintemp", f("cabin_temperature_c", "°C", "cabin temperature")),
    _c("soh", f("soh_pct", "%", "battery state of health")),
    _c("health", s("battery_health", "battery health text (vehicle specific)")),
    _c("cac", f("cac_ah", "Ah", "calculated battery capacity")),
    _c("energy_used_total", f("energy_used_total_wh", "Wh", "lifetime energy used (sent in kWh)"), _KILO),
    _c("energy_recd_total", f("energy_recovered_total_wh", "Wh", "lifetime energy recovered (sent in kWh)"),
       _KILO),
    _c("coulomb_used_total", f("coulomb_used_total_ah", "Ah", "lifetime charge used")),
    _c("coulomb_recd_total", f("coulomb_recovered_total_ah", "Ah", "lifetime charge recovered")),
    _c("odometer", f("odometer_km", "km", "odometer (format 2 and later)")),
)

# -- measurements ----------------------------------------------------------------------------


def _fields(columns: Iterable[Col]) -> tuple[Field, ...]:
    return tuple(col.field for col in columns)


CHARGE = Measurement(
    name="ovms_charge",
    description="Vehicle state and charge from the OVMS state message S (`/api/charge`, the S part "
                "of `/api/status`, historical type `S`). Distances in km whatever the module's units.",
    time="`m_msgtime_s` (when the server received the S message; historical: `h_timestamp`)",
    tags=(VEHICLE_TAG,),
    fields=_fields(S_COLUMNS),
    source=NAME,
)
VEHICLE = Measurement(
    name="ovms_vehicle",
    description="Doors, flags, temperatures, odometer and 12 V battery from the OVMS environment "
                "message D (`/api/status`, the D part of `/api/charge`, historical type `D`).",
    time="`m_msgtime_d` (when the server received the D message; historical: `h_timestamp`)",
    tags=(VEHICLE_TAG,),
    fields=_fields(D_COLUMNS),
    source=NAME,
)
LOCATION = Measurement(
    name="ovms_location",
    description="Position and drive data from the OVMS location message L (`/api/location`, "
                "historical type `L`).",
    time="`m_msgtime_l` (historical: `h_timestamp`)",
    tags=(VEHICLE_TAG,),
    fields=_fields(L_COLUMNS),
    source=NAME,
)
TPMS = Measurement(
    name="ovms_tpms",
    description="Tyre pressure and temperature per wheel (`/api/tpms`, from message Y or W).",
    time="`m_msgtime_y` when present, else `m_msgtime_w`",
    tags=(VEHICLE_TAG, WHEEL_TAG),
    fields=TPMS_FIELDS,
    source=NAME,
)
TRIP = Measurement(
    name="ovms_trip",
    description="Trip log entries (`*-LOG-Trip` historical records; written at the start and end of "
                "each ignition cycle). Always metric.",
    time="`h_timestamp` plus `h_recordnumber` nanoseconds (keeps same-second records distinct)",
    tags=(VEHICLE_TAG, RECORD_TYPE_TAG),
    fields=_fields(TRIP_COLUMNS) + _RECORD_FIELDS,
    source=NAME,
)
GRID = Measurement(
    name="ovms_grid",
    description="Grid log entries (`*-LOG-Grid` historical records; written on each change of the "
                "charge or generator state: the charging sessions). Always metric.",
    time="`h_timestamp` plus `h_recordnumber` nanoseconds",
    tags=(VEHICLE_TAG, RECORD_TYPE_TAG),
    fields=_fields(GRID_COLUMNS) + _RECORD_FIELDS,
    source=NAME,
)
RECORD = Measurement(
    name="ovms_record",
    description="Any other historical record, stored raw so nothing is lost (`*-LOG-PollStats`, "
                "`*-OVM-Utilisation`, vehicle specific types, protocol types not decoded).",
    time="`h_timestamp` plus `h_recordnumber` nanoseconds",
    tags=(VEHICLE_TAG, RECORD_TYPE_TAG),
    fields=(i("record_number", "index", "h_recordnumber"), s("data", "h_data verbatim")),
    source=NAME,
)

MEASUREMENTS = (CHARGE, VEHICLE, LOCATION, TPMS, TRIP, GRID, RECORD)

# -- time ------------------------------------------------------------------------------------

_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%dT%H:%M:%SZ")


def parse_server_time(value: Any) -> datetime | None:
    """An OVMS server time ("YYYY-MM-DD HH:MM:SS", UTC without zone) or None."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or text.startswith("0000-"):
        return None
    for fmt in _TIME_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def to_ns(when: datetime) -> int:
    return int(when.timestamp()) * NS + when.microsecond * 1000


def format_server_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


# -- results ---------------------------------------------------------------------------------


@dataclass
class Parsed:
    """Points from one payload, the message times they came from, and what was left out."""

    points: list[Point] = field(default_factory=list)
    msgtimes: dict[str, str] = field(default_factory=dict)   # message kind -> m_msgtime text
    report: CoercionReport = field(default_factory=CoercionReport)
    skipped: list[str] = field(default_factory=list)         # why parts were not used


def _expect_object(payload: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise SourceError(Action.DROP, f"{what}: expected a JSON object, got {type(payload).__name__}")
    return payload


def distance_factor(units: Any, default_units: str = "K") -> float:
    text = units.strip().upper() if isinstance(units, str) and units.strip() else default_units
    return MILE_KM if text == "M" else 1.0


def _values(columns: Sequence[Col], data: Mapping[str, Any], factor: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for col in columns:
        if col.key not in data:
            continue
        value = data[col.key]
        if _blank(value):
            continue
        out[col.field.name] = col.convert(value, factor)
    return out


def _part(result: Parsed, measurement: Measurement, columns: Sequence[Col], data: Mapping[str, Any],
          kind: str, vehicle: str, factor: float, previous: Mapping[str, str]) -> None:
    """One message part (S, D, L...) -> at most one point at that message's time."""
    stamp = data.get(f"m_msgtime_{kind}")
    if stamp is None:
        return  # the server holds no message of this kind
    when = parse_server_time(stamp)
    if when is None:
        result.skipped.append(f"m_msgtime_{kind} {stamp!r} is not a time")
        return
    result.msgtimes[kind] = str(stamp)
    if previous.get(kind) == str(stamp):
        return  # same message as last time: nothing new
    values = _values(columns, data, factor)
    point = measurement.point({"vehicle": vehicle}, values, to_ns(when), result.report)
    if point is not None:
        result.points.append(point)


def parse_status(payload: Any, vehicle: str, previous: Mapping[str, str] | None = None,
                 default_units: str = "K") -> Parsed:
    """`/api/status/<id>` or `/api/charge/<id>`: the S part and the D part.

    `previous` maps message kind ("s", "d") to the `m_msgtime` already collected; a part whose
    time is unchanged gives no point. `default_units` is used when the S part (which carries
    `units`) is absent.
    """
    data = _expect_object(payload, "status")
    previous = previous or {}
    result = Parsed()
    factor = distance_factor(data.get("units"), default_units)
    _part(result, CHARGE, S_COLUMNS, data, "s", vehicle, factor, previous)
    _part(result, VEHICLE, D_COLUMNS, data, "d", vehicle, factor, previous)
    return result


parse_charge = parse_status


def parse_location(payload: Any, vehicle: str, previous: Mapping[str, str] | None = None,
                   default_units: str = "K") -> Parsed:
    """`/api/location/<id>`: the L part. The payload has no `units`: the caller passes them."""
    data = _expect_object(payload, "location")
    result = Parsed()
    factor = distance_factor(data.get("units"), default_units)
    _part(result, LOCATION, L_COLUMNS, data, "l", vehicle, factor, previous or {})
    return result


_TPMS_KEYS = {
    "pressure_kpa": "pressure_kpa", "pressure": "pressure_psi", "temperature": "temperature_c",
    "health": "health_pct", "alert": "alert_level",
}
_TPMS_STALE = ("staletpms", "stale_pressure", "stale_temperature", "stale_health", "stale_alert")


def parse_tpms(payload: Any, vehicle: str, previous: Mapping[str, str] | None = None) -> Parsed:
    """`/api/tpms/<id>`: one point per wheel at `m_msgtime_y` (V3 'Y') or `m_msgtime_w` ('W')."""
    data = _expect_object(payload, "tpms")
    previous = previous or {}
    result = Parsed()
    kind = "y" if "m_msgtime_y" in data else "w"
    stamp = data.get(f"m_msgtime_{kind}")
    if stamp is None:
        return result
    when = parse_server_time(stamp)
    if when is None:
        result.skipped.append(f"m_msgtime_{kind} {stamp!r} is not a time")
        return result
    result.msgtimes[kind] = str(stamp)
    if previous.get(kind) == str(stamp):
        return result
    wheels: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        if key.startswith(("stale", "m_msg")) or "_" not in key:
            continue
        for suffix, name in _TPMS_KEYS.items():
            if key.endswith("_" + suffix):
                wheel = key[: -len(suffix) - 1].lower()
                if wheel and not _blank(value):
                    wheels.setdefault(wheel, {})[name] = value
                break
    common = {}
    for key in _TPMS_STALE:
        if not _blank(data.get(key)):
            common["stale_tpms" if key == "staletpms" else key] = data[key]
    ns = to_ns(when)
    for wheel in sorted(wheels):
        raw = wheels[wheel]
        values: dict[str, Any] = dict(common)
        if "pressure_kpa" in raw:
            values["pressure_kpa"] = raw["pressure_kpa"]
        elif "pressure_psi" in raw:
            psi = _number(raw["pressure_psi"])
            values["pressure_kpa"] = round(psi * PSI_KPA, 3) if psi is not None else raw["pressure_psi"]
        for name in ("temperature_c", "health_pct", "alert_level"):
            if name in raw:
                values[name] = raw[name]
        point = TPMS.point({"vehicle": vehicle, "wheel": wheel}, values, ns, result.report)
        if point is not None:
            result.points.append(point)
    return result


def parse_vehicles(payload: Any) -> list[str]:
    """`/api/vehicles`: the vehicle ids."""
    if not isinstance(payload, list):
        raise SourceError(Action.DROP, f"vehicles: expected a JSON array, got {type(payload).__name__}")
    ids = []
    for row in payload:
        if isinstance(row, Mapping) and isinstance(row.get("id"), str) and row["id"]:
            ids.append(row["id"])
    return ids


# -- historical ------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistorySummary:
    record_type: str
    total_records: int | None
    first: str | None
    last: str | None


def parse_history_summary(payload: Any) -> list[HistorySummary]:
    """`/api/historical/<id>`: one row per record type."""
    if not isinstance(payload, list):
        raise SourceError(Action.DROP,
                          f"historical summary: expected a JSON array, got {type(payload).__name__}")
    out = []
    for row in payload:
        if not isinstance(row, Mapping) or not isinstance(row.get("h_recordtype"), str):
            continue
        total = _number(row.get("totalrecs"))
        out.append(HistorySummary(row["h_recordtype"], int(total) if total is not None else None,
                                  row.get("first") if isinstance(row.get("first"), str) else None,
                                  row.get("last") if isinstance(row.get("last"), str) else None))
    return out


@dataclass
class ParsedHistory:
    points: list[Point] = field(default_factory=list)
    last_timestamp: str | None = None      # the newest h_timestamp seen, for the cursor
    records: int = 0                        # rows read
    report: CoercionReport = field(default_factory=CoercionReport)
    skipped: list[str] = field(default_factory=list)


def _split(data: str) -> list[str | None]:
    return [None if cell.strip() == "" else cell for cell in data.split(",")]


def _csv_point(measurement: Measurement, columns: Sequence[Col], cells: list[str | None],
               tags: Mapping[str, str], record_number: int, ns: int, report: CoercionReport,
               factor: float = 1.0) -> Point | None:
    values: dict[str, Any] = {}
    for col, cell in zip(columns, cells, strict=False):
        if cell is not None:
            values[col.field.name] = col.convert(cell, factor)
    if len(cells) > len(columns):
        extra = cells[len(columns):]
        values["extra"] = ",".join("" if c is None else c for c in extra)
    values["record_number"] = record_number
    return measurement.point(tags, values, ns, report)


# Positional layouts of raw protocol messages (v2 protocol, as v3 firmware sends them).
_S_ORDER = ("soc", "units", "linevoltage", "chargecurrent", "chargestate", "mode", "idealrange",
            "estimatedrange", "chargelimit", "chargeduration", "chargeb4", "chargekwh",
            "chargesubstate", None, None, "chargetimermode", "chargestarttime", "chargetimerstale",
            "cac100", "charge_etr_full", "charge_etr_limit", "charge_limit_range",
            "charge_limit_soc", "cooldown_active", "cooldown_tbattery", "cooldown_timelimit",
            "charge_estimate", "charge_etr_range", "charge_etr_soc", "idealrange_max", "chargetype",
            "chargepower", "battvoltage", "soh", "chargepowerinput", "chargerefficiency",
            "battcurrent", "rangespeed", "chargekwhgrid", "chargekwhgridtotal", "battcapacity",
            "chargetimestamp")
_L_ORDER = ("latitude", "longitude", "direction", "altitude", "gpslock", "stalegps", "speed",
            "tripmeter", "drivemode", "power", "energyused", "energyrecd", "invpower",
            "invefficiency", "gpsmode", "gpssatcount", "gpshdop", "gpsspeed", "gpssq")
_D_ORDER = ("doors1", "doors2", "lockunlock", "temperature_pem", "temperature_motor",
            "temperature_battery", "tripmeter", "odometer", "speed", "parkingtimer",
            "temperature_ambient", "doors3", "staletemps", "staleambient", "vehicle12v", "doors4",
            "vehicle12v_ref", "doors5", "temperature_charger", "vehicle12v_current",
            "temperature_cabin")
# Bits of the D message door bytes, as the server splits them for /api/status.
_D_BITS = (
    ("doors1", 0x01, "fl_dooropen"), ("doors1", 0x02, "fr_dooropen"), ("doors1", 0x04, "cp_dooropen"),
    ("doors1", 0x08, "pilotpresent"), ("doors1", 0x10, "charging"), ("doors1", 0x40, "handbrake"),
    ("doors1", 0x80, "caron"), ("doors2", 0x08, "carlocked"), ("doors2", 0x10, "valetmode"),
    ("doors2", 0x40, "bt_open"), ("doors2", 0x80, "tr_open"), ("doors3", 0x02, "carawake"),
    ("doors4", 0x04, "alarmsounding"), ("doors5", 0x10, "charging_12v"),
)


def _positional(order: Sequence[str | None], cells: list[str | None]) -> dict[str, Any]:
    return {key: cell for key,
            cell in zip(order, cells, strict=False) if key is not None and cell is not None}


def _protocol_d(cells: list[str | None]) -> dict[str, Any]:
    data = _positional(_D_ORDER, cells)
    for byte, mask, key in _D_BITS:
        raw = _number(data.get(byte))
        if raw is not None:
            data[key] = int(raw) & mask
    return data


def _history_point(record_type: str, cells: list[str | None], vehicle: str, record_number: int,
                   ns: int, report: CoercionReport, units: str | None) -> Point | None | Literal[False]:
    """A decoded point, None when decoding left nothing, False when the type is not decoded."""
    tags = {"vehicle": vehicle, "record_type": record_type}
    if record_type.endswith("-LOG-Trip"):
        return _csv_point(TRIP, TRIP_COLUMNS, cells, tags, record_number, ns, report)
    if record_type.endswith("-LOG-Grid"):
        return _csv_point(GRID, GRID_COLUMNS, cells, tags, record_number, ns, report)
    if record_type == "S":
        data = _positional(_S_ORDER, cells)
        return CHARGE.point({"vehicle": vehicle},
                            _values(S_COLUMNS, data, distance_factor(data.get("units"))),
                            ns, report)
    if units is None:
        return False  # D and L carry distances in units only the S message names: keep them raw
    if record_type == "D":
        return VEHICLE.point({"vehicle": vehicle}, _values(D_COLUMNS, _protocol_d(cells),
                                                           distance_factor(units)), ns, report)
    if record_type == "L":
        return LOCATION.point({"vehicle": vehicle}, _values(L_COLUMNS, _positional(_L_ORDER, cells),
                                                            distance_factor(units)), ns, report)
    return False


def parse_history(payload: Any, vehicle: str, record_type: str, units: str | None = None) -> ParsedHistory:
    """`/api/historical/<id>/<type>` rows -> points, one per record.

    Trip and Grid logs decode into typed fields; protocol types S (and D, L when the vehicle's
    distance units are known) into the live measurements; every other record is kept raw in
    `ovms_record`. A record is timestamped at h_timestamp plus its record number in ns.
    """
    if not isinstance(payload, list):
        raise SourceError(Action.DROP, f"historical {record_type}: expected a JSON array, "
                                       f"got {type(payload).__name__}")
    result = ParsedHistory()
    for row in payload:
        if not isinstance(row, Mapping):
            result.skipped.append("row is not an object")
            continue
        result.records += 1
        stamp = row.get("h_timestamp")
        when = parse_server_time(stamp)
        if when is None:
            result.skipped.append(f"h_timestamp {stamp!r} is not a time")
            continue
        if result.last_timestamp is None or str(stamp) > result.last_timestamp:
            result.last_timestamp = str(stamp)
        number = _number(row.get("h_recordnumber"))
        record_number = int(number) if number is not None and number.is_integer() else 0
        if number is None or not number.is_integer():
            result.skipped.append(f"h_recordnumber {row.get('h_recordnumber')!r} is not an integer; used 0")
        ns = to_ns(when) + record_number % NS
        data = row.get("h_data")
        text = data if isinstance(data, str) else ("" if data is None else str(data))
        point = _history_point(record_type, _split(text), vehicle, record_number, ns, result.report, units)
        if point is False:
            point = RECORD.point({"vehicle": vehicle, "record_type": record_type},
                                 {"record_number": record_number, "data": text}, ns, result.report)
        if point is None:
            # Nothing decodable (an empty record): keep it raw rather than lose it.
            point = RECORD.point({"vehicle": vehicle, "record_type": record_type},
                                 {"record_number": record_number, "data": text}, ns, result.report)
        if point is not None:
            result.points.append(point)
    return result
