"""Merge interrupted charges, join wallbox and vehicle sides, price them, make points.

`derive_sessions` is pure: given every source's intervals, the configuration and `now`, it
returns the sessions that have certainly ended (their end was observed and no resume within
`gap` can follow any more). Running it again over the same data gives the same points.

Without a `[sessions]` section nothing says which sources watch the same charger or car, so
the join infers it from the data (`same_charge`, `plausible_vehicle`): two sources' charges
that start within minutes of each other with the same energy are one charge, and a vehicle's
charge lying mostly inside a wallbox session, with a battery energy the wall energy can have
delivered, is that session's car. What the configuration names is joined as configured.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from collector.charges import Interval
from collector.points import Point
from collector.sessions.model import CHARGING_SESSION
from collector.sessions.pricing import Tariff, price_profile
from collector.sources import by_preference


def _source_ranks() -> dict[str, int]:
    """Which source's observation of a charge leads when nothing is configured: the registry's
    preference (a wallbox's own meter before the session record of a controller driving it)."""
    return {source.name: rank for rank, source in enumerate(by_preference())}


@dataclass(frozen=True)
class Identities:
    """Names from `[sessions]`: charger name -> source identities, vehicle name -> identities."""

    chargers: Mapping[str, Sequence[str]] = field(default_factory=dict)
    charger_vehicles: Mapping[str, Sequence[str]] = field(default_factory=dict)
    vehicles: Mapping[str, Sequence[str]] = field(default_factory=dict)
    ignore: frozenset[str] = frozenset()   # identities that are no EV charger
    source_ranks: Mapping[str, int] = field(default_factory=_source_ranks)

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
        """Order of preference among a charger's identities: the order configured, then for
        identities no charger names, the source's preference (`source_ranks`)."""
        for ids in self.chargers.values():
            if identity in ids:
                return list(ids).index(identity)
        return self.source_ranks.get(identity.split(":", 1)[0], 9) + 10

    def configured(self, identity: str) -> bool:
        return any(identity in ids for ids in self.chargers.values())


# Two sources' charges are one charge when they start this close and their energies agree
# within ENERGY_MATCH (or, without both energies, they end this close).
SAME_START_NS = 600 * 10**9
SAME_END_NS = 900 * 10**9
ENERGY_MATCH = 0.10
# A meter that disagrees with the session's energy by more than this share is flagged, unless
# the difference is within the meter's resolution (go-e `eto` and evcc's kWh count whole Wh).
METER_TOLERANCE = 0.01
METER_RESOLUTION_WH = 2.0
# How far two sources' clocks and sampling may disagree about one moment (go-e samples every
# few seconds, OVMS stamps its records to the second): overlaps within a minute count as equal.
SKEW_NS = 300 * 10**9
OVERLAP_RESOLUTION_NS = 60 * 10**9


def same_charge(a: Interval, b: Interval) -> bool:
    """Two sources that nothing configures as one charger observed the same charge."""
    if a.source == b.source or _overlap(a, b) <= 0 or abs(a.start_ns - b.start_ns) > SAME_START_NS:
        return False
    if a.energy_wh and b.energy_wh:
        return abs(a.energy_wh - b.energy_wh) <= ENERGY_MATCH * max(a.energy_wh, b.energy_wh)
    return abs(a.end_ns - b.end_ns) <= SAME_END_NS


def _flow(wall: Interval) -> tuple[int, int]:
    """When energy started and stopped flowing in a wallbox session (its sampled profile; the
    plugged-in time without one)."""
    if not wall.profile or not wall.energy_wh:
        return wall.start_ns, wall.end_ns
    final = wall.profile[-1][1]
    start = next((t for t, wh, _ in wall.profile if wh > 1.0), wall.start_ns)
    end = next((t for t, wh, _ in wall.profile if wh >= final - 1.0), wall.end_ns)
    return start, end


def mismatch(wall: Interval, vehicle: Interval) -> int:
    """How far a car's charge is from the wallbox's flow of energy, start and end (ns)."""
    start, end = _flow(wall)
    return abs(start - vehicle.start_ns) + abs(end - vehicle.end_ns)


def plausible_vehicle(wall: Interval, vehicle: Interval) -> bool:
    """An unconfigured car's charge can be this wallbox session: it lies inside the plugged-in
    time (a car charges only while plugged in), began within SAME_START_NS of the energy
    flowing, the battery took 70-102 % of the wall energy (AC losses), and the car's own
    estimate of the wall energy is within 15 % of it. When unsure, no join: a vehicle-only
    session is honest, a wrong car on a statement is not."""
    if _overlap(wall, vehicle) < (vehicle.end_ns - vehicle.start_ns) - SKEW_NS:
        return False
    if abs(_flow(wall)[0] - vehicle.start_ns) > SAME_START_NS:
        return False
    if wall.energy_wh and vehicle.vehicle_energy_wh is not None:
        if not 0.7 <= vehicle.vehicle_energy_wh / wall.energy_wh <= 1.02:
            return False
    if wall.energy_wh and vehicle.vehicle_grid_wh is not None:
        if not 0.85 <= vehicle.vehicle_grid_wh / wall.energy_wh <= 1.15:
            return False
    return True


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
        profile=profile, card=a.card or b.card,
        meter_start_wh=a.meter_start_wh if a.meter_start_wh is not None else b.meter_start_wh,
        meter_end_wh=b.meter_end_wh if b.meter_end_wh is not None else a.meter_end_wh,
        meter=a.meter or b.meter)


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
                 "vehicle", "card"):
        if getattr(primary, name) is None and getattr(other, name) is not None:
            updates[name] = getattr(other, name)
    if primary.meter is None and other.meter is not None:   # readings of one meter, together
        updates.update(meter=other.meter, meter_start_wh=other.meter_start_wh,
                       meter_end_wh=other.meter_end_wh)
    if not primary.profile and other.profile and "energy_wh" in updates:
        updates["profile"] = other.profile
    return replace(primary, sources=primary.sources | other.sources, **updates)


