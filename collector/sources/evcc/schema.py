"""The evcc measurements: one schema whatever evcc version or transport (REST, MQTT) fed it."""

from __future__ import annotations

from collector.measurement import Measurement, Tag, b, f, i, register, s

SOURCE = "evcc"

SITE_TAG = Tag("site", "the evcc instance, as named in the configuration (`name` of its "
                        "`[sources.evcc]` or `[[sources.evcc]]` table)")
LOADPOINT_TITLE_TAG = Tag("loadpoint_title", "the loadpoint's title as set in evcc")

_POLL_TIME = ("poll time of `/api/state` (evcc's state carries no timestamp); over MQTT the "
              "`<root>/updated` time evcc published with the state")
_ON_CHANGE = "over REST and MQTT alike"

SITE = Measurement(
    name="evcc_site",
    description="The evcc site: PV, grid, home, battery, current tariffs and green shares. "
                "Grid fields from before evcc 0.133 (`gridPower`...) and battery fields from "
                "before 0.301 (`batteryPower`...) land in the same fields.",
    time=_POLL_TIME,
    on_change=_ON_CHANGE,
    tags=(SITE_TAG,),
    source=SOURCE,
    fields=(
        f("pv_power_w", "W", "PV power, all inverters (`pvPower`)"),
        f("pv_energy_wh", "Wh", "PV energy meter, all inverters (`pvEnergy`, kWh in evcc)"),
        f("home_power_w", "W", "home consumption (`homePower`)"),
        f("grid_power_w", "W", "grid power, positive = import (`grid.power` / `gridPower`)"),
        f("grid_energy_wh", "Wh", "grid import meter (`grid.energy` / `gridEnergy`, kWh in evcc)"),
        f("grid_power_l1_w", "W", "grid power phase 1"),
        f("grid_power_l2_w", "W", "grid power phase 2"),
        f("grid_power_l3_w", "W", "grid power phase 3"),
        f("grid_current_l1_a", "A", "grid current phase 1"),
        f("grid_current_l2_a", "A", "grid current phase 2"),
        f("grid_current_l3_a", "A", "grid current phase 3"),
        f("battery_power_w", "W", "battery power, positive = discharging (`battery.power` / `batteryPower`)"),
        f("battery_soc_pct", "%", "battery state of charge"),
        f("battery_capacity_wh", "Wh", "battery capacity (kWh in evcc)"),
        f("battery_energy_wh", "Wh", "battery energy meter (kWh in evcc)"),
        f("tariff_grid_per_kwh", "currency/kWh", "current grid price (`tariffGrid`)"),
        f("tariff_feedin_per_kwh", "currency/kWh", "current feed-in compensation (`tariffFeedIn`)"),
        f("tariff_co2_g_per_kwh", "g/kWh", "current grid CO2 intensity (`tariffCo2`)"),
        f("tariff_solar_w", "W", "current solar forecast power (`tariffSolar`, a power, not a price)"),
        f("tariff_price_home_per_kwh", "currency/kWh", "effective price of home energy (`tariffPriceHome`)"),
        f("tariff_price_loadpoints_per_kwh", "currency/kWh",
          "effective price of charging energy (`tariffPriceLoadpoints`)"),
        f("tariff_co2_home_g_per_kwh", "g/kWh", "effective CO2 of home energy (`tariffCo2Home`)"),
        f("tariff_co2_loadpoints_g_per_kwh", "g/kWh",
          "effective CO2 of charging energy (`tariffCo2Loadpoints`)"),
        f("green_share_home_pct", "%", "green share of home consumption (`greenShareHome`, 0..1 in evcc)"),
        f("green_share_loadpoints_pct", "%",
          "green share of charging (`greenShareLoadpoints`, 0..1 in evcc)"),
        s("currency", "currency of every price (`currency`, e.g. EUR)"),
        s("version", "evcc version"),
    ),
)

