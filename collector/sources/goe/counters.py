"""What go-eCharger contributes to the rollups and to the export's energy sums."""

from __future__ import annotations

from collector.specs import CounterSpec, Device

ROLLUPS = (
    # `whs`/`whg`/`whb` restart with each connection, so they would need every sample: the
    # solar/grid/battery split comes from the sessions (session_*) instead.
    Device("goe_status", "charger", lambda t: f"goe:{t['serial']}" if t.get("serial") else None,
           meters={"energy_wh": "energy_total_wh"}, sparse=True),
)

EXPORT = (
    CounterSpec("goe_status", lambda t: f"goe:{t.get('serial', '')}",
                (("energy_total_wh", "energy_wh"), ("energy_solar_wh", "solar_energy_wh"),
                 ("energy_grid_wh", "grid_energy_wh"), ("energy_battery_wh", "battery_energy_wh"))),
)
