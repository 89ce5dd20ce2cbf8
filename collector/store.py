"""The local store: SQLite in WAL mode, the one place a collected point must reach first.

It is at once the outbox of points not yet shipped to InfluxDB, the embedded database when no
InfluxDB is configured, the home of incremental-stream cursors, and the dead-letter table for
lines InfluxDB refused. Points and the cursors they advance commit in one transaction, so a
crash can never leave a cursor ahead of its data.

Durability: `synchronous=FULL` by default, so a committed point survives power loss, not only a
killed process. Fleets that poll hundreds of devices share commits through `PointWriter`
(group commit), which keeps FULL affordable. `normal` is offered for SD cards that wear; it
survives a crash of the collector but may lose the last commits on power loss.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson

from collector.errors import CollectorError
from collector.points import Point, field_set, series_prefix

log = logging.getLogger(__name__)

PENDING, SHIPPED, DEAD = 0, 1, 2
PRUNED_BEFORE = "store:pruned_before"   # cursor: the newest cutoff that pruning removed rows at

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    measurement TEXT NOT NULL,
    tags TEXT NOT NULL,            -- canonical JSON object, sorted keys
    prefix TEXT NOT NULL,          -- line-protocol "measurement,tag=value"
    UNIQUE (measurement, tags)
);
CREATE TABLE IF NOT EXISTS points (
    id INTEGER PRIMARY KEY,        -- ship order
    series_id INTEGER NOT NULL REFERENCES series(id),
    time_ns INTEGER NOT NULL,
    fields TEXT NOT NULL,          -- JSON object; JSON keeps int, float, bool and string apart
    line TEXT,                     -- line-protocol field set, kept only while the point waits
                                   -- to ship; NULL when shipped, merged, or with no InfluxDB
    state INTEGER NOT NULL DEFAULT 0,   -- 0 pending, 1 shipped, 2 dead letter
    rev INTEGER NOT NULL DEFAULT 0,     -- bumped when fields change, so a batch in flight
                                        -- cannot mark a newer version as shipped
    UNIQUE (series_id, time_ns)
);
CREATE INDEX IF NOT EXISTS points_pending ON points(id) WHERE state = 0;
CREATE TABLE IF NOT EXISTS cursors (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    line TEXT NOT NULL,
    reason TEXT NOT NULL,
    at_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""

_UPSERT = """
INSERT INTO points (series_id, time_ns, fields, line) VALUES (?, ?, ?, ?)
ON CONFLICT (series_id, time_ns) DO UPDATE
    SET fields = json_patch(points.fields, excluded.fields), line = NULL, state = 0,
        rev = points.rev + 1
    WHERE json_patch(points.fields, excluded.fields) != points.fields
