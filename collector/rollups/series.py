"""The arithmetic of rollups: one device's samples -> one value per period, vectorised.

Each function takes a device's samples in time order (times in ns, values as float arrays
with NaN where a sample lacks the field) and the period boundaries [b0, b1, ..., bn] (n
periods), and returns n values. Cumulative quantities (a meter, an integral of power) are
read at each boundary by linear interpolation between the samples either side, so the energy
between the last sample before midnight and the first after is split between the two days in
proportion to time and counted exactly once. Before the first sample and after the last one
nothing is known: the cumulative value is held, so a period without samples on one side gets
only what its samples show.
"""

from __future__ import annotations

import numpy as np

NS = 10**9
# A counter that drops by more than this (Wh, and this share of its value) was reset, e.g.
# a replaced meter or a per-connection counter; smaller drops are rounding noise.
RESET_DROP_WH = 1.0
RESET_DROP_SHARE = 0.005


def _present(t_ns: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = ~np.isnan(values)
    return t_ns[keep], values[keep]


def _seconds(t_ns: np.ndarray, origin: int) -> np.ndarray:
    """Seconds since `origin` as float64: exact to well under a microsecond for decades."""
    return (t_ns - origin).astype(np.float64) / NS


def _at_boundaries(t_ns: np.ndarray, cumulative: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    if len(t_ns) == 0:
        return np.zeros(len(bounds) - 1)
    origin = int(t_ns[0])
    at = np.interp(_seconds(bounds, origin), _seconds(t_ns, origin), cumulative)
    return np.diff(at)


def counter_cumulative(values: np.ndarray) -> np.ndarray:
    """Energy counted by a counter since its first sample, at each sample.

    A drop larger than the noise allowance is a reset: the value after it is the energy since
    the reset. Smaller drops are noise: the counter's running maximum carries on, so noise
    going down and back up adds nothing.
    """
    if len(values) == 0:
        return values.astype(np.float64)
    v = values.astype(np.float64)
    previous = np.concatenate(([v[0]], v[:-1]))
    allowance = np.maximum(RESET_DROP_WH, RESET_DROP_SHARE * np.abs(previous))
    reset = (previous - v) > allowance
    segment = np.cumsum(reset)
    # the running maximum within each segment: lift each segment above the one before
    lift = 2.0 * float(np.nanmax(np.abs(v))) + 1.0
    running = np.maximum.accumulate(v + segment * lift) - segment * lift
    # each segment counts from its first value (0 after a reset: its first value is energy)
    starts = np.flatnonzero(np.concatenate(([True], reset[1:])))
    base = np.where(np.arange(len(starts)) == 0, v[0], 0.0)
    within = running - base[segment]
    # energy carried over from the segments before: each segment's last running value
    ends = np.concatenate((starts[1:] - 1, [len(v) - 1]))
    totals = within[ends]
    carried = np.concatenate(([0.0], np.cumsum(totals)[:-1]))
    return within + carried[segment]


def meter_per_period(t_ns: np.ndarray, values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Energy a meter (or a resetting counter) counted in each period, midnight interpolated."""
    t, v = _present(t_ns, values)
    return _at_boundaries(t, counter_cumulative(v), bounds)


def integral_cumulative(t_ns: np.ndarray, power_w: np.ndarray, max_gap_s: float) -> np.ndarray:
    """Wh at each sample from integrating power (trapezoids). A step longer than `max_gap_s`
    adds nothing: nobody knows what the power was during a hole in the data."""
    if len(t_ns) == 0:
        return power_w.astype(np.float64)
    seconds = np.diff(t_ns).astype(np.float64) / NS
    steps = (power_w[1:] + power_w[:-1]) / 2.0 * seconds / 3600.0
    steps[seconds > max_gap_s] = 0.0
    return np.concatenate(([0.0], np.cumsum(steps)))


def integral_per_period(t_ns: np.ndarray, power_w: np.ndarray, bounds: np.ndarray,
                        max_gap_s: float) -> np.ndarray:
    t, p = _present(t_ns, power_w)
    return _at_boundaries(t, integral_cumulative(t, p, max_gap_s), bounds)


def latest_per_period(t_ns: np.ndarray, values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """The last sample inside each period, NaN where the period has none."""
    t, v = _present(t_ns, values)
    out = np.full(len(bounds) - 1, np.nan)
    if len(t) == 0:
        return out
    last = np.searchsorted(t, bounds[1:], side="left") - 1
    inside = (last >= 0) & (t[np.clip(last, 0, None)] >= bounds[:-1])
    out[inside] = v[last[inside]]
    return out


def time_mean_per_period(t_ns: np.ndarray, values: np.ndarray, bounds: np.ndarray,
                         max_gap_s: float) -> np.ndarray:
    """Time-weighted mean of a level (a price) over the covered part of each period, each
    sample holding until the next (at most `max_gap_s`); NaN where nothing is covered."""
    t, v = _present(t_ns, values)
    if len(t) == 0:
        return np.full(len(bounds) - 1, np.nan)
    seconds = np.diff(t).astype(np.float64) / NS
    held = np.where(seconds > max_gap_s, 0.0, seconds)
    area = np.concatenate(([0.0], np.cumsum(v[:-1] * held)))
    covered = np.concatenate(([0.0], np.cumsum(held)))
    # a step function's integral is linear within each step: interpolation is exact
    total = _at_boundaries(t, area, bounds)
    time = _at_boundaries(t, covered, bounds)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(time > 0, total / time, np.nan)


def period_index(t_ns: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Which period each time falls in; -1 outside every period."""
    index = np.searchsorted(bounds, t_ns, side="right") - 1
    index[(index < 0) | (index >= len(bounds) - 1)] = -1
    return index


def sum_per_period(t_ns: np.ndarray, values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Sum of event values (a trip's kWh) per period of the event's time; NaN where no event
    had the value."""
    index = period_index(t_ns, bounds)
    keep = (index >= 0) & ~np.isnan(values)
    out = np.zeros(len(bounds) - 1)
    np.add.at(out, index[keep], values[keep])
    seen = np.zeros(len(bounds) - 1, dtype=bool)
    seen[index[keep]] = True
    return np.where(seen, out, np.nan)


def count_per_period(t_ns: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    index = period_index(t_ns, bounds)
    return np.bincount(index[index >= 0], minlength=len(bounds) - 1).astype(np.float64)


def parked_per_period(level_t: np.ndarray, level: np.ndarray, extra: list[np.ndarray],
                      activity: list[tuple[np.ndarray, np.ndarray]], bounds: np.ndarray,
                      max_gap_s: float) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Vampire drain per period: (parked hours, level lost, [each extra level lost]).

    A step between two level readings counts as parked when some activity source has spoken
    before it, the last word of every source before it was "inactive", no source reported
    activity during it, and it is at most `max_gap_s` long. The loss of each parked step is
    spread over its duration like any other interpolated quantity; a period's loss is net of
    small rises and never below zero.
    """
    keep = ~np.isnan(level)
    t, v = level_t[keep], level[keep]
    others = [x[keep] for x in extra]
    periods = len(bounds) - 1
    if len(t) < 2:
        return np.zeros(periods), np.zeros(periods), [np.zeros(periods) for _ in extra]
    known = np.zeros(len(t), dtype=bool)
    active_now = np.zeros(len(t), dtype=bool)
    active_during = np.zeros(len(t) - 1, dtype=np.int64)
    for at, flag in activity:
        if len(at) == 0:
            continue
        last = np.searchsorted(at, t, side="right") - 1
        seen = last >= 0
        known |= seen
        active_now |= seen & flag[np.clip(last, 0, None)]
        running = np.concatenate(([0], np.cumsum(flag.astype(np.int64))))
        active_during += running[last[1:] + 1] - running[last[:-1] + 1]
    seconds = np.diff(t).astype(np.float64) / NS
    parked = known[:-1] & ~active_now[:-1] & (active_during == 0) & (seconds <= max_gap_s)

    def lost(values: np.ndarray) -> np.ndarray:
        step = np.where(parked & ~np.isnan(values[:-1]) & ~np.isnan(values[1:]),
                        values[:-1] - values[1:], 0.0)
        per = _at_boundaries(t, np.concatenate(([0.0], np.cumsum(step))), bounds)
        return np.maximum(per, 0.0)

    hours = _at_boundaries(t, np.concatenate(([0.0], np.cumsum(np.where(parked, seconds, 0.0)))),
                           bounds) / 3600.0
    return hours, lost(v), [lost(x) for x in others]
