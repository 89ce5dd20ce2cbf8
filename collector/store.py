"""The local store: SQLite in WAL mode, the one place a collected point must reach first.

It is at once the outbox of points not yet shipped to InfluxDB, the embedded database when no
InfluxDB is configured, the home of incremental-stream cursors, and the dead-letter table for
lines InfluxDB refused. Points and the cursors they advance commit in one transaction, so a
crash can never leave a cursor ahead of its data.

Layout (schema version 2): a row holds its series, time, layout and packed values (field names
and kinds are kept once per layout, see `collector/layout.py`), about 100 bytes for a 35-field
go-e status. Rows are numbered in ship order (`seq`); everything up to the counter
`shipped_through` has been shipped, so marking a batch shipped is one small update and the
backlog is a range of the table. A point stored again with other values takes a new `seq` and
ships again; line protocol is built at ship time from the row. Stores of version 1 (JSON fields
and line protocol in every row) are converted in place when opened.

Durability: `synchronous=FULL` by default, so a committed point survives power loss, not only a
killed process. Fleets that poll hundreds of devices share commits through `PointWriter`
(group commit), which keeps FULL affordable. `normal` is offered for SD cards that wear; it
survives a crash of the collector but may lose the last commits on power loss. The WAL is
checkpointed automatically and trimmed to `WAL_LIMIT` after each checkpoint.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, NamedTuple, overload

import orjson

from collector.errors import CollectorError
from collector.layout import STRING, Layout, kinds_of, pack, pack_many, unpack_many
from collector.points import FieldValue, Point, series_prefix

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
WAL_LIMIT = 4 * 1024 * 1024   # bytes the WAL file is trimmed to after a checkpoint
PRUNED_BEFORE = "store:pruned_before"   # cursor: the newest cutoff that pruning removed rows at

_LAYOUTS = """
CREATE TABLE IF NOT EXISTS layouts (
    id INTEGER PRIMARY KEY,
    names TEXT NOT NULL,           -- JSON array of field names, in the order of a row's values
    kinds TEXT NOT NULL,           -- a letter per field: f float, i integer, b boolean, s string
    UNIQUE (names, kinds)
);
"""

_POINTS = """
CREATE TABLE IF NOT EXISTS {name} (
    seq INTEGER PRIMARY KEY,       -- ship order; above counters.shipped_through: not shipped yet
    series_id INTEGER NOT NULL REFERENCES series(id),
    time_ns INTEGER NOT NULL,
    layout INTEGER NOT NULL REFERENCES layouts(id),
    vals NOT NULL,                 -- BLOB: packed values (collector/layout.py); TEXT: JSON array
    strs TEXT,                     -- the string values of a packed row, joined by newlines
    dead INTEGER NOT NULL DEFAULT 0    -- 1: InfluxDB refused it (its line is in dead_letters)
);
"""

# Time first: new points land at its end (a fleet's commit touches a few pages, not one per
# charger), and range reads come out in time order. Series first: the sample of one series
# nearest an instant (the rollups' midnight meters) is an index lookup however long ago it
# was, not a scan over every other series' rows in between.
_POINTS_INDEXES = (
    "CREATE UNIQUE INDEX IF NOT EXISTS points_time ON points(time_ns, series_id);",
    "CREATE INDEX IF NOT EXISTS points_series ON points(series_id, time_ns);",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    measurement TEXT NOT NULL,
    tags TEXT NOT NULL,            -- canonical JSON object, sorted keys
    prefix TEXT NOT NULL,          -- line-protocol "measurement,tag=value"
    UNIQUE (measurement, tags)
);
{layouts}{points}
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
CREATE TABLE IF NOT EXISTS left_out (
    series_id INTEGER PRIMARY KEY,  -- the series' newest sample left out as unchanged (write on
    time_ns INTEGER NOT NULL,       -- change): stored with the series' next change, or at a
    layout INTEGER NOT NULL,        -- stop; kept here so that a crash does not lose where the
    vals NOT NULL,                  -- value was last seen
    strs TEXT
);
""".replace("{layouts}", _LAYOUTS).replace(
    "{points}", _POINTS.format(name="points") + "\n".join(_POINTS_INDEXES))

# The tables and indexes `_SCHEMA` creates: a store that has them all is opened without writing.
_SCHEMA_NAMES = frozenset(re.findall(r"CREATE (?:UNIQUE )?(?:TABLE|INDEX) IF NOT EXISTS (\w+)",
                                     _SCHEMA))

