"""Daily and monthly rollup points from samples, pure: a reader in, points out.

`compute_days` asks a reader for the samples of every measurement the declarations in
`specs.py` name, over a run of local days, and returns one `rollup_daily` point per entity
and day. `compute_months` adds days up into `rollup_monthly` points. Given the same samples,
both return the same points, so a recomputed period overwrites its earlier point.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from collector.points import Point
from collector.query.samples import SampleReader, Samples
from collector.rollups import series as calc
from collector.rollups.model import CALENDAR, LATEST, MEAN, RATIOS, ROLLUP_DAILY, ROLLUP_MONTHLY
from collector.rollups.periods import Period
from collector.rollups.specs import all_specs, measurements, sparse
from collector.sessions.derive import Identities
from collector.specs import MAX_GAP_S, Device, Events, Parked, Spec

# The longest step between two state-of-charge readings still taken as one parked stretch:
# a parked OVMS module may report only every few hours.
PARKED_MAX_GAP_S = 24 * 3600.0
DECIMALS = 6


@dataclass(frozen=True)
class Names:
    """How source identities become the names rollups use: as the charging sessions name them."""

    ids: Identities = field(default_factory=Identities)

    def resolve(self, kind: str, identity: str) -> tuple[str, int]:
        """(name, rank): rank orders the identities of one configured charger."""
        if kind == "charger":
            return self.ids.charger_name(identity), self.ids.charger_rank(identity)
        if kind == "vehicle":
            return self.ids.vehicle_name(identity) or identity, 0
        return identity, 0


Key = tuple[str, str, str]          # kind, name, period label


class _Collected:
    """Values per (entity, day, field); of a charger's several identities the first wins."""

    def __init__(self) -> None:
        self.values: dict[Key, dict[str, tuple[int, Any]]] = defaultdict(dict)

    def put(self, key: Key, name: str, value: Any, rank: int = 0) -> None:
        if value is None or (isinstance(value, float) and not np.isfinite(value)):
            return
        held = self.values[key].get(name)
        if held is None or rank < held[0]:
            self.values[key][name] = (rank, value)


def _bounds(periods: Sequence[Period]) -> np.ndarray:
    return np.array([p.start_ns for p in periods] + [periods[-1].end_ns], dtype=np.int64)