PV = Measurement(
    name="evcc_pv",
    description="One PV inverter (evcc's `pv` array).",
    time=_POLL_TIME,
    on_change=_ON_CHANGE,
    tags=(SITE_TAG, Tag("inverter", "position in evcc's `pv` list, from 1")),
    source=SOURCE,
    fields=(
        f("power_w", "W", "inverter power"),
        f("energy_wh", "Wh", "inverter energy meter (kWh in evcc)"),
    ),
)

BATTERY = Measurement(
    name="evcc_battery",
    description="One home battery (evcc's `battery` array, or `battery.devices` since 0.301).",
    time=_POLL_TIME,
    on_change=_ON_CHANGE,
    tags=(SITE_TAG, Tag("battery", "position in evcc's battery list, from 1")),
    source=SOURCE,
    fields=(
        f("power_w", "W", "battery power, positive = discharging"),
        f("soc_pct", "%", "state of charge"),
        f("capacity_wh", "Wh", "capacity (kWh in evcc)"),
        f("energy_wh", "Wh", "energy meter (kWh in evcc)"),
        b("controllable", "whether evcc can control the battery"),
    ),
)

LOADPOINT = Measurement(
    name="evcc_loadpoint",
    description="One evcc loadpoint (charger) and the vehicle connected to it.",
    time=_POLL_TIME,
    on_change=_ON_CHANGE,
    tags=(SITE_TAG, Tag("loadpoint", "loadpoint id, from 1 as in evcc's API"), LOADPOINT_TITLE_TAG),
    source=SOURCE,
    fields=(
        s("mode", "charge mode: off, pv, minpv, now"),
        b("connected", "a vehicle is connected"),
        b("charging", "the vehicle is charging"),
        b("enabled", "the charger is enabled"),
        f("charge_power_w", "W", "charging power (`chargePower`)"),
        f("charge_current_l1_a", "A", "charging current phase 1 (`chargeCurrents`)"),
        f("charge_current_l2_a", "A", "charging current phase 2"),
        f("charge_current_l3_a", "A", "charging current phase 3"),
        f("charge_voltage_l1_v", "V", "charging voltage phase 1 (`chargeVoltages`)"),
        f("charge_voltage_l2_v", "V", "charging voltage phase 2"),
        f("charge_voltage_l3_v", "V", "charging voltage phase 3"),
        f("offered_current_a", "A",
          "current offered to the vehicle (`offeredCurrent`, `chargeCurrent` before 0.203)"),
        f("min_current_a", "A", "configured minimum current"),
        f("max_current_a", "A", "configured maximum current"),
        i("phases_active", "phases", "phases in use"),
        f("charged_energy_wh", "Wh", "energy charged in this session (`chargedEnergy`)"),
        f("session_energy_wh", "Wh", "energy of the session (`sessionEnergy`)"),
        f("charge_duration_s", "s", "charging time in this session (ns in evcc before 0.127)"),
        f("connected_duration_s", "s", "time connected in this session (ns in evcc before 0.127)"),
        f("charge_total_import_wh", "Wh", "charger's meter (`chargeTotalImport`, kWh in evcc)"),
        s("vehicle_name", "configured name of the connected vehicle"),
        s("vehicle_title", "title of the connected vehicle"),
        f("vehicle_soc_pct", "%", "vehicle state of charge"),
        f("vehicle_range_km", "km", "vehicle range"),
        f("vehicle_odometer_km", "km", "vehicle odometer"),
        f("limit_soc_pct", "%", "effective SoC limit (`effectiveLimitSoc`, `limitSoc`; "
                                "`targetSoc` before evcc 0.123)"),
        f("session_solar_pct", "%", "solar share of this session"),
        f("session_price", "currency", "cost of this session so far"),
        f("session_price_per_kwh", "currency/kWh", "average price of this session"),
        f("session_co2_g_per_kwh", "g/kWh", "average CO2 intensity of this session"),
    ),
)

