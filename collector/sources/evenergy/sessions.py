"""Charging sessions as ev.energy logged them: plugged-in periods in `evenergy_status`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from collector.charges import (
    MAX_SAMPLE_GAP_NS,
    ChargeExtractor,
    Interval,
    PointLike,
    Reader,
    by_tag,
    num,
)


def evenergy_intervals(points: Iterable[PointLike], evse: str) -> list[Interval]:
    """Plugged-in periods of an ev.energy EVSE (`evenergy_status`); energy from the meter.

    Without `plugged_in` in the logs, charging periods stand in (the gap merge joins them).
    Without a meter reading, energy is the integral of `charge_power_w`.
    """
    ordered = sorted(points, key=lambda p: p.time_ns)
    key = "plugged_in" if any("plugged_in" in p.fields for p in ordered) else "charging"
    out: list[Interval] = []
    seen_out = False
    last_meter: float | None = None
    cur: dict[str, Any] | None = None

    def close(end_seen: bool) -> None:
        nonlocal cur
        if cur is None:
            return
        energy = None
        meter = cur["meter_start"] is not None and cur["meter_end"] is not None
        if meter:
            energy = max(cur["meter_end"] - cur["meter_start"], 0.0)
        elif cur["integral"] is not None:
            energy = cur["integral"]
        out.append(Interval(
            source="evenergy", charger=f"evenergy:{evse}", start_ns=cur["start"], end_ns=cur["end"],
            start_seen=cur["start_seen"], end_seen=end_seen, energy_wh=energy,
            charge_s=cur["charging_ns"] / 1e9, soc_start=cur["soc_start"], soc_end=cur["soc_end"],
            profile=cur["profile"] if energy is not None else [],
            meter_start_wh=cur["meter_start"] if meter else None,
            meter_end_wh=cur["meter_end"] if meter else None,
            meter=f"evenergy:{evse} meter reading" if meter else None))
        cur = None

    for p in ordered:
        fl = p.fields
        state = fl.get(key)
        meter = num(fl.get("meter_energy_wh"))
        if state is True:
            if cur is None:
                cur = {"start": p.time_ns, "end": p.time_ns, "start_seen": seen_out,
                       "meter_start": last_meter if seen_out and last_meter is not None else meter,
                       "meter_end": meter, "integral": None, "prev": None, "charging_ns": 0,
                       "soc_start": None, "soc_end": None, "profile": []}
            c = cur
            power = num(fl.get("charge_power_w"))
            if c["prev"] is not None:
                pt, pp, was_charging = c["prev"]
                if p.time_ns - pt <= MAX_SAMPLE_GAP_NS:
                    if pp is not None and power is not None:
                        c["integral"] = (c["integral"] or 0.0) + (pp + power) / 2 * (p.time_ns - pt) / 3.6e12
                    if was_charging:
                        c["charging_ns"] += p.time_ns - pt
            elif power is not None:
                c["integral"] = 0.0
            c["prev"] = (p.time_ns, power, fl.get("charging") is True)
            if meter is not None:
                c["meter_end"] = meter
                if c["meter_start"] is None:
                    c["meter_start"] = meter
            soc = num(fl.get("soc_pct"))
            if soc is not None:
                c["soc_start"] = soc if c["soc_start"] is None else c["soc_start"]
                c["soc_end"] = soc
            c["end"] = p.time_ns
            so_far = (c["meter_end"] - c["meter_start"] if c["meter_start"] is not None
                      and c["meter_end"] is not None else c["integral"])
            if so_far is not None:
                c["profile"].append((p.time_ns, max(so_far, 0.0), None))
        elif state is False:
            close(end_seen=True)
            seen_out = True
        if meter is not None:
            last_meter = meter
    close(end_seen=False)
    return out


def intervals(read: Reader, start_ns: int, end_ns: int) -> tuple[list[Interval], list[Interval]]:
    wallbox: list[Interval] = []
    for evse, pts in by_tag(read("evenergy_status", start_ns, end_ns), "evse").items():
        wallbox += evenergy_intervals(pts, evse)
    return wallbox, []


EXTRACTOR = ChargeExtractor(
    intervals, measurements=("evenergy_status",),
    fields={"evenergy_status": (("plugged_in", "charging", "charge_power_w", "meter_energy_wh", "soc_pct"),
                                frozenset({"plugged_in", "charging"}))})
