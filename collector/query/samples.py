"""Samples for the rollups: each series' values in time order, with its neighbours outside
the range (interpolating at a midnight needs the sample on either side of it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from collector.store import Store


@dataclass
class Samples:
    """One series' samples in time order: its tags, times (ns) and one list per field."""

    tags: dict[str, str]
    t_ns: np.ndarray
    columns: dict[str, list[Any]]

    def numbers(self, name: str) -> np.ndarray:
        """A field as floats, NaN where a sample lacks it (or holds text)."""
        values = self.columns.get(name)
        if values is None:
            return np.full(len(self.t_ns), np.nan)
        return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(np.float64)

    def rows(self) -> Iterable[tuple[int, dict[str, Any]]]:
        names = list(self.columns)
        for k, t in enumerate(self.t_ns):
            yield int(t), {n: self.columns[n][k] for n in names if self.columns[n][k] is not None}


class SampleReader(Protocol):
    """Where samples come from (the local store; InfluxDB would do as well).

    Returns the series of `measurement` with the samples in [start_ns, end_ns) and, per
    series, the nearest sample on either side that has any of the fields, however far away:
    interpolation needs them. With `at`, only the samples nearest each of those instants on
    either side (all that lifetime meters need).
    """

    def __call__(self, measurement: str, fields: Sequence[str], start_ns: int, end_ns: int,
                 at: Sequence[int] | None = None) -> list[Samples]: ...


def store_samples(store: Store) -> SampleReader:
    """Samples from the local store, with each series' nearest samples outside the range
    (with `at`, only the nearest samples either side of each instant: index lookups)."""

    def read(measurement: str, fields: Sequence[str], start_ns: int, end_ns: int,
             at: Sequence[int] | None = None) -> list[Samples]:
        rows: dict[int, dict[int, tuple]] = {}          # series -> time -> values
        tags: dict[int, dict[str, str]] = {}
        if at is None:
            for chunk_tags, chunk in store.query_rows(measurement, fields, start_ns, end_ns):
                tags.update(chunk_tags)
                for sid, t, *values in chunk:
                    rows.setdefault(sid, {})[t] = tuple(values)
        for instant, before in [(start_ns, True), (end_ns, False)] if at is None else \
                [(t, side) for t in at for side in (True, False)]:
            edge_tags, edge = store.nearest_rows(measurement, fields, instant, before)
            for sid, t, *values in edge:
                tags.setdefault(sid, edge_tags[sid])
                rows.setdefault(sid, {})[t] = tuple(values)
        out = []
        for sid, by_time in rows.items():
            times = sorted(by_time)
            columns = list(zip(*(by_time[t] for t in times), strict=True))
            out.append(Samples(tags[sid], np.array(times, dtype=np.int64),
                               {name: list(col) for name, col in zip(fields, columns, strict=True)}))
        return out

    return read
