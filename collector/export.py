"""`ev-collector export sessions|daily|monthly|raw`: CSV for spreadsheets and employers.

Reads InfluxDB when the configuration has an `[influxdb]` section (InfluxQL over `/query`,
which 1.x answers natively and 2.x/3.x through their v1 compatibility API with a DBRP
mapping), else the embedded store. Both readers yield the same frames (time, tags, fields
coerced to their declared types), so the CSV does not depend on where the data lives.
Columns and units: docs/export.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from collector.measurement import FieldType, Measurement
from collector.schema import all_measurements
from collector.sources import counter_specs, load_all_sources
from collector.specs import CounterSpec

log = logging.getLogger(__name__)

NS = 10**9
DAY_NS = 86400 * NS
# Counters read before --from, so the first increment inside the range is known.
LEAD_IN_NS = DAY_NS
INFLUX_WINDOW_NS = 7 * DAY_NS
RAW_WINDOW_NS = DAY_NS


class ExportError(ValueError):
    """A request export cannot answer (unknown measurement, bad range); the message says why."""


# -- readers ------------------------------------------------------------------------------------

def _schema(measurement: str) -> Measurement:
    for m in all_measurements():
        if m.name == measurement:
            return m
    raise ExportError(f"unknown measurement {measurement!r}; known: "
                      + ", ".join(m.name for m in all_measurements()))


def _coerce(frame: pd.DataFrame, m: Measurement, fields: Sequence[str]) -> pd.DataFrame:
    """Declared types, whatever the reader returned (InfluxDB sends 2.0 as 2, SQLite true as 1)."""
    types = {fl.name: fl.type for fl in m.fields}
    for name in fields:
        col = frame[name]
        kind = types[name]
        if kind is FieldType.FLOAT:
            frame[name] = pd.to_numeric(col, errors="coerce").astype("float64")
        elif kind is FieldType.INT:
            frame[name] = pd.to_numeric(col, errors="coerce").astype("Int64")
        elif kind is FieldType.BOOL:
            frame[name] = col.map(lambda v: None if v is None or v != v else bool(v)).astype("boolean")
        else:
            frame[name] = col.astype("object").where(col.notna(), None)
    return frame


class StoreReader:
    """The embedded store (SQLite)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.description = f"local store {store.path}"

    def frames(self, measurement: str, fields: Sequence[str], start_ns: int, end_ns: int,
               chunk: int = 50_000) -> Iterator[pd.DataFrame]:
        m = _schema(measurement)
        tag_names = [t.name for t in m.tags]
        for tags, rows in self.store.query_rows(measurement, fields, start_ns, end_ns, chunk):
            frame = pd.DataFrame.from_records(rows, columns=["_series", "time_ns", *fields])
            frame = frame.dropna(subset=list(fields), how="all")
            if frame.empty:
                continue
            series = frame.pop("_series")
            for name in tag_names:
                mapping = {sid: t.get(name, "") for sid, t in tags.items()}
                frame.insert(len(frame.columns) - len(fields), name, series.map(mapping))
            yield _coerce(frame, m, fields)


@dataclass
class InfluxQuery:
    url: str
    database: str
    headers: dict[str, str]
    auth: tuple[str, str] | None = None
    retention_policy: str | None = None
    verify_tls: bool = True
    timeout: float = 60.0


