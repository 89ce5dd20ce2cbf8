"""The derived `charging_session` measurement and the intervals it is built from.

A session is identified by its charger and its start time only. The vehicle is a field, not a
tag: vehicle data (OVMS history) often arrives hours after the wallbox data, and a tag that
appeared later would make a second series instead of overwriting the first record.
"""

from __future__ import annotations

from collector.measurement import Measurement, Tag, b, f, i, register, s

CHARGING_SESSION = Measurement(
    name="charging_session",
    description="One charging session derived by the collector from the wallbox side (go-e, evcc, "
                "ev.energy) joined with the vehicle side (OVMS `*-LOG-Grid`, evcc, ev.energy SoC). "
                "Interruptions shorter than `[sessions] gap` are merged. Written once the session "
                "has ended; re-deriving overwrites the same point.",
    time="the session's start (first connected observation, or the evcc session's `created`)",
    tags=(Tag("charger", "charger name from `[sessions.chargers]`, else the source identity "
                         "(`goe:<serial>`, `evcc:<site>/<loadpoint title>`, `evenergy:<evse>`); "
                         "`vehicle:<name>` for charges only the vehicle saw"),),
    fields=(
        i("end_unix_s", "s", "end of the session (last connected observation), Unix seconds"),
        f("duration_s", "s", "from start to end, pauses included"),
        f("charge_duration_s", "s", "time actually charging, where a source reports it"),
        i("parts", "count", "connections or charge periods merged into this session"),
        f("energy_wh", "Wh",
          "energy from the wall (wallbox meter; vehicle's grid estimate when no wallbox saw it)"),
        f("solar_energy_wh", "Wh", "part of `energy_wh` from solar (go-e `whs`, evcc solar share)"),
        f("grid_energy_wh", "Wh",
          "part of `energy_wh` from the grid (go-e `whg`, or energy less solar and battery)"),
        f("battery_energy_wh", "Wh", "part of `energy_wh` from a home battery (go-e `whb`)"),
        f("solar_pct", "%", "solar share of `energy_wh`"),
        s("vehicle", "vehicle name from `[sessions.vehicles]`, else the source identity"),
        f("soc_start_pct", "%", "vehicle state of charge at the start"),
        f("soc_end_pct", "%", "vehicle state of charge at the end"),
        f("vehicle_energy_wh", "Wh", "energy into the battery as the vehicle reports it (OVMS `charge_kwh`)"),
        f("odometer_km", "km", "odometer at the start of the session (OVMS, evcc)"),
        f("efficiency_pct", "%", "`vehicle_energy_wh` / `energy_wh`, where both sides are known"),
        s("card", "what started the charge: the go-e RFID card's name from the charger's card list "
                  "(`card <n>` when unnamed, `app` for `trx` 0), or evcc's `identifier`"),
        f("meter_start_wh", "Wh", "reading of the charger's lifetime meter at the start (go-e `eto`, "
                                  "ev.energy meter reading, evcc `meterStart`)"),
        f("meter_end_wh", "Wh", "reading of the same meter at the end"),
        s("meter", "which meter `meter_start_wh` and `meter_end_wh` are from, e.g. `goe:012345 eto`"),
        f("meter_deviation_pct", "%", "(`meter_end_wh` - `meter_start_wh` - `energy_wh`) / `energy_wh`"),
        b("meter_mismatch", "the meter readings disagree with `energy_wh` by more than 1 % "
                            "(and more than the meter's 2 Wh resolution)"),
        f("price_per_kwh", "currency/kWh", "the tariff's price averaged over the session's energy, "
                                           "each part at its own time (`grid_only_cost` / kWh)"),
        s("price_source", "where the price comes from: fixed, time-of-use, dynamic (evcc's grid "
                          "tariff) or flat (a published flat price per kWh); `dynamic+fixed` or "
                          "`time-of-use+fixed` when `[sessions] price` filled hours the tariff lacks"),
        f("cost", "currency", "cost of the grid part of the energy at the configured tariff"),
        f("grid_only_cost", "currency", "what all of `energy_wh` would have cost from the grid"),
        f("savings", "currency", "`grid_only_cost` - `cost`"),
        s("currency", "currency of the cost fields, from `[sessions] currency`"),
        s("sources", "the sources that contributed, e.g. `goe+ovms`"),
    ),
    source="sessions",
)
register(CHARGING_SESSION)