@dataclass(frozen=True)
class Session:
    charger: str
    vehicle: str | None
    interval: Interval


def _combine_wallbox(wallbox: Sequence[Interval], ids: Identities) -> dict[str, list[Interval]]:
    """Charger name -> its charges, each the leading source's observation completed by the
    others' (evcc driving a go-e: go-e's meter leads, evcc adds its vehicle and solar share)."""
    named: dict[str, list[Interval]] = {}
    for iv in sorted(wallbox, key=lambda iv: (ids.charger_rank(iv.charger or ""), iv.start_ns)):
        name = ids.charger_name(iv.charger or "")
        group = named.setdefault(name, [])
        target = next(((name, k) for k, existing in enumerate(group)
                       if _overlap(existing, iv) > 0 and existing.charger != iv.charger), None)
        if target is None:
            # Nothing configured says these watch one charger: the data may (same_charge).
            target = next(((other, k) for other, charges in named.items()
                           for k, existing in enumerate(charges)
                           if not (ids.configured(iv.charger or "")
                                   and ids.configured(existing.charger or ""))
                           and same_charge(existing, iv)), None)
        if target is None:
            group.append(iv)
        else:
            charges = named[target[0]]
            charges[target[1]] = _fill(charges[target[1]], iv)
    return {name: charges for name, charges in named.items() if charges}


