"""The dashboards, as code. `python dashboards/build.py` writes dashboards/json/*.json;
`--check` exits 1 when the committed JSON differs from what this file generates.

Conventions every query follows (see dashboards/README.md):
- raw InfluxQL, fields and measurements from docs/schema.md only, nothing InfluxDB 3 or
  InfluxDB Cloud Serverless lacks (no tz(), INTEGRAL, SAMPLE, SLIMIT, SHOW SERIES, INTO, ...);
- `$timeFilter` in every WHERE, `$__interval` for time-series buckets, `fill(none)`;
- device filters as `"tag" =~ /^(${var:regex})$/` (one, several or All);
- days and months are the collector's rollups (`rollup_daily`, `rollup_monthly`), computed per
  local day of `[rollups] timezone`; raw samples only on panels of two days or less.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):                      # run as a script: make `dashboards` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboards.panels import (Dashboard, Panel, Query, datasource_variable, gauge, geomap, row, stat,
                               state_timeline, table, tag_in, tag_variable, timeseries, value_map, where)

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

# The rollups: one point per entity and local day / month, tagged kind and name.
DAILY, MONTHLY = "rollup_daily", "rollup_monthly"
KIND = {kind: f"\"kind\" = '{kind}'" for kind in ("charger", "loadpoint", "site", "vehicle")}
R_CHARGER = (KIND["charger"], tag_in("name", "rollup_charger"))
R_SESSION_CHARGER = (KIND["charger"], tag_in("name", "session_charger"))
R_LOADPOINT = (KIND["loadpoint"], tag_in("name", "rollup_loadpoint"))
R_SITE = (KIND["site"], tag_in("name", "rollup_site"))
R_VEHICLE = (KIND["vehicle"], tag_in("name", "rollup_vehicle"))
V_RCHARGER = tag_variable("rollup_charger", "Charger", DAILY, "name", KIND["charger"])
V_RLOADPOINT = tag_variable("rollup_loadpoint", "evcc loadpoint", DAILY, "name", KIND["loadpoint"])
V_RSITE = tag_variable("rollup_site", "Site", DAILY, "name", KIND["site"])
V_RVEHICLE = tag_variable("rollup_vehicle", "Vehicle", DAILY, "name", KIND["vehicle"])

SPLIT_COLORS = {"Solar": {"color": {"mode": "fixed", "fixedColor": "yellow"}},
                "Grid": {"color": {"mode": "fixed", "fixedColor": "blue"}},
                "Home battery": {"color": {"mode": "fixed", "fixedColor": "green"}}}
LONG = "now-1y"                                    # default range of the dashboards on rollups

CAR_STATE = value_map({0: ("unknown", "text"), 1: ("idle", "blue"), 2: ("charging", "green"),
                       3: ("waiting for car", "yellow"), 4: ("complete", "purple"), 5: ("error", "red"),
                       6: ("initializing", "orange")})
ON_OFF = value_map({True: ("yes", "green"), False: ("no", "transparent")})
ERROR_CODE = [{"type": "value", "options": {"0": {"text": "no error", "color": "green", "index": 0}}},
              {"type": "range", "options": {"from": 1, "to": 1000,
                                            "result": {"text": "error", "color": "red", "index": 1}}}]


def each(select: str, measurement: str, conditions: tuple[str, ...], *, order: str = "") -> str:
    """Rollup points as they are, one series per entity (`$tag_name` in aliases)."""
    return (f'SELECT {select} FROM "{measurement}" WHERE {where(*conditions)} GROUP BY "name"'
            + (f" {order}" if order else ""))


def summed(select: str, measurement: str, conditions: tuple[str, ...]) -> str:
    """Rollup points added up over the selected entities, period by period.

    The points of one period share a timestamp, local midnight, and every time zone's midnight
    falls on a quarter hour of UTC: 15-minute buckets gather exactly one period each, with no
    tz() (which InfluxDB Cloud Serverless lacks) and whatever the zone.
    """
    return f'SELECT {select} FROM "{measurement}" WHERE {where(*conditions)} GROUP BY time(15m) fill(none)'


def total(select: str, measurement: str, conditions: tuple[str, ...], *, by: str = "") -> str:
    """One value over the whole time range (per entity with `by`)."""
    return (f'SELECT {select} FROM "{measurement}" WHERE {where(*conditions)}'
            + (f" GROUP BY {by}" if by else ""))


def newest(fieldname: str, measurement: str, conditions: tuple[str, ...], alias: str) -> str:
    """The newest rollup point's value per entity, summed: this month or today, whatever the
    dashboard's time zone (`now/M` in another zone than the collector's would miss the point)."""
    return (f'SELECT sum("v") AS "{alias}" FROM (SELECT last("{fieldname}") AS "v" FROM "{measurement}" '
            f'WHERE {where(*conditions)} GROUP BY "name")')


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


def by_year(*fields: str) -> list[dict]:
    """Monthly rows summed per year in Grafana (the year of each month's start, in the
    dashboard's time zone: keep it the collector's `[rollups] timezone`)."""
    return [{"id": "formatTime", "options": {"timeField": "Time", "outputFormat": "YYYY", "useTimezone": True}},
            {"id": "groupBy", "options": {"fields": {"Time": {"aggregations": [], "operation": "groupby"},
                                                     **{f: {"aggregations": ["sum"], "operation": "aggregate"}
                                                        for f in fields}}}},
            {"id": "organize", "options": {"renameByName": {"Time": "Year", **{f: f for f in fields}},
                                           "excludeByName": {}, "indexByName": {}}}]


# ---------------------------------------------------------------------------------------- 1 overview

def overview() -> Dashboard:
    charged_today = [
        Query(f'SELECT sum("e") FROM (SELECT spread("energy_total_wh") AS "e" FROM "goe_status" '
              f'WHERE {where(CHARGER)} GROUP BY "serial")', "go-e chargers"),
        Query(f'SELECT sum("e") FROM (SELECT spread("charge_total_import_wh") AS "e" FROM "evcc_loadpoint" '
              f'WHERE {where(SITE, LOADPOINT)} GROUP BY "loadpoint_title")', "evcc loadpoints")]
    site_energy = [Query(latest('spread("pv_energy_wh") AS "PV", spread("grid_energy_wh") AS "Grid import"',
                                "evcc_site", SITE))]
    charged_month = [Query(each('last("energy_wh")', MONTHLY, R_CHARGER), "$tag_name")]
    site_month = [Query(newest("pv_energy_wh", MONTHLY, R_SITE, "PV")),
                  Query(newest("grid_import_wh", MONTHLY, R_SITE, "Grid import"))]
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
        stat("Charged this month", "watth", charged_month,
             "Per charger, from the collector's monthly rollup (updated every few minutes).",
             time_from="32d", w=6),
        stat("PV and grid today", "watth", site_energy, "evcc site meters since local midnight.",
             time_from="now/d", w=6),
        stat("PV and grid this month", "watth", site_month, "evcc site meters, monthly rollup.",
             time_from="32d", w=6),
        timeseries("Power", "watt", [
            Query(series(means(("pv_power_w", "PV"), ("grid_power_w", "Grid"), ("home_power_w", "Home"),
                               ("battery_power_w", "Battery")), "evcc_site", SITE)),
            Query(series('mean("power_w")', "goe_status", CHARGER, by='"serial"'), "go-e $tag_serial"),
            Query(series('mean("charge_power_w")', "evcc_loadpoint", SITE, LOADPOINT, by='"loadpoint_title"'),
                  "$tag_loadpoint_title")], "Site flows and charging power.", w=24, h=9),
        timeseries("Charged per day, last 30 days", "watth", [Query(each('"energy_wh"', DAILY, R_CHARGER),
                                                                   "$tag_name")],
                   "Meter energy per charger and local day (daily rollup).", bars=True, stack=True,
                   time_from="30d", w=24, h=7),
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
                     [datasource_variable(), V_SITE, V_CHARGER, V_LOADPOINT, V_VEHICLE, V_SESSION_CHARGER,
                      V_RCHARGER, V_RSITE], panels)


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
        timeseries("Energy per day", "watth", [Query(each('"energy_wh"', DAILY, R_CHARGER), "$tag_name")],
                   "Meter energy per local day (daily rollup; a charger named in [sessions.chargers] "
                   "under that name).", bars=True, time_from="30d", w=12),
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
        timeseries("Loadpoint energy per day", "watth", [Query(each('"energy_wh"', DAILY, R_LOADPOINT),
                                                               "$tag_name")],
                   "evcc's loadpoint meter per local day (daily rollup).", bars=True, time_from="30d", w=24),
    ]
    return Dashboard("ev-charger", "EV charging: charger",
                     "go-eCharger electrical values, state, limits, energy and errors; evcc loadpoints.",
                     [datasource_variable(), V_CHARGER, V_SITE, V_LOADPOINT, V_RCHARGER, V_RLOADPOINT], panels)


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
        timeseries("Distance per day", "lengthkm", [Query(each('"distance_km"', DAILY, R_VEHICLE), "$tag_name")],
                   "Odometer difference per local day (daily rollup).", bars=True, time_from="30d", w=12),
        timeseries("Consumption", KWH_PER_100KM, [Query(
            'SELECT "energy_used_wh" / "trip_km" / 10 AS "consumption" FROM "ovms_trip" '
            f'WHERE {where(VEHICLE, DRIVEN)} GROUP BY "vehicle"', "$tag_vehicle")],
                   "Energy used per 100 km, per trip.", points=True, time_from="7d", w=12),
        table("Trips", "none", [Query(
            'SELECT "vehicle" AS "Vehicle", "trip_km" AS "Distance", "drive_time_s" AS "Driving time", '
            '"energy_used_wh" AS "Energy used", "energy_recovered_wh" AS "Recovered", '
            '"energy_used_wh" / "trip_km" / 10 AS "Consumption", "soc_pct" AS "SoC at end", '
            f'"location" AS "Arrived at" FROM "ovms_trip" WHERE {where(VEHICLE, DRIVEN)} '
            'ORDER BY time DESC')],
              "One row per trip from the OVMS trip log (the record written when the ignition goes off).",
              columns={"Distance": "lengthkm", "Driving time": "s", "Energy used": "watth", "Recovered": "watth",
                       "Consumption": KWH_PER_100KM, "SoC at end": "percent"}, decimals=1, time_from="7d"),
    ]
    return Dashboard("ev-vehicle", "EV charging: vehicle",
                     "State of charge, range, charging, 12 V battery, temperatures, location, tyres and trips (OVMS).",
                     [datasource_variable(), V_VEHICLE, V_RVEHICLE], panels, time_from="now-2d")


# ---------------------------------------------------------------------------------------- 4 sessions

def sessions() -> Dashboard:
    split = ('sum("session_solar_energy_wh") AS "Solar", sum("session_grid_energy_wh") AS "Grid", '
             'sum("session_battery_energy_wh") AS "Home battery"')
    split_note = ("Charging sessions by the local day they started, split by where the energy came from "
                  "where a source knows it (go-e whs/whg/whb, evcc solar share); daily rollup.")
    per_month = ('"period" AS "Month", "name" AS "Charger", "sessions" AS "Sessions", '
                 '"session_energy_wh" AS "Energy", "session_solar_energy_wh" AS "Solar", '
                 '"cost" AS "Cost", "savings" AS "Saved"')
    panels: list[Panel] = [
        row("Energy"),
        timeseries("Charged per day", "watth", [Query(summed(split, DAILY, R_SESSION_CHARGER))],
                   split_note, bars=True, stack=True, overrides=SPLIT_COLORS, w=12),
        timeseries("Charged per month", "watth", [Query(summed(split, MONTHLY, R_SESSION_CHARGER))],
                   "As per day, per local month (monthly rollup).", bars=True, stack=True,
                   overrides=SPLIT_COLORS, w=12),
        table("Per month", "none", [Query(total(f"{per_month}", MONTHLY, R_SESSION_CHARGER)
                                          + " ORDER BY time DESC")],
              "Sessions, energy, cost at the configured tariff ([sessions] tariff) and what solar "
              "and the home battery saved, per charger and local month.",
              columns={"Energy": "watth", "Solar": "watth", "Cost": MONEY, "Saved": MONEY}, decimals=1, h=8),
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
    variables = [datasource_variable(), V_SESSION_CHARGER, V_SITE, V_LOADPOINT, V_VEHICLE]
    return Dashboard("ev-sessions", "EV charging: sessions and energy",
                     "Energy per day and month by source, sessions, cost and efficiency.",
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
                     [datasource_variable(), V_EVSE], panels, time_from="now-2d")


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


# ---------------------------------------------------------------------------------------- 7 months and years

def energy() -> Dashboard:
    year = "now/y"
    solar_share = ('100 * sum("session_solar_energy_wh") / sum("session_energy_wh")')
    per_month = ('"period" AS "Month", "name" AS "Charger", "energy_wh" AS "Metered", '
                 '"session_energy_wh" AS "Sessions energy", "session_solar_energy_wh" AS "Solar", '
                 '"session_grid_energy_wh" AS "Grid", "session_battery_energy_wh" AS "Home battery", '
                 '"sessions" AS "Sessions", "cost" AS "Cost", "savings" AS "Saved"')
    energy_units = {"Metered": "watth", "Sessions energy": "watth", "Solar": "watth", "Grid": "watth",
                    "Home battery": "watth", "Cost": MONEY, "Saved": MONEY}
    panels: list[Panel] = [
        row("This year"),
        stat("Charged", "watth", [Query(total('sum("energy_wh")', MONTHLY, R_CHARGER))],
             "Meter energy of the selected chargers since 1 January.", time_from=year, w=5),
        stat("Cost", MONEY, [Query(total('sum("cost")', MONTHLY, R_CHARGER))],
             "Cost of the sessions at the configured tariff.", decimals=2, time_from=year, w=5),
        stat("Saved", MONEY, [Query(total('sum("savings")', MONTHLY, R_CHARGER))],
             "What solar and the home battery saved against grid-only charging.", decimals=2,
             time_from=year, w=5),
        stat("Sessions", "none", [Query(total('sum("sessions")', MONTHLY, R_CHARGER))], time_from=year, w=4),
        stat("Solar share", "percent", [Query(total(f"{solar_share} AS \"solar\"", MONTHLY, R_CHARGER))],
             "Share of session energy that came from solar.", decimals=1, time_from=year, w=5),
        row("Per month"),
        timeseries("Charged per month", "watth", [Query(each('"energy_wh"', MONTHLY, R_CHARGER), "$tag_name")],
                   "Meter energy per charger and local month (monthly rollup).", bars=True, stack=True, w=12),
        timeseries("Cost per month", MONEY, [Query(each('"cost" AS "cost", "savings" AS "saved"', MONTHLY,
                                                        R_CHARGER), "$tag_name $col")],
                   "Cost and savings of the sessions per charger and month.", bars=True, w=12),
        table("Months", "none", [Query(total(per_month, MONTHLY, R_CHARGER) + " ORDER BY time DESC")],
              "Per charger and local month: metered energy, the sessions' energy by source, cost and "
              "savings.", columns=energy_units, decimals=1, h=9),
        table("Years", "none", [Query(summed('sum("energy_wh") AS "Charged", sum("cost") AS "Cost", '
                                             'sum("sessions") AS "Sessions"', MONTHLY, R_CHARGER))],
              "The months added up per year.", columns={"Charged": "watth", "Cost": MONEY},
              transformations=by_year("Charged", "Cost", "Sessions"), decimals=1, time_from="5y", w=12, h=7),
        timeseries("Site per month", "watth", [Query(each(
            '"pv_energy_wh" AS "PV", "grid_import_wh" AS "grid import", "grid_export_wh" AS "grid export", '
            '"home_energy_wh" AS "home"', MONTHLY, R_SITE), "$tag_name $col")],
            "evcc site: production, grid import and export, home consumption per month.", bars=True, w=12, h=7),
    ]
    return Dashboard("ev-energy", "EV charging: months and years",
                     "Energy and cost per month and year, from the collector's rollups.",
                     [datasource_variable(), V_RCHARGER, V_RSITE], panels, time_from=LONG, refresh="15m")


# ---------------------------------------------------------------------------------------- 8 efficiency

def efficiency() -> Dashboard:
    months = ('"period" AS "Month", "name" AS "Vehicle", "vehicle_energy_wall_wh" AS "From the wall", '
              '"vehicle_energy_wh" AS "Into the battery", '
              '"vehicle_energy_wall_wh" - "vehicle_energy_wh" AS "Losses", "efficiency_pct" AS "Efficiency"')
    panels: list[Panel] = [
        row("Wall to battery"),
        timeseries("Efficiency per month", "percent", [Query(each('"efficiency_pct"', MONTHLY, R_VEHICLE),
                                                             "$tag_name")],
                   "Energy into the battery over energy from the wall, in the sessions where both the "
                   "wallbox and the vehicle reported it (monthly rollup).", points=True, min=50, max=100, w=12),
        timeseries("Efficiency per day", "percent", [Query(each('"efficiency_pct"', DAILY, R_VEHICLE), "$tag_name")],
                   "As per month, per local day.", points=True, min=50, max=100, w=12),
        timeseries("Wall and battery per month", "watth", [Query(each(
            '"vehicle_energy_wall_wh" AS "from the wall", "vehicle_energy_wh" AS "into the battery"',
            MONTHLY, R_VEHICLE), "$tag_name $col")],
            "The two sides of the same sessions; the difference is lost in cables, charger and battery.",
            bars=True, w=12),
        timeseries("Per session", "percent", [Query(
            f'SELECT "efficiency_pct" FROM "charging_session" WHERE {where(tag_in("vehicle", "rollup_vehicle"))} '
            'GROUP BY "charger"', "$tag_charger")],
            "Each session's efficiency, by charger: a charger that is always lower loses more.",
            points=True, min=50, max=100, w=12),
        table("Months", "none", [Query(total(months, MONTHLY, R_VEHICLE) + " ORDER BY time DESC")],
              "Per vehicle and local month.", columns={"From the wall": "watth", "Into the battery": "watth",
                                                      "Losses": "watth", "Efficiency": "percent"},
              decimals=1, h=8),
    ]
    return Dashboard("ev-efficiency", "EV charging: efficiency",
                     "Energy from the wall against energy into the battery, per vehicle over time.",
                     [datasource_variable(), V_RVEHICLE], panels, time_from=LONG, refresh="15m")


# ---------------------------------------------------------------------------------------- 9 battery health

def battery() -> Dashboard:
    panels: list[Panel] = [
        row("State of health"),
        stat("State of health", "percent", [Query(each('last("soh_pct")', DAILY, R_VEHICLE), "$tag_name")],
             "The vehicle's latest state-of-health reading (OVMS).", decimals=1, w=8, h=5),
        stat("Driven in the range", "lengthkm", [Query(each('sum("distance_km")', DAILY, R_VEHICLE), "$tag_name")],
             "Odometer distance over the time range, to read the curves below against.", w=8, h=5),
        stat("Calculated capacity", "none", [Query(each('last("cac_ah") AS "Ah", last("battery_capacity_wh") AS "Wh"',
                                                        DAILY, R_VEHICLE), "$tag_name $col")],
             "The latest calculated capacity (CAC, Ah) and usable capacity (Wh, where the vehicle "
             "reports it).", decimals=1, w=8, h=5),
        timeseries("State of health per day", "percent", [Query(each('"soh_pct"', DAILY, R_VEHICLE), "$tag_name")],
                   "Last reading of each local day (daily rollup).", step=True, w=12),
        timeseries("Capacity", "none", [Query(each('"cac_ah" AS "CAC (Ah)", "battery_capacity_wh" AS "usable (Wh)"',
                                                   DAILY, R_VEHICLE), "$tag_name $col")],
                   "Calculated capacity (Ah) and usable capacity (Wh) as the vehicle reports them.",
                   step=True, w=12),
        timeseries("State of health per month", "percent", [Query(each('"soh_pct"', MONTHLY, R_VEHICLE),
                                                                  "$tag_name")],
                   "Last reading of each month: the long trend.", points=True, w=12),
        timeseries("From the trip log", "percent", [Query(
            f'SELECT "soh_pct" FROM "ovms_trip" WHERE {where(VEHICLE, DRIVEN)} GROUP BY "vehicle"',
            "$tag_vehicle")], "State of health in the OVMS trip records (one per drive).", points=True, w=12),
    ]
    return Dashboard("ev-battery", "EV charging: battery health",
                     "State of health and capacity per vehicle over time (OVMS).",
                     [datasource_variable(), V_RVEHICLE, V_VEHICLE], panels, time_from=LONG, refresh="15m")


# ---------------------------------------------------------------------------------------- 10 trips and consumption

def trips() -> Dashboard:
    consumption = '"consumption_wh_per_km" / 10'
    months = ('"period" AS "Month", "name" AS "Vehicle", "trips" AS "Trips", "distance_km" AS "Driven", '
              '"drive_energy_wh" AS "Energy", "consumption_wh_per_km" / 10 AS "Consumption"')
    panels: list[Panel] = [
        row("Distance"),
        timeseries("Driven per day", "lengthkm", [Query(each('"distance_km"', DAILY, R_VEHICLE), "$tag_name")],
                   "Odometer difference per local day (daily rollup).", bars=True, w=12),
        timeseries("Driven per month", "lengthkm", [Query(each('"distance_km"', MONTHLY, R_VEHICLE), "$tag_name")],
                   "Odometer difference per local month.", bars=True, w=12),
        row("Consumption"),
        timeseries("Consumption per day", KWH_PER_100KM, [Query(each(f'{consumption}', DAILY, R_VEHICLE),
                                                               "$tag_name")],
                   "Energy the day's trips used, less what they recovered, per 100 km (OVMS trip log).",
                   points=True, decimals=1, w=12),
        timeseries("Consumption per month", KWH_PER_100KM, [Query(each(f'{consumption}', MONTHLY, R_VEHICLE),
                                                                 "$tag_name")],
                   "As per day, per month: the seasons show here.", points=True, decimals=1, w=12),
        table("Months", "none", [Query(total(months, MONTHLY, R_VEHICLE) + " ORDER BY time DESC")],
              "Trips, distance, energy and consumption per vehicle and local month.",
              columns={"Driven": "lengthkm", "Energy": "watth", "Consumption": KWH_PER_100KM}, decimals=1,
              w=12, h=8),
        table("Trips", "none", [Query(
            'SELECT "vehicle" AS "Vehicle", "trip_km" AS "Distance", "drive_time_s" AS "Driving time", '
            '"energy_used_wh" AS "Energy used", "energy_recovered_wh" AS "Recovered", '
            '("energy_used_wh" - "energy_recovered_wh") / "trip_km" / 10 AS "Consumption", '
            '"ambient_temperature_c" AS "Outside", '
            f'"location" AS "Arrived at" FROM "ovms_trip" WHERE {where(VEHICLE, DRIVEN)} ORDER BY time DESC')],
              "The trips of the last 30 days (OVMS trip log).",
              columns={"Distance": "lengthkm", "Driving time": "s", "Energy used": "watth", "Recovered": "watth",
                       "Consumption": KWH_PER_100KM, "Outside": "celsius"}, decimals=1, time_from="30d",
              w=12, h=8),
    ]
    return Dashboard("ev-trips", "EV charging: trips and consumption",
                     "Distance and consumption per day and month, and the trip log.",
                     [datasource_variable(), V_RVEHICLE, V_VEHICLE], panels, time_from="now-90d", refresh="15m")


# ---------------------------------------------------------------------------------------- 11 vampire drain

def vampire() -> Dashboard:
    rate = '24 * "parked_soc_loss_pct" / "parked_hours"'
    months = ('"period" AS "Month", "name" AS "Vehicle", "parked_hours" AS "Parked", '
              '"parked_soc_loss_pct" AS "SoC lost", "parked_range_loss_km" AS "Range lost", '
              f'{rate} AS "Per day"')
    panels: list[Panel] = [
        row("Energy lost while parked"),
        timeseries("SoC lost while parked, per day", "percent", [Query(each('"parked_soc_loss_pct"', DAILY,
                                                                            R_VEHICLE), "$tag_name")],
                   "State of charge lost between readings while the vehicle was neither driving nor "
                   "charging (daily rollup).", bars=True, decimals=1, w=12),
        timeseries("Drain rate", "suffix:%/day", [Query(each(rate, DAILY, R_VEHICLE), "$tag_name")],
                   "SoC lost per 24 hours parked: a rate that rises points at a module, an app or a "
                   "sentry mode keeping the car awake.", points=True, decimals=2, w=12),
        timeseries("Range lost while parked, per day", "lengthkm", [Query(each('"parked_range_loss_km"', DAILY,
                                                                               R_VEHICLE), "$tag_name")],
                   "Ideal range lost while parked.", bars=True, w=12),
        table("Months", "none", [Query(total(months, MONTHLY, R_VEHICLE) + " ORDER BY time DESC")],
              "Parked time, what it cost, and the rate per day parked.",
              columns={"Parked": "h", "SoC lost": "percent", "Range lost": "lengthkm", "Per day": "percent"},
              decimals=2, w=12),
        row("The last two days"),
        timeseries("State of charge", "percent", [
            Query(series('last("soc_pct")', "ovms_charge", VEHICLE, by='"vehicle"'), "$tag_vehicle")],
            "Raw readings: where it falls while the car is off and not charging, that is the drain above.",
            min=0, max=100, time_from="2d", w=12),
        state_timeline("Ignition and charging", [
            Query(series(lasts(("car_on", "ignition"), ("charging", "charging")), "ovms_vehicle", VEHICLE,
                         by='"vehicle"'), "$tag_vehicle $col")],
            "Neither on nor charging: parked.", mappings=ON_OFF, time_from="2d", w=12, h=8),
    ]
    return Dashboard("ev-vampire-drain", "EV charging: vampire drain",
                     "State of charge and range lost while the vehicle is parked.",
                     [datasource_variable(), V_RVEHICLE, V_VEHICLE], panels, time_from="now-90d", refresh="15m")


# ---------------------------------------------------------------------------------------- 12 solar and tariffs

def solar_tariffs() -> Dashboard:
    paid = '1000 * "cost" / "session_grid_energy_wh"'
    split = ('sum("session_solar_energy_wh") AS "Solar", sum("session_grid_energy_wh") AS "Grid", '
             'sum("session_battery_energy_wh") AS "Home battery"')
    panels: list[Panel] = [
        row("Solar"),
        timeseries("Solar share per day", "percent", [Query(each(
            '100 * "session_solar_energy_wh" / "session_energy_wh"', DAILY, R_CHARGER), "$tag_name")],
            "Share of the day's charging that came from the sun (sessions by the day they started).",
            points=True, min=0, max=100, w=12),
        timeseries("Charged by source per month", "watth", [Query(summed(split, MONTHLY, R_CHARGER))],
                   "Session energy from solar, grid and home battery per local month.", bars=True, stack=True,
                   overrides=SPLIT_COLORS, w=12),
        timeseries("PV: used at home and exported", "watth", [Query(each(
            '"pv_energy_wh" - "grid_export_wh" AS "used", "grid_export_wh" AS "exported"', DAILY, R_SITE),
            "$tag_name $col")], "evcc site: PV production per day, split into what the site used "
                                "(home, battery, cars) and what went to the grid.", bars=True, stack=True, w=24),
        row("Tariffs"),
        timeseries("Paid for grid energy against the day's price", MONEY_PER_KWH, [
            Query(each(f"{paid}", DAILY, R_CHARGER), "$tag_name paid"),
            Query(each('"grid_price_mean_per_kwh"', DAILY, R_SITE), "$tag_name mean grid price")],
            "What a charger paid per kWh from the grid, against the mean grid price of the day: "
            "below the line, charging found the cheap hours.", points=True, decimals=3, w=12),
        table("Months", "none", [Query(total(
            f'"period" AS "Month", "name" AS "Charger", "session_grid_energy_wh" AS "From grid", '
            f'"cost" AS "Cost", {paid} AS "Paid per kWh", '
            '100 * "session_solar_energy_wh" / "session_energy_wh" AS "Solar share"', MONTHLY, R_CHARGER)
            + " ORDER BY time DESC")],
              "Per charger and local month.", columns={"From grid": "watth", "Cost": MONEY,
                                                      "Paid per kWh": MONEY_PER_KWH, "Solar share": "percent"},
              decimals=3, w=12),
        timeseries("Charging against the price, last two days", "watt", [
            Query(series('mean("charge_power_w")', "evcc_loadpoint", SITE, LOADPOINT, by='"loadpoint_title"'),
                  "$tag_loadpoint_title"),
            Query(series('mean("power_w")', "goe_status", CHARGER, by='"serial"'), "go-e $tag_serial"),
            Query(series('last("tariff_grid_per_kwh") AS "grid price"', "evcc_site", SITE, fill="previous"))],
            "Raw: charging power (W) under evcc's grid price (right axis).",
            overrides={"grid price": {"unit": MONEY_PER_KWH, "custom.axisPlacement": "right",
                                      "custom.lineInterpolation": "stepAfter"}}, time_from="2d", w=24),
    ]
    return Dashboard("ev-solar-tariffs", "EV charging: solar and tariffs",
                     "Solar share of charging, and whether charging found the cheap hours.",
                     [datasource_variable(), V_RCHARGER, V_RSITE, V_SITE, V_LOADPOINT, V_CHARGER], panels,
                     time_from="now-90d", refresh="15m")


# ---------------------------------------------------------------------------------------- 13 statement overview

def statement() -> Dashboard:
    columns = {"Energy": "watth", "Cost": MONEY}
    months = ('"period" AS "Month", "name" AS "{who}", "sessions" AS "Sessions", '
              '"session_energy_wh" AS "Energy", "cost" AS "Cost"')
    panels: list[Panel] = [
        row("This month"),
        stat("Cost per vehicle", MONEY, [Query(each('last("cost")', MONTHLY, R_VEHICLE), "$tag_name")],
             "This month so far, at the configured tariff.", decimals=2, time_from="32d", w=12, h=5),
        stat("Energy per vehicle", "watth", [Query(each('last("session_energy_wh")', MONTHLY, R_VEHICLE),
                                                   "$tag_name")],
             "This month so far, from the wall.", time_from="32d", w=12, h=5),
        row("Per month"),
        table("Per vehicle", "none", [Query(total(months.format(who="Vehicle"), MONTHLY, R_VEHICLE)
                                            + " ORDER BY time DESC")],
              "What to bill or claim per vehicle: sessions, energy and cost per local month.",
              columns=columns, decimals=2, w=12),
        table("Per charger", "none", [Query(total(months.format(who="Charger"), MONTHLY, R_CHARGER)
                                            + " ORDER BY time DESC")],
              "The same per charger (a charger named `vehicle:<name>` holds charges only the vehicle saw).",
              columns=columns, decimals=2, w=12),
        table("Sessions", "none", [Query(
            'SELECT "vehicle" AS "Vehicle", "card" AS "Card", "charger" AS "Charger", '
            '"end_unix_s" * 1000 AS "End", "meter_start_wh" AS "Meter start", '
            '"meter_end_wh" AS "Meter end", "energy_wh" AS "Energy", '
            '"price_per_kwh" AS "Price per kWh", "cost" AS "Cost", "currency" AS "Currency", '
            '"price_source" AS "Priced by", "meter_mismatch" AS "Meter disagrees" '
            f'FROM "charging_session" WHERE {where(tag_in("charger", "rollup_charger"))} ORDER BY time DESC')],
              "Every session of the month (time = start), for the statement's detail: the meter "
              "readings at start and end, the card that started it, the price applied.",
              columns={"End": "dateTimeAsIso", "Meter start": "watth", "Meter end": "watth",
                       "Energy": "watth", "Cost": MONEY}, decimals=2,
              time_from="now/M", h=10),
    ]
    return Dashboard("ev-statement", "EV charging: statement overview",
                     "Sessions, energy and cost per vehicle and charger and month, for statements.",
                     [datasource_variable(), V_RVEHICLE, V_RCHARGER], panels, time_from=LONG, refresh="15m")


DASHBOARDS = {"overview": overview, "charger": charger, "vehicle": vehicle, "sessions": sessions,
              "smart-charging": smart_charging, "health": health, "energy": energy, "efficiency": efficiency,
              "battery": battery, "trips": trips, "vampire-drain": vampire, "solar-tariffs": solar_tariffs,
              "statement": statement}


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
