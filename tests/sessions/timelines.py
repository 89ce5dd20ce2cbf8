"""Constructed timelines of stored points, the way the sources store them."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Sequence

from collector.store import StoredPoint

S = 10**9


def ts(text: str) -> int:
    """ns from an ISO time with offset, e.g. "2026-03-01T10:00:00+00:00"."""
    return int(datetime.fromisoformat(text).astimezone(timezone.utc).timestamp()) * S


def goe(start_ns: int, phases: Sequence[tuple[int, int, float]], serial: str = "012345",
        step_s: int = 60, eto: float = 100_000.0, solar_share: float | None = None) -> list[StoredPoint]:
    """go-e status every `step_s`: phases of (seconds, car state, charging power W).

    `wh` counts from each connection and keeps its value while idle, as the charger does.
    """
    points, t, wh = [], start_ns, 0.0
    connected = False
    for seconds, car, power in phases:
        for _ in range(seconds // step_s):
            if car in (2, 3, 4) and not connected:
                wh, connected = 0.0, True
            if car == 1:
                connected = False
            fields = {"car_state": car, "energy_total_wh": int(eto), "energy_session_wh": wh,
                      "power_w": power}
            if solar_share is not None:
                fields.update(energy_solar_wh=wh * solar_share, energy_grid_wh=wh * (1 - solar_share),
                              energy_battery_wh=0.0)
            points.append(StoredPoint("goe_status", {"serial": serial}, t, fields))
            t += step_s * S
            step_wh = power * step_s / 3600
            wh += step_wh
            eto += step_wh
    return points


def ovms_grid(vehicle: str, records: Sequence[tuple[int, str, dict]]) -> list[StoredPoint]:
    return [StoredPoint("ovms_grid", {"vehicle": vehicle, "record_type": "*-LOG-Grid"}, t,
                        {"charge_state": state, **fields}) for t, state, fields in records]
