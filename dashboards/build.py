"""The six dashboards, as code. `python dashboards/build.py` writes dashboards/json/*.json;
`--check` exits 1 when the committed JSON differs from what this file generates.

Conventions every query follows (see dashboards/README.md):
- raw InfluxQL, fields and measurements from docs/schema.md only;
- `$timeFilter` in every WHERE, `$__interval` for time-series buckets, `fill(none)`;
- device filters as `"tag" =~ /^(${var:regex})$/` (one, several or All);
- daily/weekly totals in local time: GROUP BY time(1d) / time(1w, 4d) (weeks from Monday)
  with tz('${timezone:raw}'), so days follow DST.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):                      # run as a script: make `dashboards` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboards.panels import (TZ, Dashboard, Panel, Query, datasource_variable, gauge, geomap, row,
                               stat, state_timeline, table, tag_in, tag_variable, timeseries,
                               timezone_variable, value_map, where)

JSON_DIR = Path(__file__).resolve().parent / "json"

CURRENCY = "€"                                     # evcc reports prices in the site's currency
MONEY = f"currency:{CURRENCY}"
MONEY_PER_KWH = f"suffix:{CURRENCY}/kWh"
KWH_PER_100KM = "suffix: kWh/100 km"
PER_MINUTE = "suffix:/min"
INTERVAL = "GROUP BY time($__interval)"

SITE, CHARGER, LOADPOINT = tag_in("site", "site"), tag_in("serial", "charger"), tag_in("loadpoint_title", "loadpoint")
VEHICLE, EVSE, SOURCE = tag_in("vehicle", "vehicle"), tag_in("evse", "evse"), tag_in("source", "source")
SESSION_CHARGER = tag_in("charger", "session_charger")

DRIVEN = '"trip_km" > 0'                          # the trip record written at the end of a drive
CHARGE_DONE = "\"charge_state\" = 'done'"          # the grid record written when a charge ends
FROM_GRID = '"charge_grid_energy_wh" > 0'

V_SITE = tag_variable("site", "evcc site", "evcc_site", "site")
V_CHARGER = tag_variable("charger", "Charger", "goe_status", "serial")
V_LOADPOINT = tag_variable("loadpoint", "Loadpoint", "evcc_loadpoint", "loadpoint_title", SITE)
V_VEHICLE = tag_variable("vehicle", "Vehicle", "ovms_charge", "vehicle")
V_EVSE = tag_variable("evse", "EVSE", "evenergy_status", "evse")
V_SESSION_CHARGER = tag_variable("session_charger", "Charger", "charging_session", "charger")
V_SOURCE = tag_variable("source", "Source", "collector_health", "source")

CAR_STATE = value_map({0: ("unknown", "text"), 1: ("idle", "blue"), 2: ("charging", "green"),
                       3: ("waiting for car", "yellow"), 4: ("complete", "purple"), 5: ("error", "red"),
                       6: ("initializing", "orange")})
ON_OFF = value_map({True: ("yes", "green"), False: ("no", "transparent")})
ERROR_CODE = [{"type": "value", "options": {"0": {"text": "no error", "color": "green", "index": 0}}},
              {"type": "range", "options": {"from": 1, "to": 1000,
                                            "result": {"text": "error", "color": "red", "index": 1}}}]


def per_day(select: str, frm: str, *conditions: str, by: str = "") -> str:
    group = f"GROUP BY time(1d){', ' + by if by else ''}"
    return f"SELECT {select} FROM {frm} WHERE {where(*conditions)} {group} fill(none) {TZ}"


def per_week(select: str, frm: str, *conditions: str, by: str = "") -> str:
    group = f"GROUP BY time(1w, 4d){', ' + by if by else ''}"      # epoch + 4 d is a Monday
    return f"SELECT {select} FROM {frm} WHERE {where(*conditions)} {group} fill(none) {TZ}"


def series(select: str, measurement: str, *conditions: str, by: str = "", fill: str = "none") -> str:
    group = f"{INTERVAL}{', ' + by if by else ''}"
    return f'SELECT {select} FROM "{measurement}" WHERE {where(*conditions)} {group} fill({fill})'


def latest(select: str, measurement: str, *conditions: str, by: str = "") -> str:
    return (f'SELECT {select} FROM "{measurement}" WHERE {where(*conditions)}'
            + (f" GROUP BY {by}" if by else ""))


def means(*fields_and_names: tuple[str, str]) -> str:
    return ", ".join(f'mean("{f}") AS "{n}"' for f, n in fields_and_names)


def lasts(*fields_and_names: tuple[str, str]) -> str:
    return ", ".join(f'last("{f}") AS "{n}"' for f, n in fields_and_names)


def monthly(field: str) -> list[dict]:
    """InfluxQL has no calendar months: sum daily rows per local month in Grafana."""
    return [{"id": "formatTime", "options": {"timeField": "Time", "outputFormat": "YYYY-MM", "useTimezone": True}},
            {"id": "groupBy", "options": {"fields": {"Time": {"aggregations": [], "operation": "groupby"},
                                                     field: {"aggregations": ["sum"], "operation": "aggregate"}}}}]


# ---------------------------------------------------------------------------------------- 1 overview

def overview() -> Dashboard:
    charged_today = [
        Query(f'SELECT sum("e") FROM (SELECT spread("energy_total_wh") AS "e" FROM "goe_status" '
              f'WHERE {where(CHARGER)} GROUP BY "serial")', "go-e chargers"),
        Query(f'SELECT sum("e") FROM (SELECT spread("charge_total_import_wh") AS "e" FROM "evcc_loadpoint" '
              f'WHERE {where(SITE, LOADPOINT)} GROUP BY "loadpoint_title")', "evcc loadpoints")]
    site_energy = [Query(latest('spread("pv_energy_wh") AS "PV", spread("grid_energy_wh") AS "Grid import"',
                                "evcc_site", SITE))]
    panels: list[Panel] = [
        row("Now"),
        stat("Charging power", "watt", [
            Query(latest('last("power_w")', "goe_status", CHARGER, by='"serial"'), "go-e $tag_serial"),
            Query(latest('last("charge_power_w")', "evcc_loadpoint", SITE, LOADPOINT, by='"loadpoint_title"'),
                  "$tag_loadpoint_title")], "Latest charging power per charger and loadpoint.", w=8),
        stat("Site power", "watt", [Query(latest(lasts(("pv_power_w", "PV"), ("grid_power_w", "Grid"),
                                                      ("home_power_w", "Home"), ("battery_power_w", "Battery")),
                                                "evcc_site", SITE))],
             "From evcc. Grid: positive = import; battery: positive = discharging.", w=16),
        gauge("Vehicle SoC", "percent", [
            Query(latest('last("soc_pct")', "ovms_charge", VEHICLE, by='"vehicle"'), "$tag_vehicle"),
            Query(latest('last("vehicle_soc_pct")', "evcc_loadpoint", SITE, LOADPOINT, by='"loadpoint_title"'),
                  "$tag_loadpoint_title")], "OVMS and evcc state of charge.", w=8),
        stat("Vehicle range", "lengthkm", [
            Query(latest('last("estimated_range_km")', "ovms_charge", VEHICLE, by='"vehicle"'), "$tag_vehicle"),
            Query(latest('last("vehicle_range_km")', "evcc_loadpoint", SITE, LOADPOINT, by='"loadpoint_title"'),
                  "$tag_loadpoint_title")], "Estimated range (OVMS) and range as evcc reports it.", w=8, h=6),
        stat("Current tariff", MONEY_PER_KWH, [Query(latest(
            lasts(("tariff_grid_per_kwh", "Grid price"), ("tariff_feedin_per_kwh", "Feed-in")),
            "evcc_site", SITE))], "evcc's current grid price and feed-in compensation.", decimals=3, w=8, h=6),
        row("Energy"),
        stat("Charged today", "watth", charged_today,
             "Meter difference since local midnight (dashboard time zone).", time_from="now/d", w=6),
        stat("Charged this month", "watth", charged_today, "Meter difference since the 1st.",
             time_from="now/M", w=6),
        stat("PV and grid today", "watth", site_energy, "evcc site meters since local midnight.",
             time_from="now/d", w=6),
        stat("PV and grid this month", "watth", site_energy, "evcc site meters since the 1st.",
             time_from="now/M", w=6),
        timeseries("Power", "watt", [
            Query(series(means(("pv_power_w", "PV"), ("grid_power_w", "Grid"), ("home_power_w", "Home"),
                               ("battery_power_w", "Battery")), "evcc_site", SITE)),
            Query(series('mean("power_w")', "goe_status", CHARGER, by='"serial"'), "go-e $tag_serial"),
            Query(series('mean("charge_power_w")', "evcc_loadpoint", SITE, LOADPOINT, by='"loadpoint_title"'),
                  "$tag_loadpoint_title")], "Site flows and charging power.", w=24, h=9),
        row("Sessions"),
        table("Last sessions", "none", [Query(
            'SELECT "charger" AS "Charger", "vehicle" AS "Vehicle", "energy_wh" AS "Energy", '
            '"solar_pct" AS "Solar", "cost" AS "Cost" '
            f'FROM "charging_session" WHERE {where(SESSION_CHARGER)} ORDER BY time DESC LIMIT 10')],
              "The ten newest charging sessions (derived from every source) in the time range.",
              columns={"Energy": "watth", "Solar": "percent", "Cost": MONEY}, w=24, h=8),
    ]
    return Dashboard("ev-overview", "EV charging: overview",
                     "Power now, today's and this month's energy, vehicle, last sessions, tariff.",
                     [datasource_variable(), timezone_variable(), V_SITE, V_CHARGER, V_LOADPOINT, V_VEHICLE,
                      V_SESSION_CHARGER], panels)


# ---------------------------------------------------------------------------------------- 2 charger

def charger() -> Dashboard:
    phases = lambda prefix, suffix: means(*((f"{prefix}_l{n}_{suffix}", f"L{n}") for n in (1, 2, 3)))  # noqa: E731
    by_serial = {"by": '"serial"'}
    alias = "$tag_serial $col"
    panels: list[Panel] = [
        row("go-eCharger"),
        state_timeline("Car state", [Query(series('last("car_state")', "goe_status", CHARGER, **by_serial),
                                           "$tag_serial")],
                       "go-e `car`: idle, charging, waiting for car, complete, error.", mappings=CAR_STATE, h=5),
        timeseries("Power per phase", "watt", [
            Query(series(phases("power", "w") + ', mean("power_w") AS "total"', "goe_status", CHARGER, **by_serial),
                  alias)], w=12),
        timeseries("Voltage", "volt", [Query(series(phases("voltage", "v"), "goe_status", CHARGER, **by_serial),
                                             alias)], w=12),
        timeseries("Current", "amp", [Query(series(phases("current", "a"), "goe_status", CHARGER, **by_serial),
                                            alias)], w=12),
        timeseries("Power factor", "percent", [Query(series(phases("power_factor", "pct"), "goe_status",
                                                            CHARGER, **by_serial), alias)], min=0, max=100, w=12),
        timeseries("Allowed and requested current", "amp", [Query(series(
            lasts(("allowed_current_a", "allowed"), ("requested_current_a", "requested"),
                  ("cable_current_limit_a", "cable limit")), "goe_status", CHARGER, **by_serial), alias)],
            "`acu` (what the car may draw now), `amp` (the user's setting) and the cable's limit.",
            step=True, w=12),
        timeseries("Temperatures", "celsius", [Query(series(
            means(*((f"temperature_{n}_c", f"sensor {n}") for n in range(1, 7))), "goe_status", CHARGER,
            **by_serial), alias)], w=12),
        timeseries("Energy counter", "watth", [Query(series('last("energy_total_wh")', "goe_status", CHARGER,
                                                            **by_serial), "$tag_serial")],
                   "Lifetime energy (`eto`).", w=12),
        timeseries("Energy per day", "watth", [Query(per_day('spread("energy_total_wh")', '"goe_status"', CHARGER,
                                                             by='"serial"'), "$tag_serial")],
                   "Meter difference per local day.", bars=True, w=12),
        state_timeline("Errors", [Query(series('max("error_code")', "goe_status", CHARGER, **by_serial),
                                        "$tag_serial")],
                       "go-e `err` (0 = none); the meaning of other codes depends on the firmware.",
                       mappings=ERROR_CODE, h=4),
        timeseries("WiFi signal", "dBm", [Query(series('mean("rssi_dbm")', "goe_status", CHARGER, **by_serial),
                                                "$tag_serial")], w=12, h=6),
        state_timeline("Charging allowed", [Query(series('last("charging_allowed")', "goe_status", CHARGER,
                                                         **by_serial), "$tag_serial")],
                       "`alw`: whether the car may charge now.", mappings=ON_OFF, w=12, h=6),
        row("evcc loadpoints"),
        state_timeline("Mode and state", [
            Query(series('last("mode")', "evcc_loadpoint", SITE, LOADPOINT, by='"loadpoint_title"'),
                  "$tag_loadpoint_title mode"),
            Query(series(lasts(("connected", "connected"), ("charging", "charging")), "evcc_loadpoint", SITE,
                         LOADPOINT, by='"loadpoint_title"'), "$tag_loadpoint_title $col")],
            mappings=ON_OFF, h=6),
        timeseries("Charge power", "watt", [Query(series('mean("charge_power_w")', "evcc_loadpoint", SITE,
                                                         LOADPOINT, by='"loadpoint_title"'), "$tag_loadpoint_title")],
                   w=12),
        timeseries("Currents", "amp", [Query(series(
            means(("charge_current_l1_a", "L1"), ("charge_current_l2_a", "L2"), ("charge_current_l3_a", "L3"),
                  ("offered_current_a", "offered")), "evcc_loadpoint", SITE, LOADPOINT,
            by='"loadpoint_title"'), "$tag_loadpoint_title $col")],
            "Measured phase currents and the current offered to the vehicle.", w=12),
    ]
    return Dashboard("ev-charger", "EV charging: charger",
                     "go-eCharger electrical values, state, limits, energy and errors; evcc loadpoints.",
                     [datasource_variable(), timezone_variable(), V_CHARGER, V_SITE, V_LOADPOINT], panels)


# ---------------------------------------------------------------------------------------- 3 vehicle

def vehicle() -> Dashboard:
    by_vehicle = {"by": '"vehicle"'}
    panels: list[Panel] = [
        row("Battery"),
        timeseries("State of charge", "percent", [Query(series('last("soc_pct")', "ovms_charge", VEHICLE,
                                                               **by_vehicle), "$tag_vehicle")],
                   min=0, max=100, w=12),
        timeseries("Range", "lengthkm", [Query(series(lasts(("estimated_range_km", "estimated"),
                                                            ("ideal_range_km", "ideal")), "ovms_charge", VEHICLE,
                                                      **by_vehicle), "$tag_vehicle $col")], w=12),
        timeseries("Charge power", "watt", [Query(series(
            means(("charge_power_w", "output"), ("charge_power_input_w", "input")), "ovms_charge", VEHICLE,
            **by_vehicle), "$tag_vehicle $col")], "Charger output and input power.", w=12),
        timeseries("12 V battery", "volt", [Query(series('mean("battery_12v_voltage_v")', "ovms_vehicle", VEHICLE,
                                                         **by_vehicle), "$tag_vehicle")], w=12),
        timeseries("Temperatures", "celsius", [Query(series(
            means(("battery_temperature_c", "battery"), ("motor_temperature_c", "motor"),
                  ("pem_temperature_c", "power electronics"), ("charger_temperature_c", "charger"),
                  ("ambient_temperature_c", "ambient"), ("cabin_temperature_c", "cabin")),
            "ovms_vehicle", VEHICLE, **by_vehicle), "$tag_vehicle $col")], w=24),
        row("Location and tyres"),
        geomap("Location", Query(
            'SELECT "latitude_deg" AS "latitude", "longitude_deg" AS "longitude", "speed_kmh" '
            f'FROM "ovms_location" WHERE {where(VEHICLE)}'), "GPS positions (OVMS message L)."),
        timeseries("Tyre pressure", "pressurekpa", [Query(series('mean("pressure_kpa")', "ovms_tpms", VEHICLE,
                                                                 by='"vehicle", "wheel"'), "$tag_vehicle $tag_wheel")],
                   w=12, h=6),
        timeseries("Tyre temperature", "celsius", [Query(series('mean("temperature_c")', "ovms_tpms", VEHICLE,
                                                                by='"vehicle", "wheel"'), "$tag_vehicle $tag_wheel")],
                   w=12, h=6),
        row("Trips"),
        timeseries("Distance per day", "lengthkm", [Query(per_day('sum("trip_km")', '"ovms_trip"', VEHICLE, DRIVEN,
                                                                  by='"vehicle"'), "$tag_vehicle")],
                   "Sum of the trips that ended that local day (OVMS trip log).", bars=True, w=12),
        timeseries("Consumption", KWH_PER_100KM, [Query(
            'SELECT "energy_used_wh" / "trip_km" / 10 AS "consumption" FROM "ovms_trip" '
            f'WHERE {where(VEHICLE, DRIVEN)} GROUP BY "vehicle"', "$tag_vehicle")],
                   "Energy used per 100 km, per trip.", points=True, w=12),
        table("Trips", "none", [Query(
            'SELECT "vehicle" AS "Vehicle", "trip_km" AS "Distance", "drive_time_s" AS "Driving time", '
            '"energy_used_wh" AS "Energy used", "energy_recovered_wh" AS "Recovered", '
            '"energy_used_wh" / "trip_km" / 10 AS "Consumption", "soc_pct" AS "SoC at end", '
            f'"location" AS "Arrived at" FROM "ovms_trip" WHERE {where(VEHICLE, DRIVEN)} '
            'ORDER BY time DESC')],
              "One row per trip from the OVMS trip log (the record written when the ignition goes off).",
              columns={"Distance": "lengthkm", "Driving time": "s", "Energy used": "watth", "Recovered": "watth",
                       "Consumption": KWH_PER_100KM, "SoC at end": "percent"}, decimals=1),
    ]
    return Dashboard("ev-vehicle", "EV charging: vehicle",
                     "State of charge, range, charging, 12 V battery, temperatures, location, tyres and trips (OVMS).",
                     [datasource_variable(), timezone_variable(), V_VEHICLE], panels, time_from="now-7d")


# ---------------------------------------------------------------------------------------- 4 sessions

def sessions() -> Dashboard:
    split = 'sum("solar_energy_wh") AS "Solar", sum("grid_energy_wh") AS "Grid", ' \
            'sum("battery_energy_wh") AS "Home battery", sum("energy_wh") AS "Total"'
    stack = {"Solar": {"color": {"mode": "fixed", "fixedColor": "yellow"}},
             "Grid": {"color": {"mode": "fixed", "fixedColor": "blue"}},
             "Home battery": {"color": {"mode": "fixed", "fixedColor": "green"}},
             "Total": {"custom.drawStyle": "points", "custom.stacking": {"mode": "none", "group": "A"},
                       "color": {"mode": "fixed", "fixedColor": "text"}}}
    split_note = ("Charging sessions by the local day they started, split by where the energy came from "
                  "where a source knows it (go-e whs/whg/whb, evcc solar share); the dot is the total.")
    panels: list[Panel] = [
        row("Energy"),
        timeseries("Charged per day", "watth", [Query(per_day(split, '"charging_session"', SESSION_CHARGER))],
                   split_note, bars=True, stack=True, overrides=stack, w=12),
        timeseries("Charged per week", "watth", [Query(per_week(split, '"charging_session"', SESSION_CHARGER))],
                   "As per day, in weeks from Monday (local time).", bars=True, stack=True, overrides=stack,
                   w=12),
        table("Charged per month", "watth", [Query(per_day('sum("energy_wh") AS "Energy"', '"charging_session"',
                                                           SESSION_CHARGER))],
              "Session energy per local month (daily totals summed by month in Grafana, in the "
              "dashboard's time zone).", transformations=monthly("Energy"), w=8, h=8),
        table("Cost per month", MONEY, [Query(per_day('sum("cost") AS "Cost"', '"charging_session"',
                                                      SESSION_CHARGER))],
              "Cost of the grid part of each session at the configured tariff ([sessions] tariff).",
              transformations=monthly("Cost"), w=8, h=8),
        table("Saved per month", MONEY, [Query(per_day('sum("savings") AS "Saved"', '"charging_session"',
                                                       SESSION_CHARGER))],
              "What solar and the home battery saved against charging everything from the grid.",
              transformations=monthly("Saved"), w=8, h=8),
        row("Sessions"),
        table("Charging sessions", "none", [Query(
            'SELECT "charger" AS "Charger", "vehicle" AS "Vehicle", "end_unix_s" * 1000 AS "End", '
            '"duration_s" AS "Connected", "energy_wh" AS "Energy", "solar_pct" AS "Solar", '
            '"cost" AS "Cost", "savings" AS "Saved", "soc_start_pct" AS "SoC start", '
            '"soc_end_pct" AS "SoC end", "efficiency_pct" AS "Efficiency", "sources" AS "Seen by" '
            f'FROM "charging_session" WHERE {where(SESSION_CHARGER)} ORDER BY time DESC')],
              "Sessions the collector derived from every source (time = start); pauses shorter than "
              "[sessions] gap are merged.",
              columns={"End": "dateTimeAsIso", "Connected": "s", "Energy": "watth", "Solar": "percent",
                       "Cost": MONEY, "Saved": MONEY, "SoC start": "percent", "SoC end": "percent",
                       "Efficiency": "percent"}, decimals=1, h=10),
        timeseries("Charging efficiency", "percent", [
            Query(f'SELECT "efficiency_pct" FROM "charging_session" WHERE {where(SESSION_CHARGER)} '
                  'GROUP BY "charger"', "$tag_charger"),
            Query('SELECT 100 * "charge_energy_wh" / "charge_grid_energy_wh" AS "battery / grid" FROM "ovms_grid" '
                  f'WHERE {where(VEHICLE, FROM_GRID)} GROUP BY "vehicle"', "$tag_vehicle (OVMS)")],
            "Energy into the battery over energy from the wall, per session (vehicle and wallbox "
            "joined), and per charge as the vehicle alone estimates it.", points=True, min=0, max=110, w=24),
        row("As the sources report them"),
        table("evcc sessions", "none", [Query(
            'SELECT "finished_unix_s" * 1000 AS "Finished", "loadpoint_title" AS "Loadpoint", '
            '"vehicle" AS "Vehicle", "energy_wh" AS "Energy", "charge_duration_s" AS "Charging time", '
            '"solar_pct" AS "Solar", "price" AS "Cost", "price_per_kwh" AS "Price", '
            '"soc_start_pct" AS "SoC start", "soc_end_pct" AS "SoC end" '
            f'FROM "evcc_session" WHERE {where(SITE, LOADPOINT)} ORDER BY time DESC')],
              "Finished sessions from evcc's own list (time = start).",
              columns={"Finished": "dateTimeAsIso", "Energy": "watth", "Charging time": "s", "Solar": "percent",
                       "Cost": MONEY, "Price": MONEY_PER_KWH, "SoC start": "percent", "SoC end": "percent"},
              decimals=1, h=8),
        table("OVMS charges", "none", [Query(
            'SELECT "vehicle" AS "Vehicle", "charge_time_s" AS "Duration", "charge_energy_wh" AS "Into battery", '
            '"charge_grid_energy_wh" AS "From grid", '
            '100 * "charge_energy_wh" / "charge_grid_energy_wh" AS "Efficiency", "soc_pct" AS "SoC end", '
            '"location" AS "Location", "charge_type" AS "Type" '
            f'FROM "ovms_grid" WHERE {where(VEHICLE, CHARGE_DONE)} ORDER BY time DESC')],
              "Charges the vehicle logged (OVMS grid log, the record written when a charge is done).",
              columns={"Duration": "s", "Into battery": "watth", "From grid": "watth", "Efficiency": "percent",
                       "SoC end": "percent"}, decimals=1, h=8),
    ]
    variables = [datasource_variable(), timezone_variable(), V_SESSION_CHARGER, V_SITE, V_LOADPOINT, V_VEHICLE]
    return Dashboard("ev-sessions", "EV charging: sessions and energy",
                     "Energy per day, week and month by source, sessions, cost and efficiency.",
                     variables, panels, time_from="now-30d", refresh="5m")


# ---------------------------------------------------------------------------------------- 5 smart charging

def smart_charging() -> Dashboard:
    one = tag_in("evse", "evse")
    panels: list[Panel] = [
        row("EVSE $evse", repeat="evse"),
        timeseries("Commands over charge rate", "watt", [
            Query(series('mean("charge_power_w")', "evenergy_status", one), "charge rate"),
            Query(f'SELECT "max_load_target_a" AS "max load target" FROM "evenergy_command" WHERE {where(one)}')],
            "ev.energy's maximum load target (A, right axis) over the EVSE's charge rate (W).",
            overrides={"max load target": {"unit": "amp", "custom.axisPlacement": "right",
                                           "custom.drawStyle": "points", "custom.pointSize": 7}},
            w=24, h=9),
        state_timeline("Status and commands", [
            Query(series(lasts(("plugged_in", "plugged in"), ("charging", "charging"), ("enabled", "enabled")),
                         "evenergy_status", one), "$col"),
            Query(f'SELECT "reason" AS "command" FROM "evenergy_command" WHERE {where(one)}')],
            "Plugged in, charging and enabled from the status log; each command's reason.",
            mappings=ON_OFF, h=7),
        timeseries("Vehicle SoC", "percent", [Query(series('last("soc_pct")', "evenergy_status", one), "SoC")],
                   min=0, max=100, w=12, h=7),
        table("Commands", "none", [Query(
            'SELECT "reason" AS "Reason", "max_load_target_a" AS "Max load target", '
            '"enabled_target" AS "Enable", "always_enabled" AS "Always enabled" '
            f'FROM "evenergy_command" WHERE {where(one)} ORDER BY time DESC')],
              "ev.energy command log, newest first.", columns={"Max load target": "amp"}, w=12, h=7),
    ]
    return Dashboard("ev-smart-charging", "EV charging: smart charging",
                     "ev.energy commands (max load target, reason) over EVSE status, per EVSE.",
                     [datasource_variable(), timezone_variable(), V_EVSE], panels, time_from="now-2d")


# ---------------------------------------------------------------------------------------- 6 health

# Every process of a fleet (`collector`, `shard`) and every source instance writes series of
# its own: a query takes last() per series first and sums afterwards, so that counters of two
# processes never interleave. Each panel shows one line per shard and the fleet's total.
HEALTH_SERIES = '"collector", "shard", "source", "instance"'
FLEET = tag_in("collector", "collector")
SHARD = tag_in("shard", "shard")
V_COLLECTOR = tag_variable("collector", "Collector", "collector_health", "collector")
V_SHARD = tag_variable("shard", "Shard", "collector_health", "shard", FLEET)
PIPELINE = "\"source\" = 'collector'"


def health_sum(inner: list[tuple[str, str]], *conditions: str, by: str = "", over_time: bool = True) -> str:
    """`inner` (expression, name) per health series, then summed by `by` (all series when empty).

    `over_time`: per `$__interval` bucket (a time series); else the latest value (a stat).
    """
    picks = ", ".join(f'{expression} AS "{name}"' for expression, name in inner)
    sums = ", ".join(f'sum("{name}") AS "{name}"' for _, name in inner)
    bucket = "time($__interval), " if over_time else ""
    text = (f'SELECT {sums} FROM (SELECT {picks} FROM "collector_health" WHERE '
            f'{where(FLEET, SHARD, *conditions)} GROUP BY {bucket}{HEALTH_SERIES})')
    groups = ([INTERVAL.removeprefix("GROUP BY ")] if over_time else []) + ([by] if by else [])
    if over_time:
        text += " WHERE $timeFilter"
    if groups:
        text += " GROUP BY " + ", ".join(groups)
    return text + (" fill(none)" if over_time else "")


def per_shard_and_fleet(inner: list[tuple[str, str]], *conditions: str) -> list[Query]:
    """One line per shard, and the fleet's total."""
    return [Query(health_sum(inner, *conditions, by='"collector", "shard"'), "$tag_collector shard $tag_shard $col"),
            Query(health_sum(inner, *conditions), "fleet $col")]


