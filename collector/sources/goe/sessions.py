"""Charging sessions as a go-eCharger saw them: connections in `goe_status`, card names from `goe_card`."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from collector.charges import (
    MAX_SAMPLE_GAP_NS,
    ChargeExtractor,
    CounterSum,
    Interval,
    PointLike,
    Reader,
    by_tag,
    num,
)
from collector.sources.goe.parse import card_label

# go-e `car`: 2 charging, 3 waiting for car, 4 complete are "a car is connected"; 1 is idle.
# 0 unknown/error, 5 error, 6 initializing say nothing about the connection: skipped.
GOE_CONNECTED = frozenset({2, 3, 4})
GOE_IDLE = 1
GOE_CHARGING = 2
CARD_LOOKBACK_NS = 7 * 86400 * 10**9



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
        eto = num(fl.get("energy_total_wh"))
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
            c["wh"].add(num(fl.get("energy_session_wh")))
            for key, name in (("whs", "energy_solar_wh"), ("whg", "energy_grid_wh"),
                              ("whb", "energy_battery_wh")):
                c[key].add(num(fl.get(name)))
            if eto is not None:
                c["eto_end"] = eto
            cdi = num(fl.get("charge_duration_s"))
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
                    value = num(fl.get(name))
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


def intervals(read: Reader, start_ns: int, end_ns: int) -> tuple[list[Interval], list[Interval]]:
    wallbox: list[Interval] = []
    by_serial = by_tag(read("goe_status", start_ns, end_ns), "serial")
    # the card list is read hourly: a week before the window finds the names in force
    cards = by_tag(read("goe_card", start_ns - CARD_LOOKBACK_NS, end_ns), "serial")
    for serial, pts in by_serial.items():
        wallbox += goe_intervals(pts, serial, goe_card_names(cards.get(serial, ())))
    return wallbox, []


EXTRACTOR = ChargeExtractor(
    intervals, measurements=("goe_status",),
    fields={"goe_status": (("car_state", "energy_total_wh", "energy_session_wh", "energy_solar_wh",
                            "energy_grid_wh", "energy_battery_wh", "charge_duration_s",
                            "transaction_card"), frozenset())})
