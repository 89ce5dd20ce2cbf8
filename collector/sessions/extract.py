"""Per-source extraction: stored points of one device -> the charges that device observed.

Pure functions over points in any order (they sort by time). Each returns `Interval`s with
`start_seen` / `end_seen` saying whether the transitions were observed, so a caller looking at
a window of data never emits a session cut short by the window's edge.
"""

from __future__ import annotations

import bisect
from typing import Any, Callable, Iterable, Mapping, Protocol

from collector.sessions.model import Interval
from collector.sources.goe.parse import card_label

# go-e `car`: 2 charging, 3 waiting for car, 4 complete are "a car is connected"; 1 is idle.
# 0 unknown/error, 5 error, 6 initializing say nothing about the connection: skipped.
GOE_CONNECTED = frozenset({2, 3, 4})
GOE_IDLE = 1
GOE_CHARGING = 2
# A sample counts towards charging time only up to this long after the previous one, so a
# hole in the data is not booked as charging.
MAX_SAMPLE_GAP_NS = 300 * 10**9
# OVMS charge states during which energy flows (the rest: done, stopped, timerwait, ...).
OVMS_CHARGING_STATES = frozenset({"charging", "topoff", "heating", "prepare"})


class PointLike(Protocol):
    time_ns: int
    tags: dict[str, str]
    fields: dict[str, Any]


