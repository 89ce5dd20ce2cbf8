"""Merge interrupted charges, join wallbox and vehicle sides, price them, make points.

`derive_sessions` is pure: given every source's intervals, the configuration and `now`, it
returns the sessions that have certainly ended (their end was observed and no resume within
`gap` can follow any more). Running it again over the same data gives the same points.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping, Sequence

from collector.points import Point
from collector.sessions.model import CHARGING_SESSION, Interval
from collector.sessions.pricing import Tariff, price_profile


@dataclass(frozen=True)
class Identities:
    """Names from `[sessions]`: charger name -> source identities, vehicle name -> identities."""

    chargers: Mapping[str, Sequence[str]] = field(default_factory=dict)
    charger_vehicles: Mapping[str, Sequence[str]] = field(default_factory=dict)
    vehicles: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def charger_name(self, identity: str) -> str:
        for name, ids in self.chargers.items():
            if identity in ids:
                return name
        return identity

    def vehicle_name(self, identity: str) -> str | None:
        for name, ids in self.vehicles.items():
            if identity in ids:
                return name
        return None

    def charger_rank(self, identity: str) -> int:
        """Order of preference among a charger's identities (the order configured)."""
        for ids in self.chargers.values():
            if identity in ids:
                return list(ids).index(identity)
        return 0


