"""Readers: one measurement over a time range, as frames, from the local store or InfluxDB.

Both yield the same frames (a `time_ns` column, one column per tag, the fields coerced to
their declared types), so what is built on them does not depend on where the data lives.
InfluxDB is read with InfluxQL over `/query`, which 1.x answers natively and 2.x/3.x through
their v1 compatibility API with a DBRP mapping.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from collector.errors import CollectorError
from collector.measurement import FieldType, Measurement

# The one import that runs up: a reader asked for a measurement by name needs every
# declaration, and only the schema gathers them (sources, sessions, rollups, health).
from collector.schema import all_measurements

INFLUX_WINDOW_NS = 7 * 86400 * 10**9


class QueryError(CollectorError, ValueError):
    """A request the stored data cannot answer (unknown measurement, bad range, a refused
    query); the message says why."""


class FrameReader(Protocol):
    """Where stored points are read from."""

    description: str

    def frames(self, measurement: str, fields: Sequence[str], start_ns: int,
               end_ns: int) -> Iterator[pd.DataFrame]:
        """The points of `measurement` in [start_ns, end_ns) with any of `fields`, in frames."""

    def close(self) -> None: ...


def declared(name: str) -> Measurement:
    """The declaration of a measurement, or a QueryError listing the known ones."""
    for m in all_measurements():
        if m.name == name:
            return m
    raise QueryError(f"unknown measurement {name!r}; known: "
                     + ", ".join(m.name for m in all_measurements()))


def coerce(frame: pd.DataFrame, m: Measurement, fields: Sequence[str]) -> pd.DataFrame:
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
    """The embedded store (SQLite). `close` closes the store only if this reader opened it."""

    def __init__(self, store: Any, owned: bool = False) -> None:
        self.store = store
        self.owned = owned
        self.description = f"local store {store.path}"

    @classmethod
    def open(cls, path: str | Path) -> StoreReader:
        from collector.store import Store

        return cls(Store(path), owned=True)

    def close(self) -> None:
        if self.owned:
            self.store.close()

    def frames(self, measurement: str, fields: Sequence[str], start_ns: int, end_ns: int,
               chunk: int = 50_000) -> Iterator[pd.DataFrame]:
        m = declared(measurement)
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
            yield coerce(frame, m, fields)


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
            raise QueryError(f"{self.description}: not allowed to query (HTTP {response.status_code}); "
                             "check the credentials and, on 2.x/3.x, the DBRP mapping")
        if response.status_code >= 400:
            raise QueryError(f"{self.description}: query failed with HTTP {response.status_code}: "
                             f"{response.text[:200]}")
        result = orjson.loads(response.content)["results"][0]
        if "error" in result:
            raise QueryError(f"{self.description}: {result['error']}")
        return result.get("series", [])

    def frames(self, measurement: str, fields: Sequence[str], start_ns: int, end_ns: int,
               chunk: int = 0) -> Iterator[pd.DataFrame]:
        m = declared(measurement)
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
        if not windows:
            return
        # The next window is fetched while this one is parsed: InfluxDB and we work at once.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending: Future[list[dict]] = pool.submit(self._run, windows[0])
            for k in range(len(windows)):
                result = pending.result()
                if k + 1 < len(windows):
                    pending = pool.submit(self._run, windows[k + 1])
                for series in result:
                    values = series.get("values") or []
                    if not values:
                        continue
                    frame = pd.DataFrame.from_records(values, columns=["time_ns", *fields])
                    tags = series.get("tags") or {}
                    for j, name in enumerate(tag_names):
                        frame.insert(1 + j, name, tags.get(name, "") or "")
                    yield coerce(frame, m, fields)

    def _measurements(self) -> set[str]:
        if self._known is None:
            self._known = {row[0] for series in self._run("SHOW MEASUREMENTS")
                           for row in series.get("values") or []}
        return self._known



def make_reader(config: Any | None, store_path: str | None) -> StoreReader | InfluxReader:
    """InfluxDB when configured, else the store at `store_path` or the configured one."""
    if config is not None and config.influxdb is not None:
        cfg = config.influxdb
        if cfg.api == "v1":
            auth = (cfg.username, cfg.password.reveal()) if cfg.username and cfg.password else None
            return InfluxReader(InfluxQuery(cfg.url, cfg.database, {}, auth, cfg.retention_policy,
                                            cfg.verify_tls))
        return InfluxReader(InfluxQuery(cfg.url, cfg.bucket, {"Authorization": f"Token {cfg.token.reveal()}"},
                                        None, None, cfg.verify_tls))
    path = store_path or (str(config.store.path) if config is not None else "ev-collector.db")
    if not Path(path).exists():
        raise QueryError(f"no local store at {path} (pass --config or --store)")
    return StoreReader.open(path)