def _covered(t_ns: np.ndarray, values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Periods whose inside the span of a field's samples reaches. Outside that span a
    cumulative value is only held, which says nothing about the period."""
    present = t_ns[~np.isnan(values)]
    if len(present) == 0:
        return np.zeros(len(bounds) - 1, dtype=bool)
    return (present[-1] > bounds[:-1]) & (present[0] < bounds[1:])


def _device(spec: Device, data: list[Samples], bounds: np.ndarray, labels: list[str],
            names: Names, out: _Collected) -> None:
    for samples in data:
        identity = spec.identity(samples.tags)
        if identity is None:
            continue
        name, rank = names.resolve(spec.kind, identity)
        t = samples.t_ns
        results: list[tuple[str, np.ndarray, np.ndarray]] = []
        for output, fieldname in spec.meters.items():
            values = samples.numbers(fieldname)
            results.append((output, calc.meter_per_period(t, values, bounds), _covered(t, values, bounds)))
        for output, (fieldname, part) in spec.integrals.items():
            values = samples.numbers(fieldname)
            if part == "positive":
                values = np.where(np.isnan(values), np.nan, np.maximum(values, 0.0))
            elif part == "negative":
                values = np.where(np.isnan(values), np.nan, np.maximum(-values, 0.0))
            results.append((output, calc.integral_per_period(t, values, bounds, MAX_GAP_S),
                            _covered(t, values, bounds)))
        for output, fieldname in spec.means.items():
            per = calc.time_mean_per_period(t, samples.numbers(fieldname), bounds, MAX_GAP_S)
            results.append((output, per, ~np.isnan(per)))
        for output, fieldname in spec.latest.items():
            per = calc.latest_per_period(t, samples.numbers(fieldname), bounds)
            results.append((output, per, ~np.isnan(per)))
        for output, per, ok in results:
            for k in np.flatnonzero(ok):
                out.put((spec.kind, name, labels[k]), output, float(per[k]), rank)


def _events(spec: Events, data: list[Samples], bounds: np.ndarray, labels: list[str],
            names: Names, out: _Collected) -> None:
    sums: dict[Key, dict[str, float]] = defaultdict(dict)
    latest: dict[Key, dict[str, tuple[int, Any]]] = defaultdict(dict)
    for samples in data:
        index = calc.period_index(samples.t_ns, bounds)
        for (t, fields), k in zip(samples.rows(), index, strict=True):
            if k < 0 or (spec.where is not None and not spec.where(fields)):
                continue
            identity = spec.identity(samples.tags, fields)
            if identity is None:
                continue
            name = identity if spec.named else names.resolve(spec.kind, identity)[0]
            key = (spec.kind, name, labels[k])
            bucket = sums[key]
            if spec.count:
                bucket[spec.count] = bucket.get(spec.count, 0) + 1
            for output, value_of in spec.sums.items():
                value = value_of(fields)
                if value is not None:
                    bucket[output] = bucket.get(output, 0.0) + value
            for output, fieldname in spec.latest.items():
                if fields.get(fieldname) is not None and t >= latest[key].get(output, (-1, None))[0]:
                    latest[key][output] = (t, fields[fieldname])
    for key, bucket in sums.items():
        for output, value in bucket.items():
            out.put(key, output, value)
        for output, (_, value) in latest[key].items():
            out.put(key, output, value)


def _flags(samples: Samples, fieldname: str, states: frozenset[str]) -> tuple[np.ndarray, np.ndarray]:
    """An activity field as (times, active) where it was reported: booleans (stored as 0/1)
    are active when true, text when it is one of `states`."""
    times, active = [], []
    for t, value in zip(samples.t_ns, samples.columns.get(fieldname, ()), strict=False):
        if value is None:
            continue
        times.append(t)
        active.append(value.lower() in states if isinstance(value, str) else bool(value))
    return np.array(times, dtype=np.int64), np.array(active, dtype=bool)


def _parked(spec: Parked, data: Mapping[str, list[Samples]], bounds: np.ndarray, labels: list[str],
            names: Names, out: _Collected) -> None:
    by_entity: dict[str, dict[str, list[Samples]]] = defaultdict(lambda: defaultdict(list))
    for measurement, series in data.items():
        for samples in series:
            identity = spec.identity(samples.tags)
            if identity is not None:
                by_entity[identity][measurement].append(samples)
    for identity, parts in by_entity.items():
        levels = parts.get(spec.level[0], [])
        if not levels:
            continue
        level = levels[0]
        extra = [level.numbers(spec.range[1])] if spec.range and spec.range[0] == spec.level[0] else []
        activity = [_flags(s, fieldname, spec.active_states)
                    for measurement, fieldname in spec.activity for s in parts.get(measurement, [])]
        hours, soc, ranges = calc.parked_per_period(level.t_ns, level.numbers(spec.level[1]), extra,
                                                    activity, bounds, PARKED_MAX_GAP_S)
        name, _ = names.resolve(spec.kind, identity)
        for k in np.flatnonzero(hours > 0):
            key = (spec.kind, name, labels[k])
            out.put(key, "parked_hours", float(hours[k]))
            out.put(key, "parked_soc_loss_pct", float(soc[k]))
            if ranges:
                out.put(key, "parked_range_loss_km", float(ranges[0][k]))


def _finish(values: dict[str, Any], period: Period) -> dict[str, Any]:
    """Calendar fields, ratios from their sums, and rounding (float noise would make a
    recomputed, unchanged period look changed and ship again)."""
    out = {name: (round(v, DECIMALS) if isinstance(v, float) else v) for name, v in values.items()}
    for name, (numerator, denominator, scale) in RATIOS.items():
        top, bottom = values.get(numerator), values.get(denominator)
        if top is not None and bottom:
            out[name] = round(top / bottom * scale, DECIMALS)
    out["period"] = period.label
    out["hours"] = period.hours
    return out


def compute_days(read: SampleReader, days: Sequence[Period], names: Names | None = None,
                 specs: Sequence[Spec] | None = None) -> list[Point]:
    """`rollup_daily` points for every entity that has data on any of `days` (consecutive);
    `specs`: what to compute (default: every registered source's, and the sessions')."""
    if not days:
        return []
    specs = all_specs() if specs is None else specs
    names = names or Names()
    bounds = _bounds(days)
    labels = [p.label for p in days]
    wanted: dict[tuple[str, bool], list[str]] = {}
    for spec in specs:
        for measurement, fields in measurements(spec).items():
            have = wanted.setdefault((measurement, sparse(spec)), [])
            have += [f for f in fields if f not in have]
    at = [int(b) for b in bounds]
    data = {(m, thin): read(m, fields, days[0].start_ns, days[-1].end_ns, at=at if thin else None)
            for (m, thin), fields in wanted.items()}
    out = _Collected()
    for spec in specs:
        if isinstance(spec, Device):
            _device(spec, data[(spec.measurement, spec.sparse)], bounds, labels, names, out)
        elif isinstance(spec, Events):
            _events(spec, data[(spec.measurement, False)], bounds, labels, names, out)
        else:
            _parked(spec, {m: data[(m, False)] for m in measurements(spec)}, bounds, labels, names, out)
    by_label = {p.label: p for p in days}
    points = []
    for (kind, name, label), values in sorted(out.values.items()):
        finished = _finish({k: v for k, (_, v) in values.items()}, by_label[label])
        point = ROLLUP_DAILY.point({"kind": kind, "name": name}, finished, by_label[label].start_ns)
        if point is not None:
            points.append(point)
    return points


def compute_months(daily: Iterable[Point], months: Sequence[Period]) -> list[Point]:
    """`rollup_monthly` points from the `rollup_daily` points of each month.

    Sums add up; readings (state of health) take the last day's; the grid price the mean of
    the days; ratios are recomputed from the summed parts. Days that do not start at a local
    midnight of these months' zone (written under another time zone) are left out.
    """
    starts: dict[str, Period] = {m.label: m for m in months}
    grouped: dict[tuple[str, str, str], list[Point]] = defaultdict(list)
    for point in daily:
        label = str(point.fields.get("period", ""))
        month = starts.get(label[:7])
        if month is None or not month.start_ns <= point.time_ns < month.end_ns:
            continue
        grouped[(point.tags.get("kind", ""), point.tags.get("name", ""), month.label)].append(point)
    points = []
    for (kind, name, label), days in sorted(grouped.items()):
        days.sort(key=lambda p: p.time_ns)
        values: dict[str, Any] = {}
        means: dict[str, list[float]] = defaultdict(list)
        for day in days:
            for fieldname, value in day.fields.items():
                if fieldname in CALENDAR or fieldname in RATIOS:
                    continue
                if fieldname in LATEST:
                    values[fieldname] = value
                elif fieldname in MEAN:
                    means[fieldname].append(float(value))
                else:
                    values[fieldname] = values.get(fieldname, 0) + value
        for fieldname, seen in means.items():
            values[fieldname] = sum(seen) / len(seen)
        month = starts[label]
        total = ROLLUP_MONTHLY.point({"kind": kind, "name": name}, _finish(values, month), month.start_ns)
        if total is not None:
            points.append(total)
    return points