def _sum(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def merge(a: Interval, b: Interval) -> Interval:
    """b follows a within the gap: one session."""
    offset_wall = a.profile[-1][1] if a.profile else (a.energy_wh or 0.0)
    offset_grid = a.profile[-1][2] if a.profile else None
    profile = list(a.profile)
    for t, wall, grid in b.profile:
        profile.append((t, offset_wall + wall,
                        (offset_grid + grid) if offset_grid is not None and grid is not None else None))
    energy = _sum([a.energy_wh, b.energy_wh])
    solar_pct = None
    if a.solar_pct is not None and b.solar_pct is not None and energy:
        solar_pct = (a.solar_pct * (a.energy_wh or 0) + b.solar_pct * (b.energy_wh or 0)) / energy
    return replace(
        a, end_ns=max(a.end_ns, b.end_ns), end_seen=b.end_seen, energy_wh=energy,
        solar_wh=_sum([a.solar_wh, b.solar_wh]), grid_wh=_sum([a.grid_wh, b.grid_wh]),
        battery_wh=_sum([a.battery_wh, b.battery_wh]),
        solar_pct=solar_pct if solar_pct is not None else (a.solar_pct if b.solar_pct is None else None),
        charge_s=_sum([a.charge_s, b.charge_s]),
        soc_start=a.soc_start if a.soc_start is not None else b.soc_start,
        soc_end=b.soc_end if b.soc_end is not None else a.soc_end,
        vehicle_energy_wh=_sum([a.vehicle_energy_wh, b.vehicle_energy_wh]),
        vehicle_grid_wh=_sum([a.vehicle_grid_wh, b.vehicle_grid_wh]),
        odometer_km=a.odometer_km if a.odometer_km is not None else b.odometer_km,
        vehicle=a.vehicle or b.vehicle, parts=a.parts + b.parts, sources=a.sources | b.sources,
        profile=profile)


def merge_gaps(intervals: Iterable[Interval], gap_ns: int) -> list[Interval]:
    """Merge intervals of the same device whose pause is at most `gap_ns`."""
    by_device: dict[tuple[str | None, str | None], list[Interval]] = {}
    for iv in intervals:
        by_device.setdefault((iv.charger, None if iv.charger else iv.vehicle), []).append(iv)
    out = []
    for group in by_device.values():
        group.sort(key=lambda iv: iv.start_ns)
        current = group[0]
        for iv in group[1:]:
            if iv.start_ns - current.end_ns <= gap_ns:
                current = merge(current, iv)
            else:
                out.append(current)
                current = iv
        out.append(current)
    return sorted(out, key=lambda iv: iv.start_ns)


def _overlap(a: Interval, b: Interval) -> int:
    return min(a.end_ns, b.end_ns) - max(a.start_ns, b.start_ns)


def _fill(primary: Interval, other: Interval) -> Interval:
    """Complete the primary observation of a charge with what another source knows."""
    updates = {}
    for name in ("energy_wh", "solar_wh", "grid_wh", "battery_wh", "solar_pct", "charge_s",
                 "soc_start", "soc_end", "vehicle_energy_wh", "vehicle_grid_wh", "odometer_km",
                 "vehicle"):
        if getattr(primary, name) is None and getattr(other, name) is not None:
            updates[name] = getattr(other, name)
    if not primary.profile and other.profile and "energy_wh" in updates:
        updates["profile"] = other.profile
    return replace(primary, sources=primary.sources | other.sources, **updates)


@dataclass(frozen=True)
class Session:
    charger: str
    vehicle: str | None
    interval: Interval


def join(wallbox: Sequence[Interval], vehicle_side: Sequence[Interval], ids: Identities) -> list[Session]:
    """One session per charge: a charger's sources combined, then the vehicle side joined."""
    # Several sources watching one charger (evcc driving a go-e): the first configured wins,
    # the others fill in what it lacks.
    named: dict[str, list[Interval]] = {}
    for iv in sorted(wallbox, key=lambda iv: (ids.charger_rank(iv.charger or ""), iv.start_ns)):
        group = named.setdefault(ids.charger_name(iv.charger or ""), [])
        for k, existing in enumerate(group):
            if _overlap(existing, iv) > 0 and existing.charger != iv.charger:
                group[k] = _fill(existing, iv)
                break
        else:
            group.append(iv)

    sessions: list[Session] = []
    used: set[int] = set()
    for charger, group in named.items():
        allowed = ids.charger_vehicles.get(charger, ())
        for iv in sorted(group, key=lambda iv: iv.start_ns):
            vehicle = ids.vehicle_name(iv.vehicle) if iv.vehicle else None
            if vehicle is None and len(allowed) == 1:
                vehicle = allowed[0]
            best, best_overlap = None, 0
            for k, v in enumerate(vehicle_side):
                if k in used:
                    continue
                name = ids.vehicle_name(v.vehicle or "")
                if name is None or (vehicle is not None and name != vehicle) or (
                        vehicle is None and allowed and name not in allowed):
                    continue
                ov = _overlap(iv, v)
                if ov > best_overlap:
                    best, best_overlap = k, ov
            if best is not None:
                used.add(best)
                v = vehicle_side[best]
                vehicle = vehicle or ids.vehicle_name(v.vehicle or "")
                # the vehicle's own readings are the better vehicle side
                iv = replace(_fill(iv, v), soc_start=v.soc_start if v.soc_start is not None else iv.soc_start,
                             soc_end=v.soc_end if v.soc_end is not None else iv.soc_end,
                             odometer_km=v.odometer_km if v.odometer_km is not None else iv.odometer_km)
            sessions.append(Session(charger, vehicle or iv.vehicle, iv))
    for k, v in enumerate(vehicle_side):
        if k not in used:
            name = ids.vehicle_name(v.vehicle or "") or v.vehicle or "unknown"
            sessions.append(Session(f"vehicle:{name}", name, replace(v, energy_wh=v.vehicle_grid_wh)))
    return sorted(sessions, key=lambda s: (s.interval.start_ns, s.charger))


def session_point(session: Session, tariff: Tariff | None, currency: str | None) -> Point | None:
    iv = session.interval
    energy = iv.energy_wh
    solar, grid, battery = iv.solar_wh, iv.grid_wh, iv.battery_wh
    solar_pct = iv.solar_pct
    if energy:
        if solar is not None:
            solar_pct = solar / energy * 100
        elif solar_pct is not None:
            solar = energy * solar_pct / 100
        if grid is None and solar is not None:
            grid = max(energy - solar - (battery or 0.0), 0.0)
    values: dict[str, object] = {
        "end_unix_s": iv.end_ns // 10**9, "duration_s": (iv.end_ns - iv.start_ns) / 1e9,
        "charge_duration_s": iv.charge_s, "parts": iv.parts, "energy_wh": energy,
        "solar_energy_wh": solar, "grid_energy_wh": grid, "battery_energy_wh": battery,
        "solar_pct": solar_pct, "vehicle": session.vehicle, "soc_start_pct": iv.soc_start,
        "soc_end_pct": iv.soc_end, "vehicle_energy_wh": iv.vehicle_energy_wh,
        "odometer_km": iv.odometer_km, "sources": "+".join(sorted(iv.sources)),
    }
    if energy and iv.vehicle_energy_wh:
        values["efficiency_pct"] = iv.vehicle_energy_wh / energy * 100
    if tariff is not None and energy:
        profile = iv.profile if iv.profile else [(iv.start_ns, 0.0, None), (iv.end_ns, energy, None)]
        if profile[-1][1] <= 0 < energy:  # a profile without energy cannot place it: spread it
            profile = [(iv.start_ns, 0.0, None), (iv.end_ns, energy, None)]
        fraction = (grid / energy) if grid is not None else 1.0
        priced = price_profile([(iv.start_ns, 0.0, 0.0 if profile[0][2] is not None else None)]
                               + list(profile), tariff, min(max(fraction, 0.0), 1.0))
        if priced is not None:
            # rounded to a millionth: float noise in a ledger column helps nobody
            values.update(cost=round(priced.cost, 6), grid_only_cost=round(priced.grid_only_cost, 6),
                          savings=round(priced.grid_only_cost - priced.cost, 6), tariff=tariff.name,
                          currency=currency)
    return CHARGING_SESSION.point({"charger": session.charger}, values, iv.start_ns)


def derive_sessions(wallbox: Iterable[Interval], vehicle_side: Iterable[Interval], ids: Identities,
                    gap_ns: int, now_ns: int, tariff: Tariff | None = None,
                    currency: str | None = None) -> list[Point]:
    """`charging_session` points for every session that has ended for good by `now_ns`."""
    wall = merge_gaps(wallbox, gap_ns)
    veh = merge_gaps(vehicle_side, gap_ns)

    def final(iv: Interval) -> bool:
        return iv.complete and iv.end_ns + gap_ns <= now_ns

    # Open charges stay out of the join, so they cannot claim the other side too early.
    open_wall = [iv for iv in wall if not final(iv)]
    # A finished vehicle charge inside a wallbox session still open waits for that session:
    # emitted alone now, it would become a second record once the session ends.
    ready_veh = [iv for iv in veh if final(iv) and not any(_overlap(iv, w) > 0 for w in open_wall)]
    sessions = join([iv for iv in wall if final(iv)], ready_veh, ids)
    points = [session_point(s, tariff, currency) for s in sessions]
    return [p for p in points if p is not None]
