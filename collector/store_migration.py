"""Converting a version-1 store (JSON fields and a line-protocol copy in every row) in place.

Version 1 kept `fields` as a JSON object and a `state` (0 pending, 1 shipped, 2 dead letter) per
row, in ship order by `id`. The conversion keeps every point, its ship order and its state:
shipped and dead points are numbered first and the shipped mark set after them, pending points
follow in their old order. One transaction: a crash or a full disk leaves the old store as it
was, and the next start tries again. The space the old rows took is returned with VACUUM when
that frees a quarter of the file or more (free pages are reused anyway when it cannot run).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from collector.store import Store

log = logging.getLogger(__name__)

CHUNK = 20_000


def migrate_v1(store: Store) -> None:
    from collector.store import _LAYOUTS, _POINTS, _POINTS_INDEXES, _SCHEMA, SCHEMA_VERSION

    db = store._db
    total = db.execute("SELECT count(*) FROM points").fetchone()[0]
    log.warning("local store %s: converting %d points to the compact format of version %d "
                "(once; the old format used about four times the space)", store.path, total,
                SCHEMA_VERSION)
    started = time.monotonic()
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(_LAYOUTS)
        db.execute(_POINTS.format(name="points_v2"))
        store._load_caches()
        seq = shipped = skipped = 0
        for state_filter in ("state != 0", "state = 0"):
            cur = db.execute(f"SELECT series_id, time_ns, fields, state FROM points "
                             f"WHERE {state_filter} ORDER BY id")
            while rows := cur.fetchmany(CHUNK):
                out = []
                for sid, time_ns, fields, state in rows:
                    values = {k: v for k, v in orjson.loads(fields).items() if v is not None}
                    if not values:
                        skipped += 1
                        continue
                    seq += 1
                    out.append((seq, sid, time_ns, *store._encode(values), 1 if state == 2 else 0))
                db.executemany("INSERT INTO points_v2 (seq, series_id, time_ns, layout, vals, "
                               "strs, dead) VALUES (?, ?, ?, ?, ?, ?, ?)", out)
            if state_filter == "state != 0":
                shipped = seq
        db.execute("DROP TABLE points")
        db.execute("ALTER TABLE points_v2 RENAME TO points")
        for index in _POINTS_INDEXES:
            db.execute(index)
        store._set_shipped(shipped)
        # The rollup job's mark is a row number of the old numbering, which seq replaces: it
        # starts over, so the job recomputes the days the store holds once.
        from collector.rollups.job import MARK

        db.execute("DELETE FROM cursors WHERE key = ?", (MARK,))
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.executescript(_SCHEMA)   # anything else version 2 has (idempotent)
    log.warning("local store %s: converted %d points in %.1f s (%d pending, %d without fields "
                "left out)", store.path, seq, time.monotonic() - started, seq - shipped, skipped)
    _compact(store)


def _compact(store: Store) -> None:
    db = store._db
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    free = db.execute("PRAGMA freelist_count").fetchone()[0]
    if free * 4 < pages:
        return
    started = time.monotonic()
    try:
        db.execute("VACUUM")
    except sqlite3.Error as exc:
        log.warning("local store %s: could not return the space of the old format (%s); "
                    "its %d free pages are reused as new points arrive", store.path, exc, free)
        return
    log.warning("local store %s: returned %.0f MB to the file system in %.1f s", store.path,
                free * db.execute("PRAGMA page_size").fetchone()[0] / 1e6,
                time.monotonic() - started)
