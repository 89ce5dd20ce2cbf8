"""What the commands show, as frames: session rows, raw points, counter rollups per period.

Each takes a `FrameReader` and a `Request`; the CSV, the report and the statements are
written from these frames. Columns and units: docs/export.md.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from collector.query.counters import ENERGY_COLUMNS, LEAD_IN_NS, CounterRollup
from collector.query.readers import FrameReader, QueryError, declared
from collector.query.times import DAY_NS, NS, epoch_text, local_text, period_start

# The one import that runs up: a reader asked for a measurement by name needs every
# declaration, and only the schema gathers them (sources, sessions, rollups, health).
from collector.schema import all_measurements
from collector.specs import CounterSpec

RAW_WINDOW_NS = DAY_NS
SESSION_SUMS = ("vehicle_energy_wh", "cost", "grid_only_cost", "savings")
SESSION_COLUMNS_FIRST = ("epoch_s", "local_time", "end_local_time", "charger", "vehicle")


@dataclass
class Request:
    kind: str
    start_ns: int
    end_ns: int
    tz: ZoneInfo
    source: str | None = None
    measurement: str | None = None
    charger_names: dict[str, str] | None = None
    progress: bool = False


def _progress(total_ns: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=max(1, total_ns // DAY_NS), unit="day", file=sys.stderr, leave=False)


def _track(frames: Iterator[pd.DataFrame], bar: Any, state: dict) -> Iterator[pd.DataFrame]:
    for frame in frames:
        if bar is not None and not frame.empty:
            t = int(frame["time_ns"].max())
            days = (t - state["start"]) // DAY_NS
            if days > state["done"]:
                bar.update(days - state["done"])
                state["done"] = days
        yield frame


def with_times(frame: pd.DataFrame, tz: ZoneInfo) -> pd.DataFrame:
    """`time_ns` replaced by `epoch_s` and `local_time`, the first two columns."""
    ns = frame.pop("time_ns")
    frame.insert(0, "epoch_s", epoch_text(ns).to_numpy())
    frame.insert(1, "local_time", local_text(ns, tz).to_numpy())
    return frame


def raw_frame(reader: FrameReader, req: Request) -> Iterator[pd.DataFrame]:
    measurements = [m for m in all_measurements() if m.name != "charging_session"]
    if req.measurement:
        chosen = [declared(req.measurement)]
    elif req.source:
        chosen = [m for m in measurements if m.source == req.source]
        if len(chosen) != 1:
            raise QueryError(f"raw export needs --measurement; source {req.source!r} has: "
                             + ", ".join(m.name for m in chosen))
    else:
        raise QueryError("raw export needs --measurement (or a --source with one measurement)")
    m = chosen[0]
    fields = [fl.name for fl in m.fields]
    bar = _progress(req.end_ns - req.start_ns, req.progress)
    state = {"start": req.start_ns, "done": 0}
    keys = ["time_ns", *[t.name for t in m.tags]]
    try:
        # Windows of time, each sorted by time then tags: the same rows in the same order
        # whichever reader (and its own chunking) delivered them.
        window = req.start_ns
        while window < req.end_ns:
            upper = min(window + RAW_WINDOW_NS, req.end_ns)
            frames = list(_track(reader.frames(m.name, fields, window, upper), bar, state))
            if frames:
                frame = pd.concat(frames, ignore_index=True).sort_values(keys, kind="stable")
                yield with_times(frame, req.tz)
            window = upper
    finally:
        if bar is not None:
            bar.close()


def sessions_frame(reader: FrameReader, req: Request) -> pd.DataFrame:
    m = declared("charging_session")
    fields = [fl.name for fl in m.fields]
    frames = list(reader.frames(m.name, fields, req.start_ns, req.end_ns))
    if not frames:
        return pd.DataFrame(columns=[*SESSION_COLUMNS_FIRST, *[f for f in fields if f != "vehicle"]])
    frame = pd.concat(frames, ignore_index=True).sort_values(["time_ns", "charger"], kind="stable")
    if req.source:
        frame = frame[frame["sources"].fillna("").str.split("+").map(lambda s: req.source in s)]
    end = frame["end_unix_s"].astype("float64").mul(NS).fillna(0).astype("int64")
    frame.insert(0, "end_local_time",
                 local_text(end, req.tz).where(frame["end_unix_s"].notna(), None).to_numpy())
    frame = with_times(frame, req.tz)
    order = [*SESSION_COLUMNS_FIRST, *[f for f in fields if f != "vehicle"]]
    return frame[order].reset_index(drop=True)


def rollup_frame(reader: FrameReader, req: Request, specs: Sequence[CounterSpec]) -> pd.DataFrame:
    """Energy per local day (`req.kind` "daily") or month from the counters `specs` name,
    beside the sessions that started in each."""
    period = "day" if req.kind == "daily" else "month"
    names = req.charger_names or {}
    rollup = CounterRollup(req.tz, period, req.start_ns)
    chosen = [s for s in specs if req.source is None or declared(s.measurement).source == req.source]
    bar = _progress((req.end_ns - req.start_ns) * max(1, len(chosen)), req.progress)
    state = {"start": req.start_ns, "done": 0}
    try:
        for spec in chosen:
            m = declared(spec.measurement)
            tag_names = [t.name for t in m.tags]
            fields = [f for f, _ in spec.counters]
            rollup.last.clear()
            for frame in _track(reader.frames(spec.measurement, fields, req.start_ns - LEAD_IN_NS,
                                              req.end_ns), bar, state):
                rollup.add(frame, spec, tag_names)
            state["start"] -= req.end_ns - req.start_ns
    finally:
        if bar is not None:
            bar.close()
    energy = rollup.result()
    energy["charger"] = energy["charger"].map(lambda c: names.get(c, c))
    # Two sources of one named charger: keep the first that has the period (configured order).
    energy = energy.groupby(["period_ns", "charger"], as_index=False, sort=False).first()

    sessions = sessions_frame(reader, Request("sessions", req.start_ns, req.end_ns, req.tz, req.source))
    if not sessions.empty:
        starts = pd.Series([int(v.split(".")[0]) * NS for v in sessions["epoch_s"]])
        sess = pd.DataFrame({"period_ns": period_start(starts, req.tz, period).to_numpy(),
                             "charger": sessions["charger"].to_numpy(), "sessions": 1,
                             **{c: sessions[c].astype("float64").to_numpy() for c in SESSION_SUMS}})
        sess = sess.groupby(["period_ns", "charger"], as_index=False).sum(min_count=1)
        out = energy.merge(sess, on=["period_ns", "charger"], how="outer")
    else:
        out = energy.assign(sessions=0, **{c: np.nan for c in SESSION_SUMS})
    out["sessions"] = out["sessions"].fillna(0).astype("int64")
    out = out.sort_values(["period_ns", "charger"], kind="stable").reset_index(drop=True)
    period_ns = out.pop("period_ns").astype("int64")
    local = pd.to_datetime(period_ns, utc=True).dt.tz_convert(req.tz)
    label = local.dt.strftime("%Y-%m-%d" if period == "day" else "%Y-%m")
    columns = {("date" if period == "day" else "month"): label.to_numpy(),
               "epoch_s": (period_ns // NS).to_numpy(),
               "local_time": local_text(period_ns, req.tz).to_numpy()}
    for k, (name, values) in enumerate(columns.items()):
        out.insert(k, name, values)
    for col in ENERGY_COLUMNS + ("vehicle_energy_wh",):
        out[col] = out[col].astype("float64").round(3)
    for col in ("cost", "grid_only_cost", "savings"):
        out[col] = out[col].astype("float64").round(4)
    return out[[*columns, "charger", *ENERGY_COLUMNS, "sessions", *SESSION_SUMS]]
