"""Charges as an OVMS vehicle logged them: `*-LOG-Grid` records in `ovms_grid`."""

from __future__ import annotations

from collections.abc import Iterable

from collector.charges import ChargeExtractor, Interval, PointLike, Reader, by_tag, first, num

# OVMS charge states during which energy flows (the rest: done, stopped, timerwait, ...).
OVMS_CHARGING_STATES = frozenset({"charging", "topoff", "heating", "prepare"})



def ovms_intervals(points: Iterable[PointLike], vehicle: str) -> list[Interval]:
    """Charges from OVMS `*-LOG-Grid` records (`ovms_grid`): a record entering a charging state
    starts one, the next record in another state ends it and carries its kWh and duration."""
    out: list[Interval] = []
    seen_other = False
    start: PointLike | None = None
    for p in sorted(points, key=lambda p: p.time_ns):
        state = p.fields.get("charge_state")
        if not isinstance(state, str):
            continue
        if state.lower() in OVMS_CHARGING_STATES:
            if start is None:
                start = p if seen_other else None
                if start is None:  # charging already when our data begins: start unknown
                    start = p
                    start_seen = False
                else:
                    start_seen = True
            continue
        if start is not None:
            fl = p.fields
            out.append(Interval(
                source="ovms", vehicle=f"ovms:{vehicle}", start_ns=start.time_ns, end_ns=p.time_ns,
                start_seen=start_seen, end_seen=True,
                vehicle_energy_wh=num(fl.get("charge_energy_wh")),
                vehicle_grid_wh=num(fl.get("charge_grid_energy_wh")),
                charge_s=num(fl.get("charge_time_s")),
                soc_start=num(start.fields.get("soc_pct")), soc_end=num(fl.get("soc_pct")),
                # the odometer at the start: what a reimbursement record asks for
                odometer_km=first(num(start.fields.get("odometer_km")), num(fl.get("odometer_km")))))
            start = None
        seen_other = True
    if start is not None:
        out.append(Interval(source="ovms", vehicle=f"ovms:{vehicle}", start_ns=start.time_ns,
                            end_ns=start.time_ns, start_seen=start_seen, end_seen=False,
                            soc_start=num(start.fields.get("soc_pct"))))
    return out


def intervals(read: Reader, start_ns: int, end_ns: int) -> tuple[list[Interval], list[Interval]]:
    vehicle: list[Interval] = []
    grid = (p for p in read("ovms_grid", start_ns, end_ns)
            if p.tags.get("record_type", "").endswith("-LOG-Grid"))
    for vid, pts in by_tag(grid, "vehicle").items():
        vehicle += ovms_intervals(pts, vid)
    return [], vehicle


EXTRACTOR = ChargeExtractor(
    intervals, measurements=("ovms_grid",),
    fields={"ovms_grid": (("charge_state", "soc_pct", "charge_energy_wh", "charge_grid_energy_wh",
                           "charge_time_s", "odometer_km"), frozenset())})
