"""What each source contributes to the rollups: one small declaration per source.

A declaration names the measurement, the tag that identifies the device, and which field is a
meter, which a power to integrate, which a reading to keep, or which points are events to
count. The arithmetic lives in `series.py`, the naming in `compute.py`; nothing here does I/O,
so each source's declaration can move into its own package unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping

Tags = Mapping[str, str]
Fields = Mapping[str, Any]

# The longest step between two samples still integrated (power) or held (a price): longer
# steps are holes in the data.
MAX_GAP_S = 900.0


@dataclass(frozen=True)
class Device:
    """A device sampled over time: meters, powers, levels and readings, per period."""

    measurement: str
    kind: str                                         # charger, loadpoint, site, vehicle
    identity: Callable[[Tags], str | None]            # source identity, e.g. goe:012345
    meters: Mapping[str, str] = field(default_factory=dict)        # output -> counter field
    integrals: Mapping[str, tuple[str, Literal["all", "positive", "negative"]]] = \
        field(default_factory=dict)                                # output -> (power field, part)
    means: Mapping[str, str] = field(default_factory=dict)         # output -> level field
    latest: Mapping[str, str] = field(default_factory=dict)        # output -> reading field
    # Lifetime meters only: read just the samples either side of each midnight, so a run costs
    # the same whatever the polling rate (a charger polled every second has 86,400 a day).
    sparse: bool = False

    @property
    def fields(self) -> tuple[str, ...]:
        names = [*self.meters.values(), *(p for p, _ in self.integrals.values()),
                 *self.means.values(), *self.latest.values()]
        return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class Events:
    """One point per event (a session, a trip), counted and summed in the period of its time.

    `identity` may read fields too (a session's vehicle is a field); `named` says it already
    returns the name the rollups use (the sessions job named it), not a source identity.
    """

    measurement: str
    kind: str
    identity: Callable[[Tags, Fields], str | None]
    fields: tuple[str, ...]
    count: str | None = None
    sums: Mapping[str, Callable[[Fields], float | None]] = field(default_factory=dict)
    latest: Mapping[str, str] = field(default_factory=dict)       # output -> string field
    where: Callable[[Fields], bool] | None = None
    named: bool = False


@dataclass(frozen=True)
class Parked:
    """Vampire drain: state of charge (and range) lost between readings while the vehicle is
    neither driving nor charging, as `activity` fields say."""

    kind: str
    identity: Callable[[Tags], str | None]
    level: tuple[str, str]                            # (measurement, state-of-charge field)
    range: tuple[str, str] | None                     # (measurement, range field)
    activity: tuple[tuple[str, str], ...]             # (measurement, field): true/charging = active
    active_states: frozenset[str] = frozenset()       # string values of an activity field that count


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    return float(value) if isinstance(value, (int, float)) else None


def _field(name: str) -> Callable[[Fields], float | None]:
    return lambda fields: _num(fields.get(name))


def _share(energy: str, pct: str) -> Callable[[Fields], float | None]:
    def value(fields: Fields) -> float | None:
        e, p = _num(fields.get(energy)), _num(fields.get(pct))
        return e * p / 100.0 if e is not None and p is not None else None
    return value


def _both(fields: Fields, name: str) -> float | None:
    """A session's field, counted only where the vehicle side is known too."""
    return _num(fields.get(name)) if _num(fields.get("vehicle_energy_wh")) is not None else None


# -- go-eCharger ----------------------------------------------------------------------------

GOE = (
    # `whs`/`whg`/`whb` restart with each connection, so they would need every sample: the
    # solar/grid/battery split comes from the sessions (session_*) instead.
    Device("goe_status", "charger", lambda t: f"goe:{t['serial']}" if t.get("serial") else None,
           meters={"energy_wh": "energy_total_wh"}, sparse=True),
)

# -- ev.energy ------------------------------------------------------------------------------

EVENERGY = (
    Device("evenergy_status", "charger", lambda t: f"evenergy:{t['evse']}" if t.get("evse") else None,
           meters={"energy_wh": "meter_energy_wh"}, sparse=True),
)

# -- evcc -----------------------------------------------------------------------------------


def _loadpoint(tags: Tags) -> str | None:
    return f"{tags.get('site', '')}/{tags['loadpoint_title']}" if tags.get("loadpoint_title") else None


EVCC = (
    # as a wallbox (what the sessions job calls a charger) and as evcc's own loadpoint
    Device("evcc_loadpoint", "charger", lambda t: f"evcc:{_loadpoint(t)}" if _loadpoint(t) else None,
           meters={"energy_wh": "charge_total_import_wh"}, sparse=True),
    Device("evcc_loadpoint", "loadpoint", _loadpoint, meters={"energy_wh": "charge_total_import_wh"},
           sparse=True),
    Events("evcc_session", "loadpoint", lambda t, _: _loadpoint(t),
           fields=("energy_wh", "solar_pct", "price"), count="sessions",
           sums={"session_energy_wh": _field("energy_wh"),
                 "session_solar_energy_wh": _share("energy_wh", "solar_pct"),
                 "cost": _field("price")}),
    Device("evcc_site", "site", lambda t: t.get("site") or None,
           meters={"pv_energy_wh": "pv_energy_wh", "grid_import_wh": "grid_energy_wh"},
           integrals={"grid_export_wh": ("grid_power_w", "negative"),
                      "home_energy_wh": ("home_power_w", "positive"),
                      "battery_charge_wh": ("battery_power_w", "negative"),
                      "battery_discharge_wh": ("battery_power_w", "positive")},
           means={"grid_price_mean_per_kwh": "tariff_grid_per_kwh"}),
)

# -- OVMS -----------------------------------------------------------------------------------


def _ovms(tags: Tags) -> str | None:
    return f"ovms:{tags['vehicle']}" if tags.get("vehicle") else None


def _driven(fields: Fields) -> bool:
    km = _num(fields.get("trip_km"))
    return km is not None and km > 0


def _net_drive(fields: Fields) -> float | None:
    used = _num(fields.get("energy_used_wh"))
    if used is None:
        return None
    return used - (_num(fields.get("energy_recovered_wh")) or 0.0)


OVMS = (
    Device("ovms_vehicle", "vehicle", _ovms, meters={"distance_km": "odometer_km"}, sparse=True),
    Device("ovms_charge", "vehicle", _ovms,
           latest={"soh_pct": "soh_pct", "cac_ah": "cac_ah", "battery_capacity_wh": "battery_capacity_wh"}),
    Events("ovms_trip", "vehicle", lambda t, _: _ovms(t),
           fields=("trip_km", "energy_used_wh", "energy_recovered_wh"), count="trips",
           sums={"trip_distance_km": _field("trip_km"), "drive_energy_wh": _net_drive},
           where=_driven),
    Parked("vehicle", _ovms, level=("ovms_charge", "soc_pct"), range=("ovms_charge", "ideal_range_km"),
           activity=(("ovms_vehicle", "car_on"), ("ovms_vehicle", "charging"),
                     ("ovms_charge", "charge_state")),
           active_states=frozenset({"charging", "topoff", "heating", "prepare"})),
)

# -- the derived charging sessions (every source) -------------------------------------------

_SESSION_FIELDS = ("energy_wh", "solar_energy_wh", "grid_energy_wh", "battery_energy_wh", "cost",
                   "grid_only_cost", "savings", "currency", "vehicle", "vehicle_energy_wh")
_SESSION_SUMS: dict[str, Callable[[Fields], float | None]] = {
    "session_energy_wh": _field("energy_wh"), "session_solar_energy_wh": _field("solar_energy_wh"),
    "session_grid_energy_wh": _field("grid_energy_wh"),
    "session_battery_energy_wh": _field("battery_energy_wh"),
    "cost": _field("cost"), "grid_only_cost": _field("grid_only_cost"), "savings": _field("savings")}

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

Spec = Device | Events | Parked

# The declarations, in order of preference: a charger known to several sources takes each
# field from the first of its identities (as configured) that has it.
SPECS: tuple[Spec, ...] = (*GOE, *EVENERGY, *EVCC, *OVMS, *SESSIONS)


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
