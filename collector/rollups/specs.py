"""What the rollups are computed from: each source's declarations (its package's `counters.py`,
reached through the registry) and the derived charging sessions' (here).

The declaration types are in `collector/specs.py`; the arithmetic lives in `series.py`, the
naming in `compute.py`.
"""

from __future__ import annotations

from collections.abc import Callable

from collector.sources import by_preference
from collector.specs import Device, Events, Fields, Parked, Spec, field_value, num


def _both(fields: Fields, name: str) -> float | None:
    """A session's field, counted only where the vehicle side is known too."""
    return num(fields.get(name)) if num(fields.get("vehicle_energy_wh")) is not None else None


# -- the derived charging sessions (every source) -------------------------------------------

_SESSION_FIELDS = ("energy_wh", "solar_energy_wh", "grid_energy_wh", "battery_energy_wh", "cost",
                   "grid_only_cost", "savings", "currency", "vehicle", "vehicle_energy_wh")
_SESSION_SUMS: dict[str, Callable[[Fields], float | None]] = {
    "session_energy_wh": field_value("energy_wh"), "session_solar_energy_wh": field_value("solar_energy_wh"),
    "session_grid_energy_wh": field_value("grid_energy_wh"),
    "session_battery_energy_wh": field_value("battery_energy_wh"),
    "cost": field_value("cost"), "grid_only_cost": field_value("grid_only_cost"),
    "savings": field_value("savings")}

SESSIONS = (
    Events("charging_session", "charger", lambda t, _: t.get("charger") or None,
           fields=_SESSION_FIELDS, count="sessions", sums=_SESSION_SUMS,
           latest={"currency": "currency"}, named=True),
    Events("charging_session", "vehicle",
           lambda _, fl: fl["vehicle"] if isinstance(fl.get("vehicle"), str) and fl["vehicle"] else None,
           fields=_SESSION_FIELDS, count="sessions",
           sums={**_SESSION_SUMS, "vehicle_energy_wh": lambda fl: _both(fl, "vehicle_energy_wh"),
                 "vehicle_energy_wall_wh": lambda fl: _both(fl, "energy_wh")},
           latest={"currency": "currency"}, named=True),
)


def all_specs() -> tuple[Spec, ...]:
    """Every registered source's declarations, in order of preference (a charger known to
    several sources takes each field from the first of its identities, as configured, that
    has it), then the sessions'."""
    return (*(spec for source in by_preference() for spec in source.rollups), *SESSIONS)


def sparse(spec: Spec) -> bool:
    return isinstance(spec, Device) and spec.sparse


def measurements(spec: Spec) -> dict[str, tuple[str, ...]]:
    """measurement -> fields a spec reads."""
    if isinstance(spec, Parked):
        out: dict[str, list[str]] = {}
        for m, name in (spec.level, *((spec.range,) if spec.range else ()), *spec.activity):
            out.setdefault(m, []).append(name)
        return {m: tuple(dict.fromkeys(names)) for m, names in out.items()}
    return {spec.measurement: spec.fields}
