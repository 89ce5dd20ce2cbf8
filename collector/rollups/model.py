"""The `rollup_daily` and `rollup_monthly` measurements: one point per entity and local period.

Tags are fixed once (InfluxDB 3 fixes a measurement's tag set at its first write): `kind` says
what the entity is, `name` which one. Everything else is a field, so a source that starts
reporting a new quantity adds a field, never a tag. A point's time is the local midnight that
starts its period, so recomputing a period (late data) overwrites the same point.
"""

from __future__ import annotations

from collector.measurement import Measurement, Tag, f, i, register, s

KINDS = ("charger", "loadpoint", "site", "vehicle")

_TAGS = (
    Tag("kind", "what `name` is: `charger` (a wallbox, named as the charging sessions name it), "
                "`loadpoint` (an evcc loadpoint as evcc sees it), `site` (an evcc site) or "
                "`vehicle`"),
    Tag("name", "charger: name from `[sessions.chargers]`, else the source identity "
                "(`goe:<serial>`, `evcc:<site>/<loadpoint title>`, `evenergy:<evse>`, "
                "`vehicle:<name>` for charges only a vehicle saw); loadpoint: "
                "`<site>/<loadpoint title>`; site: the evcc site; vehicle: name from "
                "`[sessions.vehicles]`, else `ovms:<id>` or the name the sessions give it"),
)

_FIELDS = (
    s("period", "the local date (2026-03-29) or month (2026-03) the point covers"),
    f("hours", "h", "length of the period: 23 or 25 on the days the clocks change"),
    # charger / loadpoint, from the wallbox meter
    f("energy_wh", "Wh", "charger, loadpoint: energy through the meter (lifetime counter delta, "
                         "split at local midnight by linear interpolation between the samples either side)"),
    # sessions that started in the period
    i("sessions", "count", "charger, vehicle: `charging_session`s that started in the period; "
                           "loadpoint: evcc's own sessions"),
    f("session_energy_wh", "Wh", "energy of those sessions (from the wall)"),
    f("session_solar_energy_wh", "Wh", "solar part of `session_energy_wh`"),
    f("session_grid_energy_wh", "Wh", "grid part of `session_energy_wh`"),
    f("session_battery_energy_wh", "Wh", "home-battery part of `session_energy_wh`"),
    f("cost", "currency", "cost of those sessions (charger, vehicle: the `[sessions]` tariff; "
                          "loadpoint: evcc's own price)"),
    f("grid_only_cost", "currency", "what those sessions would have cost all from the grid"),
    f("savings", "currency", "`grid_only_cost` - `cost`"),
    s("currency", "currency of the cost fields"),
    f("vehicle_energy_wh", "Wh",
      "vehicle: energy into the battery in the sessions where the vehicle reported it"),
    f("vehicle_energy_wall_wh", "Wh", "vehicle: energy from the wall of those same sessions"),
    f("efficiency_pct", "%", "vehicle: `vehicle_energy_wh` / `vehicle_energy_wall_wh`"),
    # site
    f("pv_energy_wh", "Wh", "site: PV production (meter delta)"),
    f("grid_import_wh", "Wh", "site: energy from the grid (meter delta)"),
    f("grid_export_wh", "Wh", "site: energy fed into the grid (integral of negative grid power)"),
    f("home_energy_wh", "Wh", "site: home consumption (integral of home power)"),
    f("battery_charge_wh", "Wh", "site: energy into the home battery (integral of battery power)"),
    f("battery_discharge_wh", "Wh", "site: energy out of the home battery (integral of battery power)"),
    f("grid_price_mean_per_kwh", "currency/kWh", "site: time-weighted mean of evcc's grid price "
                                                 "(monthly: the mean of the days)"),
    # vehicle
    f("distance_km", "km", "vehicle: distance driven (odometer delta, split at local midnight)"),
    i("trips", "count", "vehicle: trips that ended in the period (OVMS trip log)"),
    f("trip_distance_km", "km", "vehicle: distance of those trips"),
    f("drive_energy_wh", "Wh", "vehicle: energy those trips used, less what they recovered"),
    f("consumption_wh_per_km", "Wh/km", "vehicle: `drive_energy_wh` / `trip_distance_km`"),
    f("parked_hours", "h",
      "vehicle: time parked (neither driving nor charging) between state-of-charge readings"),
    f("parked_soc_loss_pct", "%", "vehicle: state of charge lost while parked (vampire drain; net of "
                                  "small rises, not below zero)"),
    f("parked_range_loss_km", "km", "vehicle: ideal range lost while parked"),
    f("soh_pct", "%", "vehicle: battery state of health, last reading of the period"),
    f("cac_ah", "Ah", "vehicle: calculated battery capacity, last reading of the period"),
    f("battery_capacity_wh", "Wh", "vehicle: usable battery capacity, last reading of the period"),
)

ROLLUP_DAILY = Measurement(
    name="rollup_daily",
    description="Daily totals per charger, loadpoint, site and vehicle, computed by the "
                "collector from the local store (`[rollups]`) for each local day of the "
                "configured time zone. Recomputed when data for the day arrives late: the "
                "same point is overwritten. Fields a kind does not have are absent.",
    time="local midnight that starts the day (the configured `[rollups] timezone`)",
    tags=_TAGS, fields=_FIELDS, source="rollups")

ROLLUP_MONTHLY = Measurement(
    name="rollup_monthly",
    description="Monthly totals: the `rollup_daily` points of each local month added up (sums), "
                "their last reading (state of health, capacity), their mean (grid price), and "
                "the ratios (consumption, efficiency) recomputed from the sums.",
    time="local midnight that starts the 1st of the month",
    tags=_TAGS, fields=_FIELDS, source="rollups")

register(ROLLUP_DAILY, ROLLUP_MONTHLY)

MEASUREMENTS = (ROLLUP_DAILY.name, ROLLUP_MONTHLY.name)

# How a month follows from its days, per field (fields not listed are summed).
LATEST = frozenset({"soh_pct", "cac_ah", "battery_capacity_wh", "currency"})
MEAN = frozenset({"grid_price_mean_per_kwh"})
RATIOS = {"consumption_wh_per_km": ("drive_energy_wh", "trip_distance_km", 1.0),
          "efficiency_pct": ("vehicle_energy_wh", "vehicle_energy_wall_wh", 100.0)}
CALENDAR = frozenset({"period", "hours"})
