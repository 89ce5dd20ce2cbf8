"""Energy counters: which field of a measurement is a meter, and its increments per period.

A `CounterSpec` (collector/specs.py) is data a source declares in its package; nothing here
names a source. Specs are passed in by the caller (the registry's `counter_specs()`).
"""

from __future__ import annotations

from collections.abc import Sequence
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from collector.query.times import DAY_NS, period_start
from collector.specs import CounterSpec

# Counters read before the range, so the first increment inside it is known.
LEAD_IN_NS = DAY_NS
ENERGY_COLUMNS = ("energy_wh", "solar_energy_wh", "grid_energy_wh", "battery_energy_wh")


class CounterRollup:
    """Sums counter increments per (period, charger) over chunks of any size.

    An increment belongs to the period of the later sample. A counter that drops has been
    reset (go-e `whs` at each connection, a replaced meter): the new value is the increment.
    """

    def __init__(self, tz: ZoneInfo, period: str, start_ns: int) -> None:
        self.tz, self.period, self.start_ns = tz, period, start_ns
        self.last: dict[tuple[str, str], float] = {}
        self.parts: list[pd.DataFrame] = []

    def add(self, frame: pd.DataFrame, spec: CounterSpec, tag_names: Sequence[str]) -> None:
        if frame.empty:
            return
        if tag_names:
            groups = frame.groupby(list(tag_names), sort=False).indices
        else:
            groups = {(): np.arange(len(frame))}
        periods = period_start(frame["time_ns"], self.tz, self.period).to_numpy()
        times = frame["time_ns"].to_numpy()
        for key, positions in groups.items():
            values_key = key if isinstance(key, tuple) else (key,)
            charger = spec.identity(dict(zip(tag_names, values_key, strict=True)))
            t_all, p_all = times[positions], periods[positions]
            for fieldname, column in spec.counters:
                values = frame[fieldname].to_numpy(dtype="float64", na_value=np.nan)[positions]
                ok = ~np.isnan(values)
                if not ok.any():
                    continue
                v, t, p = values[ok], t_all[ok], p_all[ok]
                prev = np.empty_like(v)
                prev[1:] = v[:-1]
                carry = self.last.get((charger, column))
                prev[0] = carry if carry is not None else v[0]
                inc = np.where(v >= prev, v - prev, v)
                self.last[(charger, column)] = float(v[-1])
                keep = t >= self.start_ns
                if keep.any():
                    part = pd.DataFrame({"period_ns": p[keep], "charger": charger, column: inc[keep]})
                    self.parts.append(part.groupby(["period_ns", "charger"], as_index=False).sum())

    def result(self) -> pd.DataFrame:
        if not self.parts:
            return pd.DataFrame(columns=["period_ns", "charger", *ENERGY_COLUMNS])
        merged = pd.concat(self.parts, ignore_index=True)
        out = merged.groupby(["period_ns", "charger"], as_index=False).sum(min_count=1)
        for col in ENERGY_COLUMNS:
            if col not in out:
                out[col] = np.nan
        return out