# Identical values: nothing happens. Other values in the same layout: replaced (the same fields,
# so that is InfluxDB's merge) and queued again under a new seq. Another layout: merged in
# Python after the statement (`_merge_deferred`), which SQLite cannot do on packed rows.
_UPSERT = """
INSERT INTO points (seq, series_id, time_ns, layout, vals, strs) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (time_ns, series_id) DO UPDATE
    SET seq = excluded.seq, vals = excluded.vals, strs = excluded.strs, dead = 0
    WHERE points.layout = excluded.layout
          AND (points.vals != excluded.vals OR points.strs IS NOT excluded.strs)
       OR points.layout != excluded.layout AND store_defer_merge(excluded.seq)
"""

# Rows per statement of `_upsert` (fewer where SQLite allows fewer parameters: 999 before
# 3.32): one INSERT of many VALUES rows binds and steps in C what executemany does row by row
# in Python, 0.6-0.9 us a row less on a large commit.
_UPSERT_BLOCK = 500


def _upsert_many(rows: int) -> str:
    return _UPSERT.replace("(?, ?, ?, ?, ?, ?)", ",".join(["(?,?,?,?,?,?)"] * rows))


_SHIPPED = "shipped_through"

Row = tuple[int, int, int, "bytes | str", "str | None"]   # series, time, layout, vals, strs


class StoreError(CollectorError, RuntimeError):
    """The store cannot be written (disk full, permissions, corruption); nothing was committed."""


class BatchItem(NamedTuple):
    id: int          # the point's seq
    line: str


class Batch(Sequence[BatchItem]):
    """Pending points as line protocol, oldest first: their seqs and their lines side by side.

    A batch is built for every point shipped; two lists cost a fraction of a tuple object per
    point. Items (and slices, when a refused batch is bisected) are made when asked for.
    """

    __slots__ = ("ids", "lines")

    def __init__(self, ids: list[int], lines: list[str]) -> None:
        self.ids = ids
        self.lines = lines

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, index: int) -> BatchItem: ...
    @overload
    def __getitem__(self, index: slice) -> Batch: ...

    def __getitem__(self, index: int | slice) -> BatchItem | Batch:
        if isinstance(index, slice):
            return Batch(self.ids[index], self.lines[index])
        return BatchItem(self.ids[index], self.lines[index])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Batch):
            return self.ids == other.ids and self.lines == other.lines
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __add__(self, other: Sequence[BatchItem]) -> list[BatchItem]:
        return list(self) + list(other)

    def __repr__(self) -> str:
        return f"Batch({list(self)!r})"


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
    fields: dict[str, FieldValue]


@dataclass(frozen=True, slots=True)
class Written:
    """What one group of a commit did."""

    changed: int     # rows new or changed
    unchanged: int   # points not stored: equal to their series' last point within the heartbeat
    # samples left out earlier as unchanged, stored now because their series changed after them
    value_ends: int = 0


def _canonical_tags(tags: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(tags.items())), separators=(",", ":"), ensure_ascii=False)