def _vehicle_candidates(named: Mapping[str, Sequence[Interval]], vehicle_side: Sequence[Interval],
                        ids: Identities) -> list[tuple[tuple, str, int, int]]:
    """(score, charger, charge index, vehicle charge index) for every pairing allowed."""
    out = []
    for charger, group in named.items():
        allowed = ids.charger_vehicles.get(charger, ())
        for n, iv in enumerate(group):
            wall_vehicle = ids.vehicle_name(iv.vehicle) if iv.vehicle else None
            if wall_vehicle is None and len(allowed) == 1:
                wall_vehicle = allowed[0]
            for k, v in enumerate(vehicle_side):
                overlap = _overlap(iv, v)
                if overlap <= 0:
                    continue
                name = ids.vehicle_name(v.vehicle or "")
                if wall_vehicle is not None and name != wall_vehicle:
                    continue
                if allowed and name not in allowed:
                    continue
                configured = name is not None and (wall_vehicle is not None or bool(allowed))
                if configured:
                    # most overlap (to the minute: sources sample at different moments), then
                    # the closer start
                    score = (True, overlap // OVERLAP_RESOLUTION_NS, -abs(iv.start_ns - v.start_ns))
                elif plausible_vehicle(iv, v):
                    # two cars charging at once both lie inside an overnight session: the one
                    # whose charge matches the wallbox's flow of energy is its car
                    score = (False, -mismatch(iv, v), overlap)
                else:
                    continue
                out.append((score, charger, n, k))
    return sorted(out, key=lambda c: c[0], reverse=True)


def join(wallbox: Sequence[Interval], vehicle_side: Sequence[Interval], ids: Identities) -> list[Session]:
    """One session per charge: a charger's sources combined, then the vehicle side joined."""
    named = _combine_wallbox(wallbox, ids)
    joined: dict[tuple[str, int], int] = {}
    used: set[int] = set()
    for _, charger, n, k in _vehicle_candidates(named, vehicle_side, ids):
        if (charger, n) not in joined and k not in used:
            joined[(charger, n)] = k
            used.add(k)

    # An unconfigured evcc vehicle title joined to one car elsewhere in the data is that car
    # where its own vehicle data is missing, so one car does not appear under two names.
    seen_as: dict[str, set[str]] = {}
    for (charger, n), k in joined.items():
        wall = named[charger][n].vehicle
        if wall and ids.vehicle_name(wall) is None:
            v = vehicle_side[k]
            seen_as.setdefault(wall, set()).add(ids.vehicle_name(v.vehicle or "") or v.vehicle or "")

    sessions: list[Session] = []
    for charger, group in named.items():
        allowed = ids.charger_vehicles.get(charger, ())
        for n, iv in enumerate(group):
            vehicle = ids.vehicle_name(iv.vehicle) if iv.vehicle else None
            if vehicle is None and len(allowed) == 1:
                vehicle = allowed[0]
            if vehicle is None and len(seen_as.get(iv.vehicle or "", ())) == 1:
                vehicle = next(iter(seen_as[iv.vehicle or ""])) or None
            if (charger, n) in joined:
                v = vehicle_side[joined[(charger, n)]]
                vehicle = vehicle or ids.vehicle_name(v.vehicle or "") or v.vehicle
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
    values["card"] = iv.card
    if iv.meter_start_wh is not None and iv.meter_end_wh is not None:
        values.update(meter_start_wh=iv.meter_start_wh, meter_end_wh=iv.meter_end_wh, meter=iv.meter)
        if energy:
            difference = iv.meter_end_wh - iv.meter_start_wh - energy
            values["meter_deviation_pct"] = round(difference / energy * 100, 3)
            values["meter_mismatch"] = abs(difference) > max(METER_TOLERANCE * energy, METER_RESOLUTION_WH)
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
                          savings=round(priced.grid_only_cost - priced.cost, 6),
                          price_per_kwh=round(priced.grid_only_cost / (energy / 1000), 6),
                          price_source=priced.source or tariff.name, currency=currency)
    return CHARGING_SESSION.point({"charger": session.charger}, values, iv.start_ns)


def derive_sessions(wallbox: Iterable[Interval], vehicle_side: Iterable[Interval], ids: Identities,
                    gap_ns: int, now_ns: int, tariff: Tariff | None = None,
                    currency: str | None = None) -> list[Point]:
    """`charging_session` points for every session that has ended for good by `now_ns`."""
    wall = merge_gaps([iv for iv in wallbox if iv.charger not in ids.ignore], gap_ns)
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