STATISTICS = Measurement(
    name="evcc_statistics",
    description="evcc's own charging statistics (`statistics` in the state).",
    time=_POLL_TIME,
    on_change=_ON_CHANGE,
    tags=(SITE_TAG, Tag("period", "30d, 365d, thisYear or total")),
    source=SOURCE,
    fields=(
        f("charged_energy_wh", "Wh", "energy charged in the period (`chargedKWh`)"),
        f("solar_pct", "%", "solar share of that energy"),
        f("avg_price_per_kwh", "currency/kWh", "average price"),
        f("avg_co2_g_per_kwh", "g/kWh", "average CO2 intensity"),
    ),
)

SESSION = Measurement(
    name="evcc_session",
    description="One finished charging session from `/api/sessions`. A session evcc corrects "
                "later overwrites its point (same time and tags); running sessions are not "
                "written until they have finished.",
    time="the session's `created` time",
    tags=(SITE_TAG, LOADPOINT_TITLE_TAG,
          Tag("vehicle", "vehicle title of the session (absent for loadpoints without a vehicle)")),
    source=SOURCE,
    fields=(
        i("session_id", "id", "evcc's session id (ascending in creation order)"),
        i("finished_unix_s", "s", "when the session finished (Unix seconds)"),
        f("connected_duration_s", "s", "from `created` to `finished`"),
        f("charge_duration_s", "s", "charging time (`chargeDuration`, ns in evcc)"),
        f("energy_wh", "Wh", "charged energy (`chargedEnergy`, kWh in evcc's sessions)"),
        f("meter_start_wh", "Wh", "charger meter at start (kWh in evcc)"),
        f("meter_stop_wh", "Wh", "charger meter at stop (kWh in evcc)"),
        f("odometer_km", "km", "vehicle odometer"),
        f("soc_start_pct", "%", "vehicle SoC at start"),
        f("soc_end_pct", "%", "vehicle SoC at end"),
        f("added_range_km", "km", "range added"),
        f("solar_pct", "%", "solar share"),
        f("price", "currency", "cost of the session"),
        f("price_per_kwh", "currency/kWh", "average price"),
        f("co2_g_per_kwh", "g/kWh", "average CO2 intensity"),
        f("reference_price_per_kwh", "currency/kWh",
          "grid price forecast for the 24 h from the session's start, averaged "
          "(`referencePricePerKWh`, evcc 0.304+): a baseline to measure savings against"),
        f("reference_co2_g_per_kwh", "g/kWh",
          "grid CO2 forecast for the 24 h from the session's start, averaged "
          "(`referenceCo2PerKWh`, evcc 0.304+)"),
        s("identifier", "charging identifier (RFID etc.), when evcc has one"),
    ),
)

TARIFF = Measurement(
    name="evcc_tariff",
    description="Forecast rates from `/api/tariff/<type>`, one point per rate at its start "
                "(future times); a changed forecast overwrites the same points.",
    time="the rate's `start`",
    tags=(SITE_TAG, Tag("type", "grid, feedin, co2, planner or solar")),
    source=SOURCE,
    fields=(
        f("price_per_kwh", "currency/kWh", "price (types grid, feedin, planner)"),
        f("co2_g_per_kwh", "g/kWh", "CO2 intensity (type co2)"),
        f("power_w", "W", "forecast solar power (type solar)"),
        f("duration_s", "s", "length of the rate (`end` - `start`)"),
    ),
)

MEASUREMENTS = (SITE, PV, BATTERY, LOADPOINT, STATISTICS, SESSION, TARIFF)

# Counters that only grow, by measurement. Over MQTT, evcc up to 0.300.6 writes floats with 5
# significant digits: a grid meter at 12,038.94 kWh arrives as "12039" and steps by whole kWh
# (10 kWh from 100,000 kWh on), so these are read over REST when a `url` is configured.
LIFETIME_METERS: dict[str, frozenset[str]] = {
    SITE.name: frozenset({"pv_energy_wh", "grid_energy_wh", "battery_energy_wh"}),
    PV.name: frozenset({"energy_wh"}),
    BATTERY.name: frozenset({"energy_wh"}),
    LOADPOINT.name: frozenset({"charge_total_import_wh", "vehicle_odometer_km"}),
    STATISTICS.name: frozenset({"charged_energy_wh"}),
}
register(*MEASUREMENTS)