def _ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class InfluxReader:
    """InfluxDB through InfluxQL `/query` in time windows; tags from GROUP BY."""

    def __init__(self, query: InfluxQuery, window_ns: int = INFLUX_WINDOW_NS) -> None:
        import httpx

        self.q = query
        self.window_ns = window_ns
        self.description = f"InfluxDB {query.url} ({query.database})"
        self._known: set[str] | None = None
        self._client = httpx.Client(base_url=query.url, headers=query.headers, auth=query.auth,
                                    verify=query.verify_tls, timeout=query.timeout)

    def close(self) -> None:
        self._client.close()

    def _run(self, statement: str) -> list[dict]:
        import orjson

        params = {"q": statement, "db": self.q.database, "epoch": "ns"}
        if self.q.retention_policy:
            params["rp"] = self.q.retention_policy
        response = self._client.post("/query", data=params)
        if response.status_code in (401, 403):
            raise ExportError(f"{self.description}: not allowed to query (HTTP {response.status_code}); "
                              "check the credentials and, on 2.x/3.x, the DBRP mapping")
        if response.status_code >= 400:
            raise ExportError(f"{self.description}: query failed with HTTP {response.status_code}: "
                              f"{response.text[:200]}")
        result = orjson.loads(response.content)["results"][0]
        if "error" in result:
            raise ExportError(f"{self.description}: {result['error']}")
        return result.get("series", [])

    def frames(self, measurement: str, fields: Sequence[str], start_ns: int, end_ns: int,
               chunk: int = 0) -> Iterator[pd.DataFrame]:
        m = _schema(measurement)
        tag_names = [t.name for t in m.tags]
        if measurement not in self._measurements():
            return
        select = ",".join(_ident(f) for f in fields)
        group = (" GROUP BY " + ",".join(_ident(t) for t in tag_names)) if tag_names else ""
        windows = []
        window = start_ns
        while window < end_ns:
            upper = min(window + self.window_ns, end_ns)
            windows.append(f"SELECT {select} FROM {_ident(measurement)} WHERE time >= {window} "
                           f"AND time < {upper}{group}")
            window = upper
        # The next window is fetched while this one is parsed: InfluxDB and we work at once.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(self._run, windows[0]) if windows else None
            for k in range(len(windows)):
                result = pending.result()
                pending = pool.submit(self._run, windows[k + 1]) if k + 1 < len(windows) else None
                for series in result:
                    values = series.get("values") or []
                    if not values:
                        continue
                    frame = pd.DataFrame.from_records(values, columns=["time_ns", *fields])
                    tags = series.get("tags") or {}
                    for j, name in enumerate(tag_names):
                        frame.insert(1 + j, name, tags.get(name, "") or "")
                    yield _coerce(frame, m, fields)

    def _measurements(self) -> set[str]:
        if self._known is None:
            self._known = {row[0] for series in self._run("SHOW MEASUREMENTS")
                           for row in series.get("values") or []}
        return self._known


def make_reader(config: Any | None, store_path: str | None) -> Any:
    """InfluxDB when configured, else the store at `store_path` or the configured one."""
    if config is not None and config.influxdb is not None:
        cfg = config.influxdb
        if cfg.api == "v1":
            auth = (cfg.username, cfg.password.reveal()) if cfg.username and cfg.password else None
            return InfluxReader(InfluxQuery(cfg.url, cfg.database, {}, auth, cfg.retention_policy,
                                            cfg.verify_tls))
        return InfluxReader(InfluxQuery(cfg.url, cfg.bucket, {"Authorization": f"Token {cfg.token.reveal()}"},
                                        None, None, cfg.verify_tls))
    from collector.store import Store

    path = store_path or (str(config.store.path) if config is not None else "ev-collector.db")
    if not Path(path).exists():
        raise ExportError(f"no local store at {path} (pass --config or --store)")
    return StoreReader(Store(path, keep_lines=False))


# -- time columns ---------------------------------------------------------------------------