def health() -> Dashboard:
    rate = lambda field: f'non_negative_derivative(last("{field}"), 1m)'  # noqa: E731
    errors = [(rate(f), n) for f, n in (
        ("errors_transient", "transient"), ("errors_config", "config"), ("errors_payload", "payload"),
        ("errors_rate_limited", "rate limited"), ("polls_failed", "failed polls"))]

    def now(field: str, name: str) -> Query:
        """The fleet's total of a pipeline gauge, now."""
        return Query(health_sum([(f'last("{field}")', name)], PIPELINE, over_time=False), name)

    red_from_one = [{"color": "green", "value": None}, {"color": "red", "value": 1}]
    panels: list[Panel] = [
        row("Pipeline"),
        stat("InfluxDB writes", "none", [Query(latest('last("influx_ok")', "collector_health", FLEET, SHARD, PIPELINE,
                                                      by='"collector", "shard"'), "shard $tag_shard")],
             "Whether each shard's last write to InfluxDB succeeded.",
             mappings=value_map({True: ("OK", "green"), False: ("failing", "red")}), w=4),
        stat("Shards reporting", "none", [
            Query(f'SELECT count("backlog") AS "reporting" FROM (SELECT last("backlog") AS "backlog" '
                  f'FROM "collector_health" WHERE {where(FLEET, PIPELINE)} GROUP BY "collector", "shard")',
                  "reporting"),
            Query(f'SELECT max("shards") AS "configured" FROM (SELECT last("shards") AS "shards" '
                  f'FROM "collector_health" WHERE {where(FLEET, PIPELINE)} GROUP BY "collector", "shard")',
                  "configured")],
             "Processes that wrote health in the last 10 minutes, against [collector] shards: a shard "
             "that does not report collects nothing.", time_from="10m", w=4),
        stat("Backlog", "suffix: points", [now("backlog", "backlog")],
             "Points in the local stores not yet shipped (all shards).", w=4),
        stat("Dead letters", "suffix: points", [now("dead_letters", "dead letters")],
             "Lines InfluxDB refused (kept with the reason in each shard's store).", thresholds=red_from_one, w=4),
        stat("Local stores", "bytes", [now("store_bytes", "store")], "Used size of all shards' stores.", w=4),
        stat("Discarded by size bound", "suffix: points", [now("store_discarded", "discarded")],
             thresholds=red_from_one, w=4),
        timeseries("Points collected per shard", PER_MINUTE, per_shard_and_fleet([(rate("points"), "points")], SOURCE),
                   "Points committed to the local stores per minute, per shard and for the fleet (counters "
                   "restart with the process; non_negative_derivative skips the reset).", w=12),
        timeseries("Backlog per shard", "suffix: points", per_shard_and_fleet([('last("backlog")', "backlog")], PIPELINE),
                   "Points not yet shipped to InfluxDB, per shard and for the fleet.", w=12),
        timeseries("Points collected per source", PER_MINUTE, [Query(health_sum(
            [(rate("points"), "points")], SOURCE, by='"source"'), "$tag_source")],
            "Points committed to the local stores per minute, all shards.", w=12),
        timeseries("Points shipped per shard", PER_MINUTE, per_shard_and_fleet([(rate("shipped"), "shipped")], PIPELINE),
                   "Points InfluxDB acknowledged per minute.", w=12),
        row("Sources"),
        timeseries("Errors per source", PER_MINUTE, [Query(health_sum(errors, SOURCE, by='"source"'), "$tag_source $col")],
                   "Errors by kind per minute, all shards.", stack=True, w=12),
        timeseries("Provider quota left", "suffix: requests", [Query(series(
            'min("quota_remaining")', "collector_health", FLEET, SHARD, SOURCE, by=HEALTH_SERIES),
            "$tag_source $tag_instance")],
            "Requests left in each OAuth client's hourly quota (ev.energy), per instance; a client and "
            "its quota live in one shard.", step=True, w=12),
        timeseries("Polls", PER_MINUTE, [Query(health_sum(
            [(rate("polls"), "polls"), (rate("polls_skipped"), "skipped (limit)"), (rate("polls_late"), "late"),
             (rate("no_data"), "no fresh data")], SOURCE, by='"source"'), "$tag_source $col")],
            "All shards; `late` on every source at once: a process is overloaded, add a shard.", w=12),
        table("Last error per source", "none", [Query(
            f'SELECT last("last_error") AS "Last error" FROM "collector_health" WHERE {where(FLEET, SHARD, SOURCE)} '
            f'GROUP BY {HEALTH_SERIES}')],
              "The most recent error message each source instance reported, per shard (secret-free).", w=12, h=8),
    ]
    return Dashboard("ev-health", "EV charging: collector health",
                     "Points collected and shipped per shard and source, backlog, dead letters, errors, quota.",
                     [datasource_variable(), V_COLLECTOR, V_SHARD, V_SOURCE], panels, time_from="now-6h",
                     refresh="30s")


DASHBOARDS = {"overview": overview, "charger": charger, "vehicle": vehicle, "sessions": sessions,
              "smart-charging": smart_charging, "health": health}


def render() -> dict[str, str]:
    """File name -> JSON text, exactly as committed."""
    return {f"{name}.json": json.dumps(make().to_json(), indent=2, ensure_ascii=False) + "\n"
            for name, make in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if dashboards/json is not up to date")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = JSON_DIR / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale: {', '.join(stale)}; run `python dashboards/build.py`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
