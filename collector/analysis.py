"""Long-term energy analysis with pandas: what `report` prints and draws.

Every figure comes from the `charging_session` rows of the period (the same frame as
`export sessions`), rounded once per session to whole Wh and whole cents. Every total is then
an exact sum of its rows: the headline energy equals the sum of the per-charger rows, of the
per-vehicle rows and of the days, and a sum of displayed values equals the displayed total.
Shares and efficiency are ratios and say over which energy they are taken. The chargers'
meter readings the sessions carry are shown beside them as a cross-check, not mixed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from collector.query import FrameReader
from collector.query.frames import Request, sessions_frame

NO_VEHICLE = "(no vehicle)"

# Whole-Wh and whole-cent columns every sum is made of.
ENERGY = ("wall_wh", "solar_wh", "grid_wh", "battery_wh", "unsplit_wh", "into_battery_wh",
          "into_battery_wall_wh")
MONEY = ("cost_ct", "grid_only_cost_ct", "savings_ct")


@dataclass
class Analysis:
    start_ns: int
    end_ns: int
    tz: ZoneInfo
    sessions: pd.DataFrame     # export session rows plus the rounded columns below
    totals: dict[str, Any]     # the `summarise` of all sessions
    per_vehicle: pd.DataFrame  # one `summarise` row per vehicle, by name
    per_charger: pd.DataFrame  # one per charger
    per_day: pd.DataFrame      # per local day the sessions started: energy by source, cost
    per_month: pd.DataFrame    # per local month: energy, cost
    meters: pd.DataFrame       # per meter: how far it advanced over its sessions, beside them
    currency: str | None


def _whole(values: pd.Series) -> pd.Series:
    return values.astype("float64").round(0)


def rounded(sessions: pd.DataFrame) -> pd.DataFrame:
    """Each session's figures in whole Wh and whole cents, the split adding up to the energy.

    A session whose solar and battery parts are known has grid = energy - solar - battery, so
    solar + grid + battery = energy exactly; without a split its energy is `unsplit`.
    """
    s = sessions.copy()
    energy = _whole(s["energy_wh"]).fillna(0.0)
    solar = _whole(s["solar_energy_wh"])
    split = solar.notna() & (energy > 0)
    battery = _whole(s["battery_energy_wh"]).fillna(0.0)
    s["wall_wh"] = energy
    s["solar_wh"] = solar.where(split, 0.0)
    s["battery_wh"] = battery.where(split, 0.0)
    s["grid_wh"] = (energy - solar.fillna(0.0) - battery).clip(lower=0.0).where(split, 0.0)
    s["unsplit_wh"] = energy.where(~split, 0.0)
    both = s["vehicle_energy_wh"].notna() & (energy > 0)
    s["into_battery_wh"] = _whole(s["vehicle_energy_wh"]).where(both, 0.0)
    s["into_battery_wall_wh"] = energy.where(both, 0.0)       # the wall side of those sessions
    s["efficiency_known"] = both
    for col in ("cost", "grid_only_cost"):
        s[f"{col}_ct"] = (s[col].astype("float64") * 100).round(0)      # NaN when unpriced
    s["savings_ct"] = s["grid_only_cost_ct"] - s["cost_ct"]
    s["priced"] = s["cost_ct"].notna()
    s["flagged"] = s["meter_mismatch"].fillna(False).astype(bool)
    return s


def summarise(s: pd.DataFrame) -> dict[str, Any]:
    """Sums (Wh, cents) and the ratios over what they are taken of, for a set of sessions."""
    out: dict[str, Any] = {"sessions": int(len(s))}
    for col in ENERGY:
        out[col] = float(s[col].sum()) if len(s) else 0.0
    for col in MONEY:
        out[col] = float(s[col].sum(min_count=1)) if len(s) and s[col].notna().any() else None
    out["priced"] = int(s["priced"].sum()) if len(s) else 0
    out["efficiency_sessions"] = int(s["efficiency_known"].sum()) if len(s) else 0
    out["flagged"] = int(s["flagged"].sum()) if len(s) else 0
    split = out["wall_wh"] - out["unsplit_wh"]
    out["split_wh"] = split
    out["solar_pct"] = out["solar_wh"] / split * 100 if split > 0 else None
    wall = out["into_battery_wall_wh"]
    out["efficiency_pct"] = out["into_battery_wh"] / wall * 100 if wall > 0 else None
    return out


def _group(s: pd.DataFrame, key: str, empty: str) -> pd.DataFrame:
    if s.empty:
        return pd.DataFrame(columns=[key, "sessions", *ENERGY, *MONEY])
    keys = s[key].fillna(empty).astype(str)
    rows = [{key: name, **summarise(g)} for name, g in s.groupby(keys, sort=True)]
    return pd.DataFrame(rows)


def _local_dates(s: pd.DataFrame, tz: ZoneInfo, fmt: str) -> pd.Series:
    seconds = s["epoch_s"].astype(str).str.split(".").str[0].astype("int64")
    return pd.to_datetime(seconds, unit="s", utc=True).dt.tz_convert(tz).dt.strftime(fmt)


def _meters(s: pd.DataFrame) -> pd.DataFrame:
    """Per meter the sessions name: how far it advanced from the first session's start reading
    to the last session's end reading, beside the energy of those sessions. A difference is
    energy between sessions that no session holds (another car, a gap in the data).

    From the session records alone, so a year stays fast; `statement` reads the meters' own
    counts over its month."""
    rows = []
    if not s.empty and s["meter"].notna().any():
        for meter, g in s[s["meter"].notna()].groupby("meter", sort=True):
            g = g.sort_values("epoch_s", kind="stable")
            start, end = g["meter_start_wh"].astype("float64"), g["meter_end_wh"].astype("float64")
            rows.append({"meter": meter, "charger": ", ".join(sorted(set(g["charger"]))),
                         "sessions": int(len(g)), "advanced": float(round(end.iloc[-1] - start.iloc[0], 0)),
                         "sessions_wh": float(g["wall_wh"].sum())})
    return pd.DataFrame(rows, columns=["meter", "charger", "sessions", "advanced", "sessions_wh"])


def analyse(reader: FrameReader, start_ns: int, end_ns: int, tz: ZoneInfo) -> Analysis:
    frame = sessions_frame(reader, Request("sessions", start_ns, end_ns, tz))
    s = rounded(frame)
    if not s.empty:
        s["date"] = _local_dates(s, tz, "%Y-%m-%d")
        s["month"] = s["date"].str[:7]
    else:
        s["date"] = pd.Series(dtype="object")
        s["month"] = pd.Series(dtype="object")
    per_charger = _group(s, "charger", "(unknown)")
    currency = None
    if not s.empty and s["currency"].notna().any():
        currency = str(s["currency"].dropna().iloc[0])
    return Analysis(
        start_ns, end_ns, tz, s, summarise(s), _group(s, "vehicle", NO_VEHICLE), per_charger,
        _group(s, "date", ""), _group(s, "month", ""), _meters(s), currency)


def energy_by_day(analysis: Analysis) -> pd.DataFrame:
    """Per local day the sessions started: solar, grid, battery and unsplit Wh (they add up
    to the day's session energy, and the days to the headline)."""
    d = analysis.per_day
    if d.empty:
        return pd.DataFrame(columns=["date", "solar", "grid", "battery", "unknown"])
    return pd.DataFrame({"date": d["date"], "solar": d["solar_wh"], "grid": d["grid_wh"],
                         "battery": d["battery_wh"], "unknown": d["unsplit_wh"]})