def epoch_text(time_ns: pd.Series) -> pd.Series:
    """Unix seconds as exact decimal text: "1700000000" or "1700000000.25"."""
    ns = time_ns.astype("int64")
    whole = (ns // NS).astype(str)
    frac = (ns % NS)
    has = frac != 0
    out = whole.copy()
    if has.any():
        out[has] = whole[has] + "." + frac[has].map(lambda v: f"{v:09d}".rstrip("0"))
    return out


def local_text(time_ns: pd.Series, tz: ZoneInfo) -> pd.Series:
    """ISO 8601 local time with its UTC offset, so a repeated hour at DST is never ambiguous."""
    local = pd.to_datetime(time_ns.astype("int64"), utc=True).dt.tz_convert(tz)
    text = local.dt.strftime("%Y-%m-%dT%H:%M:%S%z")
    return text.str[:-2] + ":" + text.str[-2:]


def period_start(time_ns: pd.Series, tz: ZoneInfo, period: str) -> pd.Series:
    """Local midnight (day) or local first-of-month midnight, as UTC ns."""
    local = pd.to_datetime(time_ns.astype("int64"), utc=True).dt.tz_convert(tz)
    naive = local.dt.tz_localize(None)
    start = naive.dt.normalize() if period == "day" else naive.dt.to_period("M").dt.start_time
    aware = start.dt.tz_localize(tz, ambiguous=True, nonexistent="shift_forward")
    return aware.dt.tz_convert("UTC").dt.as_unit("ns").astype("int64")


# -- rollups ----------------------------------------------------------------------------------

ENERGY_COLUMNS = ("energy_wh", "solar_energy_wh", "grid_energy_wh", "battery_energy_wh")
SESSION_SUMS = ("vehicle_energy_wh", "cost", "grid_only_cost", "savings")


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
            charger = spec.identity(dict(zip(tag_names, values_key)))
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


# -- the command -----------------------------------------------------------------------------

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


def _progress(total_ns: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=max(1, total_ns // DAY_NS), unit="day", file=sys.stderr, leave=False)


def _track(frames: Iterator[pd.DataFrame], bar, state: dict) -> Iterator[pd.DataFrame]:
    for frame in frames:
        if bar is not None and not frame.empty:
            t = int(frame["time_ns"].max())
            days = (t - state["start"]) // DAY_NS
            if days > state["done"]:
                bar.update(days - state["done"])
                state["done"] = days
        yield frame


def raw_frame(reader: Any, req: Request) -> Iterator[pd.DataFrame]:
    measurements = [m for m in all_measurements() if m.name != "charging_session"]
    if req.measurement:
        chosen = [_schema(req.measurement)]
    elif req.source:
        chosen = [m for m in measurements if m.source == req.source]
        if len(chosen) != 1:
            raise ExportError(f"raw export needs --measurement; source {req.source!r} has: "
                              + ", ".join(m.name for m in chosen))
    else:
        raise ExportError("raw export needs --measurement (or a --source with one measurement)")
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
                yield _with_times(frame, req.tz)
            window = upper
    finally:
        if bar is not None:
            bar.close()


def _with_times(frame: pd.DataFrame, tz: ZoneInfo) -> pd.DataFrame:
    ns = frame.pop("time_ns")
    frame.insert(0, "epoch_s", epoch_text(ns).to_numpy())
    frame.insert(1, "local_time", local_text(ns, tz).to_numpy())
    return frame


SESSION_COLUMNS_FIRST = ("epoch_s", "local_time", "end_local_time", "charger", "vehicle")


def sessions_frame(reader: Any, req: Request) -> pd.DataFrame:
    m = _schema("charging_session")
    fields = [fl.name for fl in m.fields]
    frames = list(reader.frames(m.name, fields, req.start_ns, req.end_ns))
    if not frames:
        return pd.DataFrame(columns=[*SESSION_COLUMNS_FIRST, *[f for f in fields if f != "vehicle"]])
    frame = pd.concat(frames, ignore_index=True).sort_values(["time_ns", "charger"], kind="stable")
    if req.source:
        frame = frame[frame["sources"].fillna("").str.split("+").map(lambda s: req.source in s)]
    end = frame["end_unix_s"].astype("float64").mul(NS).fillna(0).astype("int64")
    frame.insert(0, "end_local_time", local_text(end, req.tz).where(frame["end_unix_s"].notna(), None).to_numpy())
    frame = _with_times(frame, req.tz)
    order = [*SESSION_COLUMNS_FIRST, *[f for f in fields if f != "vehicle"]]
    return frame[order].reset_index(drop=True)


def rollup_frame(reader: Any, req: Request) -> pd.DataFrame:
    period = "day" if req.kind == "daily" else "month"
    names = req.charger_names or {}
    rollup = CounterRollup(req.tz, period, req.start_ns)
    specs = [s for s in counter_specs() if req.source is None or _schema(s.measurement).source == req.source]
    bar = _progress((req.end_ns - req.start_ns) * max(1, len(specs)), req.progress)
    state = {"start": req.start_ns, "done": 0}
    try:
        for spec in specs:
            m = _schema(spec.measurement)
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
               "epoch_s": (period_ns // NS).to_numpy(), "local_time": local_text(period_ns, req.tz).to_numpy()}
    for k, (name, values) in enumerate(columns.items()):
        out.insert(k, name, values)
    for col in ENERGY_COLUMNS + ("vehicle_energy_wh",):
        out[col] = out[col].astype("float64").round(3)
    for col in ("cost", "grid_only_cost", "savings"):
        out[col] = out[col].astype("float64").round(4)
    return out[[*columns, "charger", *ENERGY_COLUMNS, "sessions", *SESSION_SUMS]]


def write_csv(req: Request, reader: Any, out: TextIO) -> int:
    """Write the CSV; returns the number of data rows."""
    if req.kind == "raw":
        rows, header = 0, True
        for frame in raw_frame(reader, req):
            frame.to_csv(out, index=False, header=header, lineterminator="\n")
            header, rows = False, rows + len(frame)
        if header:  # no data: still a header, so a script sees the columns
            m = _schema(req.measurement) if req.measurement else None
            cols = ["epoch_s", "local_time", *([t.name for t in m.tags] + [fl.name for fl in m.fields] if m else [])]
            out.write(",".join(cols) + "\n")
        return rows
    frame = sessions_frame(reader, req) if req.kind == "sessions" else rollup_frame(reader, req)
    frame.to_csv(out, index=False, lineterminator="\n")
    return len(frame)


def parse_when(text: str, tz: ZoneInfo) -> int:
    """A date or date-time; without an offset it is local time in `tz`."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ExportError(f"not a date or time: {text!r} (use 2026-03-01 or 2026-03-01T06:00)") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return int(value.timestamp()) * NS + value.microsecond * 1000


def request_from_args(args: argparse.Namespace, config: Any | None) -> Request:
    try:
        tz = ZoneInfo(args.tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ExportError(f"unknown time zone {args.tz!r} (use an IANA name like Europe/Berlin)") from None
    end = parse_when(args.to, tz) if args.to else int(datetime.now(timezone.utc).timestamp()) * NS
    start = parse_when(args.from_, tz) if args.from_ else end - 30 * DAY_NS
    if start >= end:
        raise ExportError("--from must be before --to")
    names: dict[str, str] = {}
    sessions = getattr(config, "sessions", None) if config is not None else None
    if sessions is not None:
        for name, charger in sessions.chargers.items():
            for identity in charger.identities():
                names[identity] = name
    return Request(args.kind, start, end, tz, args.source, args.measurement, names,
                   progress=sys.stderr.isatty() and not args.quiet)


def _handle(args: argparse.Namespace) -> int:
    from collector.config import load_config

    config = load_config(args.config) if args.config else None
    try:
        req = request_from_args(args, config)
        reader = make_reader(config, args.store)
        try:
            if args.out and args.out != "-":
                with open(args.out, "w", newline="", encoding="utf-8") as handle:
                    rows = write_csv(req, reader, handle)
                print(f"{rows} rows written to {args.out}", file=sys.stderr)
            else:
                write_csv(req, reader, sys.stdout)
        finally:
            close = getattr(reader, "close", None) or getattr(reader.store, "close", None)
            close()
    except ExportError as exc:
        print(f"ev-collector export: {exc}", file=sys.stderr)
        return 2
    return 0


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML configuration (InfluxDB, store path, charger names)")
    parser.add_argument("--store", help="local store file, when no --config is given")
    parser.add_argument("--from", dest="from_", help="start, local date or time (default: 30 days ago)")
    parser.add_argument("--to", help="end, exclusive (default: now)")
    parser.add_argument("--tz", default="UTC", help="IANA time zone for local times and days (default UTC)")
    parser.add_argument("--source", choices=sorted(load_all_sources()), help="only this source")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("export", help="write CSV: sessions, daily, monthly or raw points")
    parser.add_argument("kind", choices=["sessions", "daily", "monthly", "raw"])
    add_common(parser)
    parser.add_argument("--measurement", help="raw: the measurement to export")
    parser.add_argument("--out", help="CSV file (default: standard output)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_handle)