class Store:
    def __init__(self, path: str | Path, synchronous: str = "full") -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._wrote = False            # committed a transaction: checkpoint at close
        try:
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
            self._db.create_function("store_defer_merge", 1, self._defer_merge)
            block = min(_UPSERT_BLOCK,
                        self._db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 6)
            self._upsert_block = (block, _upsert_many(block))
            self._open_schema()
            # Reads (the forwarder's batches, queries) on a connection of their own: in WAL
            # mode they see the last commit and never wait for a group commit's fsync.
            if str(path) == ":memory:":
                self._read, self._read_lock = self._db, self._lock
            else:
                self._read = sqlite3.connect(str(path), isolation_level=None,
                                             check_same_thread=False)
                self._read_lock = threading.RLock()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the local store {self.path}: {exc}") from exc
        self._load_caches()
        self._deferred: list[int] = []
        self._next_seq = 0
        # series id -> (time, layout, vals, strs) of its newest stored point, for heartbeats
        self._last: dict[int, tuple[int, int, bytes | str, str | None]] = {}
        self._last_loaded = False
        # series id -> the newest sample left out as unchanged since that point (a row), and
        # how to undo this transaction's changes to it
        self._left_out: dict[int, tuple] = {}
        self._left_out_undo: list[tuple[int, tuple | None]] = []
        self.nonfinite_dropped = 0
        self.unchanged_skipped = 0

    def _open_schema(self) -> None:
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(points)")}
        if "fields" in columns:
            from collector.store_migration import migrate_v1

            migrate_v1(self)
            self._wrote = True
            return
        present = {name for (name,) in self._db.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")}
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION and _SCHEMA_NAMES <= present:
            return    # a store as this version writes it: opened without writing (a report
                      # beside the running collector must not wait for its write lock)
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._wrote = True

    def _load_caches(self) -> None:
        self._series: dict[tuple[str, str], int] = {}
        self._series_fast: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
        self._prefix: dict[int, str] = {}
        for sid, measurement, tags, prefix in self._db.execute(
                "SELECT id, measurement, tags, prefix FROM series"):
            self._series[(measurement, tags)] = sid
            self._prefix[sid] = prefix
        self._layouts: dict[int, Layout] = {}
        self._layout_ids: dict[tuple[tuple[str, ...], str], int] = {}
        self._layout_fast: dict[tuple[tuple[str, ...], tuple[type, ...]], int] = {}
        self._string_layouts: set[int] = set()     # layouts with a string field
        # a Measurement's layout object (`Point.layout`) -> the id of the same layout here
        self._layout_of_point: dict[Layout, int] = {}
        for lid, names, kinds in self._db.execute("SELECT id, names, kinds FROM layouts"):
            layout = Layout(lid, json.loads(names), kinds)
            self._layouts[lid] = layout
            if layout.strings:
                self._string_layouts.add(lid)
            self._layout_ids[(layout.names, kinds)] = lid

    # -- writing -----------------------------------------------------------------------------

    def append(self, points: Iterable[Point], cursors: Mapping[str, str] | None = None,
               heartbeat: float | None = None) -> int:
        """Commit points and cursor updates in one transaction; returns rows new or changed.

        Re-appending an identical point changes nothing; a point with the same identity and new
        field values is merged (as InfluxDB merges) and queued to ship again. With `heartbeat`
        (seconds), a point whose fields equal its series' newest stored point less than that
        long before is not stored at all (write on change, for poll-time samples). When the
        series then changes, the last sample left out is stored with the change: the old value
        held until just before it, so a step (fill(previous), a duration, a session's end)
        ends where it really ended, not up to a heartbeat early. `store_left_out` stores the
        rest at a stop; until then they are kept in the `left_out` table, so a crash does not
        lose them.
        """
        return self.commit_groups([(points, cursors, heartbeat)])[0].changed

    def append_groups(
        self, groups: Sequence[tuple[Iterable[Point], Mapping[str, str] | None]]
    ) -> list[int]:
        """Several `append`s in one transaction (group commit); all or nothing."""
        return [written.changed for written in self.commit_groups(groups)]

    def commit_groups(self, groups: Sequence[tuple]) -> list[Written]:
        """`append_groups` for groups of (points, cursors[, heartbeat]), saying for each what
        was stored and what was left out as unchanged."""
        # Rows are encoded before the transaction, so readers and the next writer wait only
        # for SQLite; a point of a new series or layout is resolved inside it.
        encoded = [(self._encode_points(points), *rest) for points, *rest in groups]
        with self._transaction("write failed, nothing committed",
                               on_rollback=self._forget_uncommitted):
            self._left_out_undo = []
            self._next_seq = self._seq_floor() + 1
            return [self._append_one(*group) for group in encoded]

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
                    self._wrote = True
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

    def _seq_floor(self) -> int:
        """The highest seq ever used or shipped: new rows go above it, even after the newest
        rows were deleted (a reused seq at or below the shipped mark would never ship)."""
        top = self._db.execute("SELECT max(seq) FROM points").fetchone()[0] or 0
        return max(top, self._shipped_through())

    def _shipped_through(self, db: sqlite3.Connection | None = None) -> int:
        row = (db or self._db).execute("SELECT value FROM counters WHERE name = ?",
                                       (_SHIPPED,)).fetchone()
        return row[0] if row else 0

    def _encode_points(self, points: Iterable[Point]) -> list[Row | Point]:
        """Each point as a row, or the point itself when it needs a series or layout that is
        not known yet (created in the transaction). Points without a finite value are left out.
        The values of rows without strings are packed together (`pack_many`)."""
        out: list[Any] = []
        series, layouts, stringy = self._series_fast, self._layout_fast, self._string_layouts
        batch: list[tuple[FieldValue, ...]] = []
        where: list[int] = []
        by_layout = self._layout_of_point
        for point in points:
            fields = point.fields
            values = tuple(fields.values())
            lid = by_layout.get(point.layout)   # type: ignore[arg-type]
            if lid is None:
                lid = layouts.get((tuple(fields), tuple(map(type, values))))
                if lid is not None and point.layout is not None:
                    by_layout[point.layout] = lid
            sid = series.get((point.measurement, tuple(point.tags.items())))
            if lid is None or sid is None:
                out.append(point)
            elif lid in stringy:
                vals, strs = pack(values)
                out.append(point if type(vals) is str and "null" in vals
                           else (sid, point.time_ns, lid, vals, strs))
            else:
                where.append(len(out))
                out.append((sid, point.time_ns, lid, point))
                batch.append(values)
        for index, (vals, strs) in zip(where, pack_many(batch), strict=True):
            sid, time_ns, lid, point = out[index]
            out[index] = (point if type(vals) is str and "null" in vals   # orjson wrote NaN as null
                          else (sid, time_ns, lid, vals, strs))
        return out

    def _append_one(self, encoded: list[Row | Point], cursors: Mapping[str, str] | None,
                    heartbeat: float | None = None) -> Written:
        beat_ns = int(heartbeat * 1e9) if heartbeat and heartbeat > 0 else 0
        rows: list[tuple] = []
        unchanged = ends = 0
        seq = self._next_seq
        last, left_out, undo = self._last, self._left_out, self._left_out_undo
        touched: set[int] = set()     # series whose sample left out changed here
        for item in encoded:
            row = item if isinstance(item, tuple) else self._row(item)
            if row is None:
                continue
            if beat_ns:
                if not self._last_loaded:
                    self._load_last(row[1] - beat_ns)
                sid, time_ns = row[0], row[1]
                newest = last.get(sid)
                if (newest is not None and 0 <= time_ns - newest[0] < beat_ns
                        and newest[1:] == row[2:]):
                    undo.append((sid, left_out.get(sid)))
                    left_out[sid] = row
                    touched.add(sid)
                    unchanged += 1
                    continue
                if newest is None or time_ns >= newest[0]:
                    last[sid] = row[1:]
                    held = left_out.pop(sid, None)
                    if held is not None:
                        touched.add(sid)
                        undo.append((sid, held))
                        # The old value's last sample ends its step: at a change (not a
                        # heartbeat), or when the series' newest point is not known (left
                        # out before a crash, longer ago than a heartbeat).
                        if (held[1] < time_ns if newest is None else
                                newest[1:] != row[2:] and newest[0] < held[1] < time_ns):
                            rows.append((seq, *held))
                            seq += 1
                            ends += 1
            rows.append((seq, *row))
            seq += 1
        self._next_seq = seq
        changed = self._upsert(rows)
        if self._deferred:
            changed += self._merge_deferred(rows)
        if touched:
            self._keep_left_out(touched)
        if cursors:
            now = time.time_ns()
            self._db.executemany(
                "INSERT INTO cursors (key, value, updated_ns) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                "updated_ns = excluded.updated_ns",
                [(k, v, now) for k, v in cursors.items()],
            )
        self.unchanged_skipped += unchanged
        return Written(changed, unchanged, ends)

    def _keep_left_out(self, sids: Iterable[int]) -> None:
        """Make the `left_out` table say what `_left_out` says for these series, in the
        transaction that left their samples out (or stored them)."""
        keep, drop = [], []
        for sid in sids:
            row = self._left_out.get(sid)
            if row is None:
                drop.append((sid,))
            else:
                keep.append(row)
        if keep:
            self._db.executemany(
                "INSERT INTO left_out (series_id, time_ns, layout, vals, strs) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (series_id) DO UPDATE SET "
                "time_ns = excluded.time_ns, layout = excluded.layout, vals = excluded.vals, "
                "strs = excluded.strs", keep)
        if drop:
            self._db.executemany("DELETE FROM left_out WHERE series_id = ?", drop)

    def store_left_out(self) -> int:
        """Store the last sample left out as unchanged of every series (at a stop): a value's
        step then ends at the last time it was seen, not at the point before. Returns how many."""
        with self._lock:          # a commit in another thread must not leave out more meanwhile
            if not self._left_out:
                return 0
            held = sorted(self._left_out.values(), key=lambda row: row[1])
            with self._transaction("storing the last unchanged samples failed",
                                   on_rollback=lambda: setattr(self, "_deferred", [])):
                seq = self._seq_floor() + 1
                rows = [(seq + k, *row) for k, row in enumerate(held)]
                self._next_seq = seq + len(rows)
                self._upsert(rows)
                if self._deferred:
                    self._merge_deferred(rows)
                self._db.execute("DELETE FROM left_out")
            for row in held:
                newest = self._last.get(row[0])
                if newest is None or row[1] > newest[0]:
                    self._last[row[0]] = row[1:]
            self._left_out = {}
            return len(held)

    def _load_last(self, since_ns: int) -> None:
        """The newest stored point of every series since `since_ns`, once per process: the
        heartbeat goes on from what is stored, so a restart does not write every series again."""
        for sid, time_ns, layout, vals, strs in self._db.execute(
                "SELECT series_id, time_ns, layout, vals, strs FROM points "
                "WHERE time_ns >= ? AND dead = 0 ORDER BY time_ns", (since_ns,)):
            self._last[sid] = (time_ns, layout, vals, strs)
        # The samples left out before a crash: stored with their series' next change, or at
        # the next stop, as if the collector had not stopped. Only a writer that leaves
        # samples out loads them (a report or the forwarder opening the store does not).
        for row in self._db.execute("SELECT series_id, time_ns, layout, vals, strs FROM left_out"):
            self._left_out.setdefault(row[0], tuple(row))
        self._last_loaded = True

    def _upsert(self, rows: list[tuple]) -> int:
        """Insert or update rows (seq, series, time, layout, vals, strs) in order; returns how
        many changed. Whole blocks go as one statement each, the rest row by row."""
        block, statement = self._upsert_block
        whole = len(rows) - len(rows) % block
        changed = 0
        execute, flat = self._db.execute, chain.from_iterable
        for start in range(0, whole, block):
            changed += execute(statement, list(flat(rows[start:start + block]))).rowcount
        if whole < len(rows):
            changed += self._db.executemany(_UPSERT, rows[whole:]).rowcount
        return changed

    def _defer_merge(self, seq: int) -> int:
        """Called by SQLite for a stored point met again with another layout."""
        self._deferred.append(seq)
        return 0

    def _merge_deferred(self, rows: list[tuple]) -> int:
        """Merge points whose stored row has another layout (other fields): new values win,
        old fields stay. Returns how many rows changed."""
        by_seq = {row[0]: row for row in rows}
        changed = 0
        deferred, self._deferred = self._deferred, []
        for seq in deferred:
            _, sid, time_ns, lid, vals, strs = by_seq[seq]
            old = self._db.execute("SELECT layout, vals, strs FROM points "
                                   "WHERE time_ns = ? AND series_id = ?", (time_ns, sid)).fetchone()
            merged = self._layout(old[0]).fields(old[1], old[2])
            merged.update(self._layout(lid).fields(vals, strs))
            encoded = self._encode(merged)
            if encoded == tuple(old):
                continue
            self._db.execute("UPDATE points SET seq = ?, layout = ?, vals = ?, strs = ?, dead = 0 "
                             "WHERE time_ns = ? AND series_id = ?",
                             (self._next_seq, *encoded, time_ns, sid))
            self._next_seq += 1
            changed += 1
        return changed

    def _forget_uncommitted(self) -> None:
        """A rolled-back transaction may have created series and layouts the caches remember,
        and moved heartbeats on for points that were not stored."""
        self._load_caches()
        self._last = {}
        self._last_loaded = False
        self._deferred = []
        for sid, held in reversed(self._left_out_undo):
            if held is None:
                self._left_out.pop(sid, None)
            else:
                self._left_out[sid] = held
        self._left_out_undo = []

    def _row(self, point: Point, checked: bool = False) -> Row | None:
        fields = point.fields
        names = tuple(fields)
        values = tuple(fields.values())
        key = (names, tuple(map(type, values)))
        lid = self._layout_fast.get(key)
        if lid is None:
            try:
                lid = self._layout_id(names, kinds_of(values))
            except TypeError as exc:
                raise TypeError(f"{point.measurement}: {exc}") from None
            self._layout_fast[key] = lid
        vals, strs = pack(values)
        if type(vals) is str and not checked and "null" in vals:   # orjson wrote NaN as null
            return self._row_without_nonfinite(point)
        return (self._series_id(point.measurement, point.tags), point.time_ns, lid, vals, strs)

    def _row_without_nonfinite(self, point: Point) -> Row | None:
        """NaN and infinity cannot be stored or shipped: drop them, count them, keep the rest."""
        finite = {k: v for k, v in point.fields.items()
                  if not (type(v) is float and not math.isfinite(v))}
        self.nonfinite_dropped += len(point.fields) - len(finite)
        if not finite:
            return None
        return self._row(Point(point.measurement, point.tags, finite, point.time_ns), checked=True)

    def _encode(self, fields: Mapping[str, FieldValue]) -> tuple[int, bytes | str, str | None]:
        values = tuple(fields.values())
        return (self._layout_id(tuple(fields), kinds_of(values)), *pack(values))

    def _layout_id(self, names: tuple[str, ...], kinds: str) -> int:
        lid = self._layout_ids.get((names, kinds))
        if lid is None:
            lid = self._db.execute(
                "INSERT INTO layouts (names, kinds) VALUES (?, ?) ON CONFLICT (names, kinds) "
                "DO UPDATE SET kinds = excluded.kinds RETURNING id",
                (orjson.dumps(names).decode(), kinds)).fetchone()[0]
            self._layouts[lid] = Layout(lid, names, kinds)
            if STRING in kinds:
                self._string_layouts.add(lid)
            self._layout_ids[(names, kinds)] = lid
        return lid

    def _layout(self, lid: int) -> Layout:
        layout = self._layouts.get(lid)
        if layout is None:   # written by another process since we read the table
            with self._read_lock:
                names, kinds = self._read.execute("SELECT names, kinds FROM layouts WHERE id = ?",
                                                  (lid,)).fetchone()
            layout = self._layouts[lid] = Layout(lid, json.loads(names), kinds)
        return layout

    def _load_new_layouts(self) -> None:
        """Layouts another process (the collector, beside a report) added since we looked."""
        for lid, names, kinds in self._read.execute(
                "SELECT id, names, kinds FROM layouts WHERE id > ?", (max(self._layouts, default=0),)):
            self._layouts.setdefault(lid, Layout(lid, json.loads(names), kinds))

    def _series_id(self, measurement: str, tags: Mapping[str, str]) -> int:
        fast_key = (measurement, tuple(tags.items()))
        hit = self._series_fast.get(fast_key)
        if hit is not None:
            return hit
        tags_key = _canonical_tags(tags)
        sid = self._series.get((measurement, tags_key))
        if sid is None:
            prefix = series_prefix(measurement, tags)
            sid = self._db.execute(
                "INSERT INTO series (measurement, tags, prefix) VALUES (?, ?, ?) "
                "ON CONFLICT (measurement, tags) DO UPDATE SET prefix = excluded.prefix "
                "RETURNING id", (measurement, tags_key, prefix)).fetchone()[0]
            self._series[(measurement, tags_key)] = sid
            self._prefix[sid] = prefix
        self._series_fast[fast_key] = sid
        return sid

    def _series_prefix(self, sid: int) -> str:
        prefix = self._prefix.get(sid)
        if prefix is None:   # created by another process since we read the table
            with self._read_lock:
                prefix = self._prefix[sid] = self._read.execute(
                    "SELECT prefix FROM series WHERE id = ?", (sid,)).fetchone()[0]
        return prefix

    # -- cursors -----------------------------------------------------------------------------

    def cursor(self, key: str) -> str | None:
        with self._read_lock:
            row = self._read.execute("SELECT value FROM cursors WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def cursors(self, prefix: str = "") -> dict[str, str]:
        with self._read_lock:
            rows = self._read.execute(
                "SELECT key, value FROM cursors WHERE key >= ? AND key < ? ORDER BY key",
                (prefix, prefix + "\U0010ffff"),
            ).fetchall()
        return dict(rows)

    # -- shipping ----------------------------------------------------------------------------

    def next_batch(self, limit: int, after: int = 0) -> Batch:
        """The oldest pending points (after seq `after`, if given) as line protocol, in the
        order they were stored."""
        with self._read_lock:
            rows = self._read.execute(
                "SELECT seq, series_id, time_ns, layout, vals, strs FROM points "
                "WHERE seq > ? ORDER BY seq LIMIT ?",
                (max(after, self._shipped_through(self._read)), limit)).fetchall()
        layouts, prefixes = self._layouts, self._prefix
        ids: list[int] = []
        lines: list[str] = []
        add_id, add_line = ids.append, lines.append
        texts = iter(unpack_many([row[4] for row in rows if type(row[4]) is bytes]))
        for seq, sid, time_ns, lid, vals, strs in rows:   # the forwarder's hot loop
            layout = layouts.get(lid) or self._layout(lid)
            prefix = prefixes.get(sid) or self._series_prefix(sid)
            fields = (layout.text_field_set(next(texts), strs) if type(vals) is bytes
                      else layout.field_set(orjson.loads(vals)) or "")
            add_id(seq)
            add_line(f"{prefix} {fields} {time_ns}")
        return Batch(ids, lines)

    def mark_shipped(self, items: Sequence[BatchItem]) -> None:
        """InfluxDB has `items`, and (batches ship in order) everything stored before them."""
        if not items:
            return
        with self._transaction(f"cannot mark {len(items)} points shipped (they will be "
                               "shipped again)"):
            self._set_shipped(max(items.ids) if isinstance(items, Batch)
                              else max(item.id for item in items))

    def _set_shipped(self, seq: int) -> None:
        self._db.execute("INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) "
                         "DO UPDATE SET value = max(value, excluded.value)", (_SHIPPED, seq))

    def dead_letter(self, item: BatchItem, reason: str) -> None:
        """Keep a line InfluxDB refused, with its reason, and stop trying to ship it."""
        with self._transaction("cannot keep a dead letter"):
            self._db.execute("INSERT INTO dead_letters (line, reason, at_ns) VALUES (?, ?, ?)",
                             (item.line, reason, time.time_ns()))
            self._db.execute("UPDATE points SET dead = 1 WHERE seq = ?", (item.id,))
            self._set_shipped(item.id)

    def dead_letters(self) -> list[tuple[str, str]]:
        with self._read_lock:
            return self._read.execute("SELECT line, reason FROM dead_letters ORDER BY id").fetchall()

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
                f"DELETE FROM points WHERE time_ns < ? AND seq <= ?{spare}",
                (older_than_ns, self._shipped_through(), *kept)).rowcount
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
        with self._read_lock:
            page_size = self._read.execute("PRAGMA page_size").fetchone()[0]
            pages = self._read.execute("PRAGMA page_count").fetchone()[0]
            free = self._read.execute("PRAGMA freelist_count").fetchone()[0]
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
                shipped = self._shipped_through()
                removed = self._db.execute(
                    "DELETE FROM points WHERE seq IN (SELECT seq FROM points WHERE seq <= ? "
                    "ORDER BY seq LIMIT ?)", (shipped, chunk)).rowcount
                if removed:
                    self._wrote = True
                    continue
                removed = self._db.execute(
                    "DELETE FROM points WHERE seq IN (SELECT seq FROM points WHERE seq > ? "
                    "ORDER BY seq LIMIT ?)", (shipped, chunk)).rowcount
                if not removed:
                    break
                self._wrote = True
                discarded += removed
                self._bump("discarded_by_size", removed)
        if discarded:
            log.warning("local store over its size bound of %.1f MB: discarded the %d oldest "
                        "unshipped points (counted in collector_health.store_discarded)",
                        max_bytes / 1e6, discarded)
        return discarded

    def checkpoint(self) -> None:
        """Copy the WAL into the database and empty it, unless a reader still needs it."""
        with self._lock:
            busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            log.debug("local store %s: WAL checkpoint deferred, a reader is active", self.path)

    def _bump(self, name: str, amount: int) -> None:
        self._db.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value", (name, amount))

    def figures(self) -> StoreStats:
        """What health reports every minute, without counting rows: dead letters, size and
        discarded points (pending and shipped are 0 here; `stats` counts them)."""
        with self._read_lock:
            dead = self._read.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
            discarded = self._read.execute(
                "SELECT value FROM counters WHERE name = 'discarded_by_size'").fetchone()
        return StoreStats(pending=0, shipped=0, dead_letters=dead, size_bytes=self.used_bytes(),
                          discarded=discarded[0] if discarded else 0)

    def stats(self) -> StoreStats:
        """`figures` with the pending and shipped points counted (reads the whole table)."""
        figures = self.figures()
        with self._read_lock:
            shipped_through = self._shipped_through(self._read)
            pending = self._read.execute("SELECT count(*) FROM points WHERE seq > ?",
                                         (shipped_through,)).fetchone()[0]
            shipped = self._read.execute("SELECT count(*) FROM points WHERE seq <= ? AND dead = 0",
                                         (shipped_through,)).fetchone()[0]
        return StoreStats(pending=pending, shipped=shipped, dead_letters=figures.dead_letters,
                          size_bytes=figures.size_bytes, discarded=figures.discarded)

    def pending_count(self) -> int:
        with self._read_lock:
            return self._read.execute("SELECT count(*) FROM points WHERE seq > ?",
                                      (self._shipped_through(self._read),)).fetchone()[0]

    # -- reading (the embedded database) ----------------------------------------------------

    def measurements(self) -> list[str]:
        with self._read_lock:
            return [r[0] for r in self._read.execute(
                "SELECT DISTINCT measurement FROM series ORDER BY measurement")]

    def counts(self) -> dict[str, int]:
        """Points per measurement (dead letters left out), for summaries and tests."""
        with self._read_lock:
            return dict(self._read.execute(
                "SELECT s.measurement, count(*) FROM points p JOIN series s ON s.id = p.series_id "
                "WHERE p.dead = 0 GROUP BY s.measurement ORDER BY s.measurement").fetchall())

    def _series_of(self, measurement: str,
                   tags: Mapping[str, str] | None = None) -> dict[int, dict[str, str]]:
        with self._read_lock:
            series = self._read.execute(
                "SELECT id, tags FROM series WHERE measurement = ?", (measurement,)).fetchall()
        wanted = {}
        for sid, tags_json in series:
            tag_map = json.loads(tags_json)
            if tags and any(tag_map.get(k) != v for k, v in tags.items()):
                continue
            wanted[sid] = tag_map
        return wanted

    def _rows(self, series: Mapping[int, object], start_ns: int | None, end_ns: int | None,
              chunk: int) -> Iterator[list[tuple]]:
        """(series, time, layout, vals, strs) of those series in time order, in chunks."""
        marks = ",".join("?" * len(series))
        sql = (f"SELECT series_id, time_ns, layout, vals, strs FROM points INDEXED BY points_time "
               f"WHERE time_ns >= ? AND time_ns < ? AND series_id IN ({marks}) AND dead = 0 "
               "ORDER BY time_ns, series_id")
        params = [start_ns if start_ns is not None else -(2**63),
                  end_ns if end_ns is not None else 2**63 - 1, *series]
        with self._read_lock:
            cur = self._read.cursor()
            cur.execute(sql, params)
            rows = cur.fetchmany(chunk)
        while rows:
            yield rows
            with self._read_lock:
                rows = cur.fetchmany(chunk)

    def query(self, measurement: str, start_ns: int | None = None, end_ns: int | None = None,
              tags: Mapping[str, str] | None = None, chunk: int = 50_000) -> Iterator[list[StoredPoint]]:
        """Points of one measurement in time order, in chunks, for export and reports."""
        wanted = self._series_of(measurement, tags)
        if not wanted:
            return
        for rows in self._rows(wanted, start_ns, end_ns, chunk):
            yield [StoredPoint(measurement, wanted[sid], t, self._layout(lid).fields(vals, strs))
                   for sid, t, lid, vals, strs in rows]

    def changed_since(self, mark: int, measurements: Iterable[str]) -> tuple[int | None, int]:
        """(earliest point time among the rows of `measurements` stored after seq `mark`, the
        newest seq).

        A row new or changed takes the next seq, so a derived-data job finds what arrived since
        its last run, late data and rewritten points included, by a range scan over the new
        rows only. Returns (None, newest seq) when none of them is of `measurements`.
        """
        names = sorted(set(measurements))
        marks = ",".join("?" * len(names))
        with self._read_lock:
            newest = self._read.execute("SELECT max(seq) FROM points").fetchone()[0]
            if newest is None or newest <= mark or not names:
                return None, max(mark, newest or 0)
            first = self._read.execute(
                f"SELECT min(time_ns) FROM points WHERE seq > ? AND seq <= ? AND dead = 0 AND "
                f"series_id IN (SELECT id FROM series WHERE measurement IN ({marks}))",
                (mark, newest, *names)).fetchone()[0]
        return first, newest

    def first_time(self, measurement: str) -> int | None:
        """The earliest point time of a measurement, or None."""
        series = self._series_of(measurement)
        if not series:
            return None
        marks = ",".join("?" * len(series))
        with self._read_lock:
            row = self._read.execute(
                f"SELECT min(time_ns) FROM points WHERE series_id IN ({marks}) AND dead = 0",
                list(series)).fetchone()
        return row[0] if row else None

    def query_rows(self, measurement: str, fields: Sequence[str], start_ns: int | None = None,
                   end_ns: int | None = None, chunk: int = 100_000
                   ) -> Iterator[tuple[dict[int, dict[str, str]], list[tuple]]]:
        """Selected fields of one measurement as rows (series_id, time_ns, *values) in time
        order, in chunks, with the series' tags; a field a point lacks is None. Only the
        wanted values of each row are decoded, so a year of 10 s data exports quickly."""
        tags = self._series_of(measurement)
        if not tags:
            return
        pickers: dict[int, Callable] = {}
        for rows in self._rows(tags, start_ns, end_ns, chunk):
            out = []
            for sid, time_ns, lid, vals, strs in rows:
                pick = pickers.get(lid)
                if pick is None:
                    pick = pickers[lid] = self._layout(lid).picker(fields)
                out.append((sid, time_ns, *pick(vals, strs)))
            yield tags, out

    def nearest_rows(self, measurement: str, fields: Sequence[str], time_ns: int, before: bool
                     ) -> tuple[dict[int, dict[str, str]], list[tuple]]:
        """Per series, the row nearest `time_ns` on one side that has any of `fields`: the last
        before it (`before`), else the first at or after it; however far away it is. Rows as
        in `query_rows`. Interpolating at a boundary needs the samples either side of it.
        """
        tags = self._series_of(measurement)
        wanted = set(fields)
        with self._read_lock:
            self._load_new_layouts()
        layouts = [lid for lid, layout in self._layouts.items() if wanted & set(layout.names)]
        if not tags or not layouts:
            return {}, []
        marks = ",".join("?" * len(layouts))
        sql = (f"SELECT time_ns, layout, vals, strs FROM points INDEXED BY points_series "
               f"WHERE series_id = ? AND time_ns "
               f"{'<' if before else '>='} ? AND dead = 0 AND layout IN ({marks}) "
               f"ORDER BY time_ns {'DESC' if before else 'ASC'} LIMIT 1")
        rows = []
        with self._read_lock:
            for sid in tags:
                row = self._read.execute(sql, (sid, time_ns, *layouts)).fetchone()
                if row is not None:
                    t, lid, vals, strs = row
                    rows.append((sid, t, *self._layout(lid).picker(fields)(vals, strs)))
        return tags, rows

    def close(self) -> None:
        try:
            self.store_left_out()
        except StoreError as exc:
            log.error("%s: the last unchanged samples stay held in the store; the next run "
                      "stores them with their series' next change", exc)
        with self._read_lock:
            if self._read is not self._db:
                self._read.close()
        with self._lock:
            # Only a writer leaves the WAL trimmed: a report closing beside the running
            # collector would wait for its commits to checkpoint them.
            if self._wrote:
                try:
                    self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.Error as exc:
                    log.warning("local store %s: checkpoint at close failed: %s", self.path, exc)
            self._db.close()
