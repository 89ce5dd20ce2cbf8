"""Long-term energy analysis with pandas: what `report` prints and draws.

Built on the export's frames, so a report and a CSV of the same range always agree: energy
per day from the chargers' counters, sessions (count, cost, vehicle side) from
`charging_session`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from collector.export import Request, rollup_frame, sessions_frame


@dataclass
class Analysis:
    start_ns: int
    end_ns: int
    tz: ZoneInfo
    daily: pd.DataFrame        # export daily rows
    sessions: pd.DataFrame     # export session rows
    totals: dict[str, float | int | None]
    per_vehicle: pd.DataFrame
    per_charger: pd.DataFrame
    monthly_cost: pd.DataFrame
    currency: str | None


def _sum(frame: pd.DataFrame, column: str) -> float | None:
    if frame.empty or column not in frame or frame[column].isna().all():
        return None
    return float(frame[column].astype("float64").sum())


def _share(part: float | None, whole: float | None) -> float | None:
    return part / whole * 100 if part is not None and whole else None


def _group(sessions: pd.DataFrame, key: str) -> pd.DataFrame:
    columns = ["sessions", "energy_kwh", "solar_pct", "cost", "savings", "efficiency_pct"]
    if sessions.empty:
        return pd.DataFrame(columns=[key, *columns])
    s = sessions.assign(**{key: sessions[key].fillna("(unknown)")})
    rows = []
    for name, g in s.groupby(key, sort=True):
        energy = _sum(g, "energy_wh")
        both = g.dropna(subset=["energy_wh", "vehicle_energy_wh"])
        rows.append({key: name, "sessions": len(g),
                     "energy_kwh": energy / 1000 if energy is not None else None,
                     "solar_pct": _share(_sum(g.dropna(subset=["solar_energy_wh"]), "solar_energy_wh"),
                                         _sum(g.dropna(subset=["solar_energy_wh"]), "energy_wh")),
                     "cost": _sum(g, "cost"), "savings": _sum(g, "savings"),
                     "efficiency_pct": _share(_sum(both, "vehicle_energy_wh"), _sum(both, "energy_wh"))})
    return pd.DataFrame(rows, columns=[key, *columns])


def analyse(reader: Any, start_ns: int, end_ns: int, tz: ZoneInfo,
            charger_names: dict[str, str] | None = None) -> Analysis:
    daily = rollup_frame(reader, Request("daily", start_ns, end_ns, tz, charger_names=charger_names))
    sessions = sessions_frame(reader, Request("sessions", start_ns, end_ns, tz))
    for col in ("energy_wh", "solar_energy_wh", "vehicle_energy_wh", "cost", "grid_only_cost",
                "savings", "soc_start_pct", "soc_end_pct", "efficiency_pct"):
        if col in sessions:
            sessions[col] = sessions[col].astype("float64")
    counter_energy = _sum(daily, "energy_wh")
    energy = counter_energy if counter_energy else _sum(sessions, "energy_wh")
    solar_rows = daily.dropna(subset=["solar_energy_wh"]) if counter_energy else sessions.dropna(subset=["solar_energy_wh"])
    both = sessions.dropna(subset=["energy_wh", "vehicle_energy_wh"]) if not sessions.empty else sessions
    totals = {
        "energy_kwh": energy / 1000 if energy is not None else None,
        "solar_pct": _share(_sum(solar_rows, "solar_energy_wh"), _sum(solar_rows, "energy_wh")),
        "sessions": int(len(sessions)),
        "cost": _sum(sessions, "cost"),
        "grid_only_cost": _sum(sessions, "grid_only_cost"),
        "savings": _sum(sessions, "savings"),
        "vehicle_energy_kwh": (_sum(sessions, "vehicle_energy_wh") or 0) / 1000 or None,
        "efficiency_pct": _share(_sum(both, "vehicle_energy_wh"), _sum(both, "energy_wh")),
    }
    if sessions.empty:
        monthly = pd.DataFrame(columns=["month", "cost", "grid_only_cost"])
    else:
        month = sessions["local_time"].str[:7]
        monthly = (sessions.assign(month=month).groupby("month", as_index=False)[["cost", "grid_only_cost"]]
                   .sum(min_count=1))
    currency = None
    if not sessions.empty and sessions["currency"].notna().any():
        currency = str(sessions["currency"].dropna().iloc[0])
    return Analysis(start_ns, end_ns, tz, daily, sessions, totals, _group(sessions, "vehicle"),
                    _group(sessions, "charger"), monthly, currency)


def energy_by_day(analysis: Analysis) -> pd.DataFrame:
    """Per local day: solar, grid, battery and unattributed Wh, all chargers together."""
    d = analysis.daily
    if d.empty:
        return pd.DataFrame(columns=["date", "solar", "grid", "battery", "unknown"])
    g = d.groupby("date", as_index=False)[["energy_wh", "solar_energy_wh", "grid_energy_wh",
                                           "battery_energy_wh"]].sum(min_count=1).fillna(0.0)
    known = g["solar_energy_wh"] + g["grid_energy_wh"] + g["battery_energy_wh"]
    return pd.DataFrame({"date": g["date"], "solar": g["solar_energy_wh"], "grid": g["grid_energy_wh"],
                         "battery": g["battery_energy_wh"],
                         "unknown": np.maximum(g["energy_wh"] - known, 0.0)})
