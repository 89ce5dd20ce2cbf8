"""What evcc contributes to the rollups and to the export's energy sums."""

from __future__ import annotations

from collector.specs import CounterSpec, Device, Events, Tags, field_value, share


def _loadpoint(tags: Tags) -> str | None:
    return f"{tags.get('site', '')}/{tags['loadpoint_title']}" if tags.get("loadpoint_title") else None


ROLLUPS = (
    # as a wallbox (what the sessions job calls a charger) and as evcc's own loadpoint
    Device("evcc_loadpoint", "charger", lambda t: f"evcc:{_loadpoint(t)}" if _loadpoint(t) else None,
           meters={"energy_wh": "charge_total_import_wh"}, sparse=True),
    Device("evcc_loadpoint", "loadpoint", _loadpoint, meters={"energy_wh": "charge_total_import_wh"},
           sparse=True),
    Events("evcc_session", "loadpoint", lambda t, _: _loadpoint(t),
           fields=("energy_wh", "solar_pct", "price"), count="sessions",
           sums={"session_energy_wh": field_value("energy_wh"),
                 "session_solar_energy_wh": share("energy_wh", "solar_pct"),
                 "cost": field_value("price")}),
    Device("evcc_site", "site", lambda t: t.get("site") or None,
           meters={"pv_energy_wh": "pv_energy_wh", "grid_import_wh": "grid_energy_wh"},
           integrals={"grid_export_wh": ("grid_power_w", "negative"),
                      "home_energy_wh": ("home_power_w", "positive"),
                      "battery_charge_wh": ("battery_power_w", "negative"),
                      "battery_discharge_wh": ("battery_power_w", "positive")},
           means={"grid_price_mean_per_kwh": "tariff_grid_per_kwh"}),
)

EXPORT = (
    CounterSpec("evcc_loadpoint", lambda t: f"evcc:{t.get('site', '')}/{t.get('loadpoint_title', '')}",
                (("charge_total_import_wh", "energy_wh"),)),
)
