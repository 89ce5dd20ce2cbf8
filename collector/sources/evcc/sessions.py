"""Charging sessions as evcc recorded them (`evcc_session`)."""

from __future__ import annotations

from collections.abc import Iterable

from collector.charges import ChargeExtractor, Interval, PointLike, Reader, num


def evcc_intervals(points: Iterable[PointLike]) -> list[Interval]:
    """evcc's own finished sessions (`evcc_session`), one interval each."""
    out = []
    for p in points:
        fl, tags = p.fields, p.tags
        finished = num(fl.get("finished_unix_s"))
        duration = num(fl.get("connected_duration_s"))
        if duration is not None:
            end = p.time_ns + int(duration * 1e9)
        elif finished is not None:
            end = int(finished * 1e9)
        else:
            end = p.time_ns
        vehicle = tags.get("vehicle")
        charger = f"evcc:{tags.get('site', '')}/{tags.get('loadpoint_title', '')}"
        meter_start, meter_end = num(fl.get("meter_start_wh")), num(fl.get("meter_stop_wh"))
        meter = meter_start is not None and meter_end is not None
        identifier = fl.get("identifier")
        out.append(Interval(
            source="evcc", charger=charger,
            vehicle=f"evcc:{vehicle}" if vehicle else None, start_ns=p.time_ns, end_ns=max(end, p.time_ns),
            energy_wh=num(fl.get("energy_wh")), solar_pct=num(fl.get("solar_pct")),
            charge_s=num(fl.get("charge_duration_s")), soc_start=num(fl.get("soc_start_pct")),
            soc_end=num(fl.get("soc_end_pct")), odometer_km=num(fl.get("odometer_km")),
            card=identifier.strip() if isinstance(identifier, str) and identifier.strip() else None,
            meter_start_wh=meter_start if meter else None, meter_end_wh=meter_end if meter else None,
            meter=f"{charger} chargeTotalImport" if meter else None))
    return sorted(out, key=lambda iv: iv.start_ns)


def intervals(read: Reader, start_ns: int, end_ns: int) -> tuple[list[Interval], list[Interval]]:
    return evcc_intervals(read("evcc_session", start_ns, end_ns)), []


EXTRACTOR = ChargeExtractor(intervals, measurements=("evcc_session",))