"""


class StoreError(CollectorError, RuntimeError):
    """The store cannot be written (disk full, permissions, corruption); nothing was committed."""


@dataclass(frozen=True, slots=True)
class BatchItem:
    id: int
    rev: int
    line: str


@dataclass(frozen=True)
class StoreStats:
    pending: int
    shipped: int
    dead_letters: int
    size_bytes: int
    discarded: int


@dataclass(frozen=True, slots=True)
class StoredPoint:
    measurement: str
    tags: dict[str, str]
    time_ns: int
    fields: dict[str, object]


def _canonical_tags(tags: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(tags.items())), separators=(",", ":"), ensure_ascii=False)


class Store:
    def __init__(self, path: str | Path, synchronous: str = "full", keep_lines: bool = True) -> None:
        """`keep_lines`: serialize line protocol at append time, for a forwarder to ship.

        Without InfluxDB nothing ships, so the embedded store skips that work and space; if
        InfluxDB is configured later, the backlog's lines are built from the JSON instead.
        """
        self.path = Path(path)
        self.keep_lines = keep_lines
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the local store {self.path}: {exc}") from exc
        self._series: dict[tuple[str, str], tuple[int, str]] = {}
        for sid, measurement, tags, prefix in self._db.execute(
            "SELECT id, measurement, tags, prefix FROM series"
        ):
            self._series[(measurement, tags)] = (sid, prefix)
        self._series_fast: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
        self.nonfinite_dropped = 0

    # -- writing -----------------------------------------------------------------------------

    def append(self, points: Iterable[Point], cursors: Mapping[str, str] | None = None) -> int:
        """Commit points and cursor updates in one transaction; returns rows new or changed.

        Re-appending an identical point changes nothing; a point with the same identity and new
        field values is merged (as InfluxDB merges) and queued to ship again.
        """
        return self.append_groups([(points, cursors)])[0]

    def append_groups(
        self, groups: Sequence[tuple[Iterable[Point], Mapping[str, str] | None]]
    ) -> list[int]:
        """Several `append`s in one transaction (group commit); all or nothing."""
        with self._transaction("write failed, nothing committed",
                               on_rollback=self._forget_uncommitted_series):
            return [self._append_one(points, cursors) for points, cursors in groups]

    @contextmanager
    def _transaction(self, failure: str,
                     on_rollback: Callable[[], None] | None = None) -> Iterator[None]:
        """One write transaction under the lock: committed whole, or rolled back and reported
        as a StoreError that says what failed (`failure`)."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield
                    self._db.execute("COMMIT")
                except BaseException:
                    self._rollback()
                    if on_rollback is not None:
                        on_rollback()
                    raise
            except sqlite3.Error as exc:
                raise StoreError(f"local store {self.path}: {failure}: {exc}") from exc

    def _rollback(self) -> None:
        """Roll back if a transaction is still open.

        SQLite ends the transaction itself on some errors (SQLITE_FULL, for one); a ROLLBACK
        then fails with "no transaction is active", which used to hide the real error and
        skip the cleanup after it.
        """
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def _append_one(self, points: Iterable[Point], cursors: Mapping[str, str] | None) -> int:
        rows = [r for r in (self._row(p) for p in points) if r is not None]
        changed = self._db.executemany(_UPSERT, rows).rowcount if rows else 0
        if cursors:
            now = time.time_ns()
            self._db.executemany(
                "INSERT INTO cursors (key, value, updated_ns) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                "updated_ns = excluded.updated_ns",
                [(k, v, now) for k, v in cursors.items()],
            )
        return changed

    def _forget_uncommitted_series(self) -> None:
        """A rolled-back transaction may have created series rows the cache still remembers."""
        self._series = {(m, t): (sid, prefix) for sid, m, t, prefix in self._db.execute(
            "SELECT id, measurement, tags, prefix FROM series")}
        self._series_fast = {}

    def _row(self, point: Point) -> tuple[int, int, str, str | None] | None:
        fields = point.fields
        for value in fields.values():
            if type(value) is float and not math.isfinite(value):
                # orjson would write NaN as null; drop it here, count it, keep the rest
                finite = {k: v for k, v in fields.items()
                          if not (type(v) is float and not math.isfinite(v))}
                self.nonfinite_dropped += len(fields) - len(finite)
                if not finite:
                    return None
                fields = finite
                break
        try:
            encoded = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS).decode()
        except TypeError as exc:
            raise TypeError(f"{point.measurement}: field values must be float, int, bool or str: "
                            f"{exc}") from None
        line = field_set(fields)[0] if self.keep_lines else None
        return (self._series_id(point.measurement, point.tags), point.time_ns, encoded, line)

    def _series_id(self, measurement: str, tags: Mapping[str, str]) -> int:
        fast_key = (measurement, tuple(sorted(tags.items())))
        hit = self._series_fast.get(fast_key)
        if hit is not None:
            return hit
        tags_key = _canonical_tags(tags)
        known = self._series.get((measurement, tags_key))
        if known is not None:
            self._series_fast[fast_key] = known[0]
            return known[0]
        prefix = series_prefix(measurement, tags)
        cur = self._db.execute(
            "INSERT INTO series (measurement, tags, prefix) VALUES (?, ?, ?) "
            "ON CONFLICT (measurement, tags) DO UPDATE SET prefix = excluded.prefix RETURNING id",
            (measurement, tags_key, prefix),
        )
        sid = cur.fetchone()[0]
        self._series[(measurement, tags_key)] = (sid, prefix)
        self._series_fast[fast_key] = sid
        return sid

    # -- cursors -----------------------------------------------------------------------------

    def cursor(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM cursors WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def cursors(self, prefix: str = "") -> dict[str, str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key, value FROM cursors WHERE key >= ? AND key < ? ORDER BY key",
                (prefix, prefix + "\U0010ffff"),
            ).fetchall()
        return dict(rows)

    # -- shipping ----------------------------------------------------------------------------

    def next_batch(self, limit: int) -> list[BatchItem]:
        """The oldest pending points as line protocol, in the order they were first stored."""
        with self._lock:
            rows = self._db.execute(
                "SELECT p.id, p.rev, s.prefix || ' ' || p.line || ' ' || p.time_ns, "
                "CASE WHEN p.line IS NULL THEN s.prefix END, "
                "CASE WHEN p.line IS NULL THEN p.fields END, p.time_ns "
                "FROM points p JOIN series s ON s.id = p.series_id "
                "WHERE p.state = 0 ORDER BY p.id LIMIT ?", (limit,)).fetchall()
        batch = []
        for pid, rev, line, prefix, fields, time_ns in rows:
            if line is None:  # merged, or stored without InfluxDB: build it from the JSON
                line = f"{prefix} {field_set(orjson.loads(fields))[0]} {time_ns}"
            batch.append(BatchItem(pid, rev, line))
        return batch

    def mark_shipped(self, items: Sequence[BatchItem]) -> None:
        with self._transaction(f"cannot mark {len(items)} points shipped (they will be "
                               "shipped again)"):
            self._db.executemany(
                "UPDATE points SET state = 1, line = NULL WHERE id = ? AND rev = ?",
                [(it.id, it.rev) for it in items])

    def dead_letter(self, item: BatchItem, reason: str) -> None:
        """Keep a line InfluxDB refused, with its reason, and stop trying to ship it."""
        with self._transaction("cannot keep a dead letter"):
            self._db.execute("INSERT INTO dead_letters (line, reason, at_ns) VALUES (?, ?, ?)",
                             (item.line, reason, time.time_ns()))
            self._db.execute("UPDATE points SET state = ?, line = NULL WHERE id = ? AND rev = ?",
                             (DEAD, item.id, item.rev))

    def dead_letters(self) -> list[tuple[str, str]]:
        with self._lock:
            return self._db.execute("SELECT line, reason FROM dead_letters ORDER BY id").fetchall()

    # -- housekeeping ------------------------------------------------------------------------

    def prune_shipped(self, older_than_ns: int, keep: Iterable[str] = ()) -> int:
        """Drop shipped points whose time is older than the retention; InfluxDB has them.

        Measurements in `keep` stay whatever their age: derived data that later runs read
        back (the daily rollups a month is summed from).
        """
        kept = sorted(set(keep))
        marks = ",".join("?" * len(kept))
        spare = (f" AND series_id NOT IN (SELECT id FROM series WHERE measurement IN ({marks}))"
                 if kept else "")
        with self._transaction("cannot prune shipped points"):
            pruned = self._db.execute(
                f"DELETE FROM points WHERE state != 0 AND time_ns < ?{spare}", (older_than_ns, *kept)
            ).rowcount
            if pruned:
                self._db.execute(
                    "INSERT INTO cursors (key, value, updated_ns) VALUES (?, ?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = max(CAST(value AS INTEGER), "
                    "CAST(excluded.value AS INTEGER)), updated_ns = excluded.updated_ns",
                    (PRUNED_BEFORE, str(older_than_ns), time.time_ns()))
        return pruned

    def pruned_before(self) -> int | None:
        """Before this time the store may have lost shipped samples to pruning (None: never
        pruned). Jobs that recompute from the store leave older periods alone."""
        value = self.cursor(PRUNED_BEFORE)
        return int(value) if value is not None else None

    def used_bytes(self) -> int:
        with self._lock:
            page_size = self._db.execute("PRAGMA page_size").fetchone()[0]
            pages = self._db.execute("PRAGMA page_count").fetchone()[0]
            free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        return (pages - free) * page_size

    def enforce_size(self, max_bytes: int, chunk: int = 10_000) -> int:
        """Keep the store under `max_bytes`; returns how many pending points were discarded.

        Policy: shipped points go first, oldest first; only then the oldest pending points,
        which are lost for good, so they are counted in the store and logged as a warning.
        """
        discarded = 0
        target = int(max_bytes * 0.9)
        while self.used_bytes() > max_bytes or (discarded and self.used_bytes() > target):
            with self._lock:
                removed = self._db.execute(
                    "DELETE FROM points WHERE id IN (SELECT id FROM points WHERE state != 0 "
                    "ORDER BY id LIMIT ?)", (chunk,)).rowcount
                if removed:
                    continue
                removed = self._db.execute(
                    "DELETE FROM points WHERE id IN (SELECT id FROM points WHERE state = 0 "
                    "ORDER BY id LIMIT ?)", (chunk,)).rowcount
                if not removed:
                    break
                discarded += removed
                self._bump("discarded_by_size", removed)
        if discarded:
            log.warning("local store over its size bound of %.1f MB: discarded the %d oldest "
                        "unshipped points (counted in collector_health.store_discarded)",
                        max_bytes / 1e6, discarded)
        return discarded

    def _bump(self, name: str, amount: int) -> None:
        self._db.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value", (name, amount))

    def stats(self) -> StoreStats:
        with self._lock:
            counts = dict(self._db.execute("SELECT state, count(*) FROM points GROUP BY state"))
            dead = self._db.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
            discarded = self._db.execute(
                "SELECT value FROM counters WHERE name = 'discarded_by_size'").fetchone()
        return StoreStats(pending=counts.get(PENDING, 0), shipped=counts.get(SHIPPED, 0),
                          dead_letters=dead, size_bytes=self.used_bytes(),
                          discarded=discarded[0] if discarded else 0)

    def pending_count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM points WHERE state = 0").fetchone()[0]

    # -- reading (the embedded database) ----------------------------------------------------

    def measurements(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute(
                "SELECT DISTINCT measurement FROM series ORDER BY measurement")]

    def counts(self) -> dict[str, int]:
        """Points per measurement (dead letters left out), for summaries and tests."""
        with self._lock:
            return dict(self._db.execute(
                "SELECT s.measurement, count(*) FROM points p JOIN series s ON s.id = p.series_id "
                "WHERE p.state != 2 GROUP BY s.measurement ORDER BY s.measurement").fetchall())

    def query(self, measurement: str, start_ns: int | None = None, end_ns: int | None = None,
              tags: Mapping[str, str] | None = None, chunk: int = 50_000) -> Iterator[list[StoredPoint]]:
        """Points of one measurement in time order, in chunks, for export and reports."""
        with self._lock:
            series = self._db.execute(
                "SELECT id, tags FROM series WHERE measurement = ?", (measurement,)).fetchall()
        wanted = {}
        for sid, tags_json in series:
            tag_map = json.loads(tags_json)
            if tags and any(tag_map.get(k) != v for k, v in tags.items()):
                continue
            wanted[sid] = tag_map
        if not wanted:
            return
        marks = ",".join("?" * len(wanted))
        sql = (f"SELECT series_id, time_ns, fields FROM points WHERE series_id IN ({marks}) "
               "AND time_ns >= ? AND time_ns < ? AND state != 2 ORDER BY time_ns, series_id")
        params = [*wanted, start_ns if start_ns is not None else -(2**63),
                  end_ns if end_ns is not None else 2**63 - 1]
        with self._lock:
            cur = self._db.cursor()
            cur.execute(sql, params)
            rows = cur.fetchmany(chunk)
        while rows:
            yield [StoredPoint(measurement, wanted[sid], t, orjson.loads(fl)) for sid, t, fl in rows]
            with self._lock:
                rows = cur.fetchmany(chunk)

    def changed_since(self, mark: int, measurements: Iterable[str]) -> tuple[int | None, int]:
        """(earliest point time among the rows of `measurements` added after row id `mark`,
        the newest row id).

        Row ids grow with every new row, so a derived-data job finds what arrived since its
        last run, late data included, by a range scan over the new rows only. A merge into an
        existing row keeps its id and is not seen. Returns (None, newest id) when none of the
        new rows is of `measurements`.
        """
        names = sorted(set(measurements))
        marks = ",".join("?" * len(names))
        with self._lock:
            newest = self._db.execute("SELECT max(id) FROM points").fetchone()[0]
            if newest is None or newest <= mark or not names:
                return None, max(mark, newest or 0)
            first = self._db.execute(
                f"SELECT min(time_ns) FROM points WHERE id > ? AND id <= ? AND state != 2 AND "
                f"series_id IN (SELECT id FROM series WHERE measurement IN ({marks}))",
                (mark, newest, *names)).fetchone()[0]
        return first, newest

    def first_time(self, measurement: str) -> int | None:
        """The earliest point time of a measurement (an index scan, no sort), or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT min(p.time_ns) FROM points p JOIN series s ON s.id = p.series_id "
                "WHERE s.measurement = ? AND p.state != 2", (measurement,)).fetchone()
        return row[0] if row else None

    def query_rows(self, measurement: str, fields: Sequence[str], start_ns: int | None = None,
                   end_ns: int | None = None, chunk: int = 100_000
                   ) -> Iterator[tuple[dict[int, dict[str, str]], list[tuple]]]:
        """Selected fields of one measurement as rows (series_id, time_ns, *values), per series
        in time order, in chunks, with the series' tags. SQLite extracts the fields, so a year
        of 10 s data exports without decoding every point's JSON in Python. JSON booleans come
        back as 0/1: callers coerce by the declared field type.
        """
        with self._lock:
            series = self._db.execute(
                "SELECT id, tags FROM series WHERE measurement = ?", (measurement,)).fetchall()
        if not series:
            return
        tags = {sid: json.loads(t) for sid, t in series}
        columns = ", json_extract(fields, ?)" * len(fields)
        marks = ",".join("?" * len(tags))
        sql = (f"SELECT series_id, time_ns{columns} FROM points WHERE series_id IN ({marks}) "
               "AND time_ns >= ? AND time_ns < ? AND state != 2 ORDER BY series_id, time_ns")
        params = [*('$."' + name.replace('"', '\\"') + '"' for name in fields), *tags,
                  start_ns if start_ns is not None else -(2**63),
                  end_ns if end_ns is not None else 2**63 - 1]
        with self._lock:
            cur = self._db.cursor()
            cur.execute(sql, params)
            rows = cur.fetchmany(chunk)
        while rows:
            yield tags, rows
            with self._lock:
                rows = cur.fetchmany(chunk)

    def nearest_rows(self, measurement: str, fields: Sequence[str], time_ns: int, before: bool
                     ) -> tuple[dict[int, dict[str, str]], list[tuple]]:
        """Per series, the row nearest `time_ns` on one side that has any of `fields`: the last
        before it (`before`), else the first at or after it; however far away it is. Rows as
        in `query_rows`. Interpolating at a boundary needs the samples either side of it.
        """
        with self._lock:
            series = self._db.execute(
                "SELECT id, tags FROM series WHERE measurement = ?", (measurement,)).fetchall()
        if not series or not fields:
            return {}, []
        paths = ['$."' + name.replace('"', '\\"') + '"' for name in fields]
        columns = ", json_extract(fields, ?)" * len(fields)
        has = " OR ".join(["json_extract(fields, ?) IS NOT NULL"] * len(fields))
        sql = (f"SELECT series_id, time_ns{columns} FROM points WHERE series_id = ? AND time_ns "
               f"{'<' if before else '>='} ? AND state != 2 AND ({has}) "
               f"ORDER BY time_ns {'DESC' if before else 'ASC'} LIMIT 1")
        rows = []
        with self._lock:
            for sid, _ in series:
                row = self._db.execute(sql, (*paths, sid, time_ns, *paths)).fetchone()
                if row is not None:
                    rows.append(row)
        return {sid: json.loads(t) for sid, t in series}, rows

    def close(self) -> None:
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as exc:
                log.warning("local store %s: checkpoint at close failed: %s", self.path, exc)
            self._db.close()