def _first(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return None


class CounterSum:
    """Sum of increments of a counter that may reset to zero (go-e `wh` at each connection).

    A drop is a reset: the new value is the energy since the reset.
    """

    def __init__(self, baseline: float | None = 0.0) -> None:
        self.last = baseline
        self.total: float | None = None

    def add(self, value: float | None) -> None:
        if value is None:
            return
        if self.last is None:
            self.last = value
            self.total = self.total or 0.0
            return
        step = value - self.last if value >= self.last else value
        self.total = (self.total or 0.0) + step
        self.last = value


CardNames = Callable[[int], Mapping[int, str]]   # time_ns -> {card number: name}


def goe_card_names(points: Iterable[PointLike]) -> CardNames:
    """A charger's card names (`goe_card`) as they were at a given time: the latest reading at
    or before it, else the first after (a card list read after the session)."""
    times: list[int] = []
    lists: list[dict[int, str]] = []
    current: dict[int, str] = {}
    for p in sorted(points, key=lambda p: p.time_ns):
        name, card = p.fields.get("name"), p.tags.get("card", "")
        if isinstance(name, str) and card.isdigit():
            current = {**current, int(card): name}
            if times and times[-1] == p.time_ns:
                lists[-1] = current
            else:
                times.append(p.time_ns)
                lists.append(current)

    def at(time_ns: int) -> Mapping[int, str]:
        if not lists:
            return {}
        return lists[max(bisect.bisect_right(times, time_ns) - 1, 0)]
    return at


def goe_intervals(points: Iterable[PointLike], serial: str,
                  card_names: CardNames | None = None) -> list[Interval]:
    """Connections of a go-eCharger from `goe_status`: car state 2/3/4 between idle states.

    The card is the first `trx` seen while connected, named from `card_names`; the meter
    readings are `eto` at the connection (the idle sample before it) and at the end.
    """
    out: list[Interval] = []
    seen_idle = False
    cur: dict[str, Any] | None = None
    last_eto: float | None = None

    def close(end_seen: bool) -> None:
        nonlocal cur
        if cur is None:
            return
        wall = cur["wh"].total
        if wall is None and cur["eto_start"] is not None and cur["eto_end"] is not None:
            wall = max(cur["eto_end"] - cur["eto_start"], 0.0)
        charge_s = cur["cdi"] if cur["cdi"] is not None else cur["charging_ns"] / 1e9
        names = card_names(cur["end"]) if card_names is not None and cur["trx"] else {}
        meter = cur["eto_start"] is not None and cur["eto_end"] is not None
        out.append(Interval(
            source="goe", charger=f"goe:{serial}", start_ns=cur["start"], end_ns=cur["end"],
            start_seen=cur["start_seen"], end_seen=end_seen, energy_wh=wall,
            solar_wh=cur["whs"].total, grid_wh=cur["whg"].total, battery_wh=cur["whb"].total,
            charge_s=charge_s, profile=cur["profile"], card=card_label(cur["trx"], names),
            meter_start_wh=cur["eto_start"] if meter else None,
            meter_end_wh=cur["eto_end"] if meter else None,
            meter=f"goe:{serial} eto" if meter else None))
        cur = None

    for p in sorted(points, key=lambda p: p.time_ns):
        fl = p.fields
        car = fl.get("car_state")
        eto = _num(fl.get("energy_total_wh"))
        if car in GOE_CONNECTED:
            if cur is None:
                cur = {"start": p.time_ns, "end": p.time_ns, "start_seen": seen_idle,
                       # `wh` counts from the connection, so it starts at 0 when we saw it begin
                       "wh": CounterSum(0.0 if seen_idle else None),
                       "whs": CounterSum(0.0 if seen_idle else None),
                       "whg": CounterSum(0.0 if seen_idle else None),
                       "whb": CounterSum(0.0 if seen_idle else None),
                       "eto_start": last_eto if seen_idle else eto, "eto_end": eto,
                       "cdi": None, "charging_ns": 0, "prev_t": None, "prev_car": None,
                       "profile": [], "trx": None}
            c = cur
            trx = fl.get("transaction_card")
            if c["trx"] is None and isinstance(trx, int) and not isinstance(trx, bool):
                c["trx"] = trx
            c["wh"].add(_num(fl.get("energy_session_wh")))
            for key, name in (("whs", "energy_solar_wh"), ("whg", "energy_grid_wh"),
                              ("whb", "energy_battery_wh")):
                c[key].add(_num(fl.get(name)))
            if eto is not None:
                c["eto_end"] = eto
            cdi = _num(fl.get("charge_duration_s"))
            if cdi is not None:
                c["cdi"] = cdi if c["cdi"] is None else max(c["cdi"], cdi)
            if c["prev_car"] == GOE_CHARGING and p.time_ns - c["prev_t"] <= MAX_SAMPLE_GAP_NS:
                c["charging_ns"] += p.time_ns - c["prev_t"]
            c["prev_t"], c["prev_car"], c["end"] = p.time_ns, car, p.time_ns
            if c["wh"].total is not None:
                c["profile"].append((p.time_ns, c["wh"].total, c["whg"].total))
        elif car == GOE_IDLE:
            if cur is not None:
                # `wh` keeps the session's energy after the car left: the first idle sample
                # holds what was charged since the last connected one. A drop means reset.
                c = cur
                for key, name in (("wh", "energy_session_wh"), ("whs", "energy_solar_wh"),
                                  ("whg", "energy_grid_wh"), ("whb", "energy_battery_wh")):
                    value = _num(fl.get(name))
                    if value is not None and c[key].last is not None and value >= c[key].last:
                        c[key].add(value)
                if eto is not None and c["eto_end"] is not None and eto >= c["eto_end"]:
                    c["eto_end"] = eto
                if c["wh"].total is not None:
                    c["profile"].append((p.time_ns, c["wh"].total, c["whg"].total))
            close(end_seen=True)
            seen_idle = True
        if eto is not None:
            last_eto = eto
    close(end_seen=False)
    return out


def evcc_intervals(points: Iterable[PointLike]) -> list[Interval]:
    """evcc's own finished sessions (`evcc_session`), one interval each."""
    out = []
    for p in points:
        fl, tags = p.fields, p.tags
        finished = _num(fl.get("finished_unix_s"))
        duration = _num(fl.get("connected_duration_s"))
        if duration is not None:
            end = p.time_ns + int(duration * 1e9)
        elif finished is not None:
            end = int(finished * 1e9)
        else:
            end = p.time_ns
        vehicle = tags.get("vehicle")
        charger = f"evcc:{tags.get('site', '')}/{tags.get('loadpoint_title', '')}"
        meter_start, meter_end = _num(fl.get("meter_start_wh")), _num(fl.get("meter_stop_wh"))
        meter = meter_start is not None and meter_end is not None
        identifier = fl.get("identifier")
        out.append(Interval(
            source="evcc", charger=charger,
            vehicle=f"evcc:{vehicle}" if vehicle else None, start_ns=p.time_ns, end_ns=max(end, p.time_ns),
            energy_wh=_num(fl.get("energy_wh")), solar_pct=_num(fl.get("solar_pct")),
            charge_s=_num(fl.get("charge_duration_s")), soc_start=_num(fl.get("soc_start_pct")),
            soc_end=_num(fl.get("soc_end_pct")), odometer_km=_num(fl.get("odometer_km")),
            card=identifier.strip() if isinstance(identifier, str) and identifier.strip() else None,
            meter_start_wh=meter_start if meter else None, meter_end_wh=meter_end if meter else None,
            meter=f"{charger} chargeTotalImport" if meter else None))
    return sorted(out, key=lambda iv: iv.start_ns)


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
        meter = _num(fl.get("meter_energy_wh"))
        if state is True:
            if cur is None:
                cur = {"start": p.time_ns, "end": p.time_ns, "start_seen": seen_out,
                       "meter_start": last_meter if seen_out and last_meter is not None else meter,
                       "meter_end": meter, "integral": None, "prev": None, "charging_ns": 0,
                       "soc_start": None, "soc_end": None, "profile": []}
            c = cur
            power = _num(fl.get("charge_power_w"))
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
            soc = _num(fl.get("soc_pct"))
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
                vehicle_energy_wh=_num(fl.get("charge_energy_wh")),
                vehicle_grid_wh=_num(fl.get("charge_grid_energy_wh")),
                charge_s=_num(fl.get("charge_time_s")),
                soc_start=_num(start.fields.get("soc_pct")), soc_end=_num(fl.get("soc_pct")),
                # the odometer at the start: what a reimbursement record asks for
                odometer_km=_first(_num(start.fields.get("odometer_km")), _num(fl.get("odometer_km")))))
            start = None
        seen_other = True
    if start is not None:
        out.append(Interval(source="ovms", vehicle=f"ovms:{vehicle}", start_ns=start.time_ns,
                            end_ns=start.time_ns, start_seen=start_seen, end_seen=False,
                            soc_start=_num(start.fields.get("soc_pct"))))
    return out
