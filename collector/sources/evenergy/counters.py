"""What ev.energy contributes to the rollups and to the export's energy sums."""

from __future__ import annotations

from collector.specs import CounterSpec, Device

ROLLUPS = (
    Device("evenergy_status", "charger", lambda t: f"evenergy:{t['evse']}" if t.get("evse") else None,
           meters={"energy_wh": "meter_energy_wh"}, sparse=True),
)

EXPORT = (
    CounterSpec("evenergy_status", lambda t: f"evenergy:{t.get('evse', '')}",
                (("meter_energy_wh", "energy_wh"),)),
)
