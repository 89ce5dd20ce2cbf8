"""What OVMS contributes to the rollups and to the export's energy sums."""

from __future__ import annotations

from collector.sources.ovms.sessions import OVMS_CHARGING_STATES
from collector.specs import Device, Events, Fields, Parked, Tags, field_value, num


def _ovms(tags: Tags) -> str | None:
    return f"ovms:{tags['vehicle']}" if tags.get("vehicle") else None


def _driven(fields: Fields) -> bool:
    km = num(fields.get("trip_km"))
    return km is not None and km > 0


def _net_drive(fields: Fields) -> float | None:
    used = num(fields.get("energy_used_wh"))
    if used is None:
        return None
    return used - (num(fields.get("energy_recovered_wh")) or 0.0)


ROLLUPS = (
    Device("ovms_vehicle", "vehicle", _ovms, meters={"distance_km": "odometer_km"}, sparse=True),
    Device("ovms_charge", "vehicle", _ovms,
           latest={"soh_pct": "soh_pct", "cac_ah": "cac_ah", "battery_capacity_wh": "battery_capacity_wh"}),
    Events("ovms_trip", "vehicle", lambda t, _: _ovms(t),
           fields=("trip_km", "energy_used_wh", "energy_recovered_wh"), count="trips",
           sums={"trip_distance_km": field_value("trip_km"), "drive_energy_wh": _net_drive},
           where=_driven),
    Parked("vehicle", _ovms, level=("ovms_charge", "soc_pct"), range=("ovms_charge", "ideal_range_km"),
           activity=(("ovms_vehicle", "car_on"), ("ovms_vehicle", "charging"),
                     ("ovms_charge", "charge_state")),
           active_states=OVMS_CHARGING_STATES),
)

EXPORT: tuple = ()     # no energy counter of a charger
