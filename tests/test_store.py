
import json
import sqlite3
from pathlib import Path

import pytest

from collector.points import Point, escape_measurement
from collector.store import Store, StoreError


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "s.db")
    yield s
    s.close()


def p(t, v=1.0, dev="a", **extra):
    return Point("m", {"dev": dev}, {"v": v, **extra}, t)


def test_same_sample_twice_is_one_row_and_not_shipped_again(store):
    assert store.append([p(1), p(2)]) == 2
    batch = store.next_batch(10)
    store.mark_shipped(batch)
    assert store.append([p(1), p(2)]) == 0
    assert store.next_batch(10) == []
    assert store.stats().shipped == 2


def test_changed_fields_merge_like_influx_and_ship_again(store):
    store.append([p(1, v=1.0)])
    store.mark_shipped(store.next_batch(10))
    assert store.append([Point("m", {"dev": "a"}, {"w": 5}, 1)]) == 1
    [item] = store.next_batch(10)
    assert item.line == "m,dev=a v=1,w=5i 1"     # a whole float ships without its .0


def test_a_batch_in_flight_cannot_mark_a_newer_version_shipped(store):
    store.append([p(1, v=1.0)])
    batch = store.next_batch(10)
    store.append([p(1, v=2.0)])          # corrected while the old version was being shipped
    store.mark_shipped(batch)
    [item] = store.next_batch(10)
    assert item.line == "m,dev=a v=2 1"


def test_points_and_cursor_commit_together_or_not_at_all(store, tmp_path):
    store.append([p(1)], cursors={"src:dev:stream": "2024-01-01T00:00:00Z"})
    assert store.cursor("src:dev:stream") == "2024-01-01T00:00:00Z"
    bad = Point("m", {"dev": "a"}, {"v": object()}, 2)  # cannot be serialized
    with pytest.raises(TypeError):
        store.append([p(3), bad], cursors={"src:dev:stream": "later"})
    assert store.cursor("src:dev:stream") == "2024-01-01T00:00:00Z"
    assert [i.line.split()[-1] for i in store.next_batch(10)] == ["1"]


def test_contents_survive_reopening(tmp_path):
    s = Store(tmp_path / "x.db")
    s.append([p(1), p(2)], cursors={"k": "v"})
    s.close()
    s = Store(tmp_path / "x.db")
    assert len(s.next_batch(10)) == 2 and s.cursor("k") == "v"
    s.append([p(1)])                     # series cache rebuilt from disk: still one row
    assert s.pending_count() == 2
    s.close()


def test_dead_letters_keep_line_and_reason_and_leave_the_queue(store):
    store.append([p(1), p(2)])
    first, second = store.next_batch(10)
    store.dead_letter(first, "field type conflict")
    assert store.dead_letters() == [(first.line, "field type conflict")]
    assert [i.id for i in store.next_batch(10)] == [second.id]


def test_nonfinite_values_are_dropped_and_counted(store):
    store.append([p(1, v=float("nan"), w=2)])
    assert store.next_batch(10)[0].line == "m,dev=a w=2i 1"
    assert store.nonfinite_dropped == 1


def test_retention_prunes_only_shipped_points(store):
    store.append([p(1), p(2), p(10**12)])
    store.mark_shipped(store.next_batch(2))
    assert store.prune_shipped(older_than_ns=10**11) == 2
    assert store.pending_count() == 1


def test_size_bound_drops_shipped_first_then_oldest_pending_counted(store):
    big = "x" * 2000
    store.append([Point("m", {}, {"s": big}, t) for t in range(200)])
    store.mark_shipped(store.next_batch(100))                # 0..99 shipped
    used = store.used_bytes()
    discarded = store.enforce_size(int(used * 0.4), chunk=10)
    assert discarded > 0
    remaining = [int(i.line.split()[-1]) for i in store.next_batch(1000)]
    assert store.stats().shipped == 0, "shipped points must go before any pending one"
    assert remaining == list(range(200 - len(remaining), 200)), "oldest pending go first"
    assert store.stats().discarded == discarded == 100 - len(remaining)


def test_query_reads_back_points_in_time_order_with_tag_filter(store):
    store.append([p(3, dev="b"), p(2, dev="a"), p(1, dev="a")])
    rows = [pt for chunk in store.query("m", tags={"dev": "a"}) for pt in chunk]
    assert [(r.time_ns, r.tags, r.fields) for r in rows] == [(1, {"dev": "a"}, {"v": 1.0}),
                                                              (2, {"dev": "a"}, {"v": 1.0})]


def test_unwritable_store_is_a_clear_error(tmp_path):
    target = tmp_path / "ro"
    target.mkdir()
    (target / "s.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="s.db"):
        Store(target / "s.db")


def test_every_kind_of_value_round_trips_and_ships_as_line_protocol(store):
    """Values that pack (numbers, booleans, plain strings) and values that keep the JSON form
    (an exponent, a string with a quote, backslash and newline) come back exactly."""
    packed = {"f": 0.1 + 0.2, "whole": 7000.0, "neg0": -0.0, "n": -3, "max": 2**63 - 1,
              "on": False, "yes": True, "s": "a,b é", "empty": "", "k y": 1.5}
    odd = {"big": 1e16, "tiny": 1.5e-7, "s": 'a"b\\c\nd', "on": True}
    store.append([Point("m x", {"t,k": "a=b c"}, packed, 1), Point("m x", {"t,k": "a=b c"}, odd, 2)])
    [rows] = list(store.query("m x"))
    for row, sent in zip(rows, (packed, odd)):
        assert row.fields == sent
        assert {k: type(v) for k, v in row.fields.items()} == {k: type(v) for k, v in sent.items()}
    # packed values ship as they are stored: a whole float without ".0", booleans as t/f
    assert [item.line for item in store.next_batch(10)] == [
        r'm\ x,t\,k=a\=b\ c empty="",f=0.30000000000000004,k\ y=1.5,max=9223372036854775807i,'
        r'n=-3i,neg0=-0,on=f,s="a,b é",whole=7000,yes=t 1',
        r'm\ x,t\,k=a\=b\ c big=1e+16,on=true,s="a\"b\\c' + "\n" + r'd",tiny=1.5e-07 2',
    ]


def test_a_go_e_status_takes_a_fraction_of_its_json(store):
    """Field names once per layout, values two digits to a byte: a go-e status (35 fields)
    with its index entry takes under 150 bytes; as a JSON object it took about 850."""
    import json
    from pathlib import Path

    from collector.sources.goe.parse import parse_status

    payload = Path(__file__).parent / "sources" / "goe" / "payloads" / "full_status_058.json"
    status = json.loads(payload.read_text())["status"]
    before = store.used_bytes()
    for chunk in range(10):
        points = []
        for t in range(chunk * 1000, chunk * 1000 + 1000):
            status.update(eto=status["eto"] + 3, rbt=status["rbt"] + 1000,
                          nrg=[v + (t % 7) / 10 if isinstance(v, float) else v for v in status["nrg"]])
            points += parse_status(status, "012345", t * 10**9)
        store.append(points)
    assert len(points[0].fields) >= 35
    assert (store.used_bytes() - before) / 10_000 < 150


def test_unchanged_samples_are_stored_again_only_after_the_heartbeat(store):
    def sample(t, v, dev="a"):
        return Point("m", {"dev": dev}, {"v": v, "ok": True}, t * 10**9)

    written = store.commit_groups([([sample(0, 1.0), sample(10, 1.0), sample(20, 2.0),
                                     sample(30, 2.0), sample(79, 2.0), sample(80, 2.0),
                                     sample(10, 5.0, dev="b"), sample(20, 5.0, dev="b")],
                                    None, 60.0)])
    # 10 s is stored with the change at 20 s (it ends v=1.0); 79 s is not: 80 s is a heartbeat
    assert [(w.changed, w.unchanged, w.value_ends) for w in written] == [(5, 4, 1)]
    assert [p.time_ns // 10**9 for chunk in store.query("m", tags={"dev": "a"}) for p in chunk] \
        == [0, 10, 20, 80]
    assert store.append([sample(85, 2.0)], heartbeat=0) == 1        # 0: every sample
    assert store.append([sample(5, 1.0)], heartbeat=60) == 1        # older than the newest: kept
    assert store.unchanged_skipped == 4


def _times(store, measurement="m"):
    return [p.time_ns // 10**9 for chunk in store.query(measurement) for p in chunk]


def test_a_value_ends_at_its_last_sample_not_at_its_last_stored_point(store):
    """Write on change keeps every step exact: the sample before a change is stored with it."""
    for t in range(0, 631, 30):
        store.append([p(t * 10**9, v=1.0 if t <= 600 else 2.0)], heartbeat=900)
    assert _times(store) == [0, 600, 630]        # v=1.0 held until 600 s, not only seen at 0 s


def test_a_charge_that_completed_ends_at_the_unplug_under_write_on_change(store):
    """A go-e charge completes (car state 4, nothing changes) and the car is unplugged 14 min
    later: the session ends at the last connected sample, not at the completion 14 min before."""
    from collector.sources.goe.sessions import goe_intervals

    def status(t, car, wh):
        return Point("goe_status", {"serial": "1"},
                     {"car_state": car, "energy_session_wh": wh, "energy_total_wh": 5000.0 + wh},
                     t * 10**9)

    samples = [status(0, 1, 0.0)] + [status(t, 2, t / 10) for t in range(60, 3601, 60)]
    samples += [status(t, 4, 360.0) for t in range(3660, 4501, 60)] + [status(4560, 1, 360.0)]
    for sample in samples:
        store.append([sample], heartbeat=900)
    stored = [point for chunk in store.query("goe_status") for point in chunk]
    [session] = goe_intervals(stored, "1")
    assert (session.start_ns, session.end_ns) == (60 * 10**9, 4500 * 10**9)
    assert session.energy_wh == 360.0


def test_the_last_unchanged_samples_are_stored_at_close(tmp_path):
    s = Store(tmp_path / "s.db")
    for t in (0, 30, 60):
        s.append([p(t * 10**9)], heartbeat=900)
    assert _times(s) == [0]
    s.close()
    s = Store(tmp_path / "s.db")
    assert _times(s) == [0, 60]                  # the value was still 1.0 at the stop
    assert s.store_left_out() == 0
    s.close()


def test_a_failed_write_keeps_the_sample_it_would_have_stored_before_its_change(store):
    store.append([p(0, v=1.0)], heartbeat=60)
    store.append([p(10, v=1.0)], heartbeat=60)
    bad = Point("m", {"dev": "a"}, {"v": object()}, 25)
    with pytest.raises(TypeError):
        store.append([p(20, v=2.0), bad], heartbeat=60)
    store.append([p(20, v=2.0)], heartbeat=60)
    assert [pt.time_ns for chunk in store.query("m") for pt in chunk] == [0, 10, 20]


def test_the_heartbeat_goes_on_from_the_store_after_a_restart(tmp_path):
    s = Store(tmp_path / "s.db")
    s.append([p(0)], heartbeat=60)
    s.close()
    s = Store(tmp_path / "s.db")
    assert s.append([p(30 * 10**9)], heartbeat=60) == 0             # same values, 30 s later
    assert s.append([p(61 * 10**9)], heartbeat=60) == 1
    s.close()


def test_a_write_that_failed_leaves_no_heartbeat_behind(store):
    store.append([p(0, v=1.0)], heartbeat=60)
    bad = Point("m", {"dev": "a"}, {"v": object()}, 5)
    with pytest.raises(TypeError):
        store.append([p(10, v=2.0), bad], heartbeat=60)
    assert store.append([p(20, v=2.0)], heartbeat=60) == 1          # v=2.0 was never stored


def test_a_batch_read_ahead_starts_after_the_batch_in_flight(store):
    store.append([p(t) for t in range(1, 8)])
    first = store.next_batch(3)
    ahead = store.next_batch(3, after=first[-1].id)
    assert [int(i.line.split()[-1]) for i in first + ahead] == [1, 2, 3, 4, 5, 6]
    store.mark_shipped(first)
    store.mark_shipped(ahead)
    assert [int(i.line.split()[-1]) for i in store.next_batch(10)] == [7]


def test_a_point_met_twice_in_one_write_with_other_fields_is_merged(store):
    assert store.append([p(1, v=1.0), Point("m", {"dev": "a"}, {"w": 5}, 1)]) == 2
    [[row]] = list(store.query("m"))
    assert row.fields == {"v": 1.0, "w": 5}
    assert store.append([Point("m", {"dev": "a"}, {"w": 5}, 1)]) == 0   # nothing new: no-op
    assert store.pending_count() == 1


def test_a_large_write_upserts_like_small_ones(store):
    """A commit of many points goes to SQLite in blocks of rows; each block must keep the
    upsert's meaning: identical rows change nothing, changed ones are replaced and queued
    again, a point met with other fields merges, and the same point twice in a write is one."""
    n = 1_300
    assert store.append([p(t) for t in range(n)]) == n
    store.mark_shipped(store.next_batch(n))
    again = [p(t, v=2.0 if t % 3 == 0 else 1.0) for t in range(n)]
    again[7] = Point("m", {"dev": "a"}, {"w": 5}, 7)          # other fields: merged
    again.append(p(9, v=3.0))                                 # point 9 a second time: it wins
    changed = sum(1 for t in range(n) if t % 3 == 0) + 1      # the 2.0s (9 among them) and 7
    assert store.append(again) == changed + 1                 # point 9 changed twice
    pending = {item.line for item in store.next_batch(2 * n)}
    assert len(pending) == changed
    assert "m,dev=a v=1,w=5i 7" in pending and "m,dev=a v=3 9" in pending
    assert "m,dev=a v=2 9" not in pending
    assert sum(len(rows) for rows in store.query("m")) == n


def test_the_wal_is_trimmed_after_a_large_write_and_stays_small_while_a_backlog_drains(tmp_path):
    from collector.store import WAL_LIMIT

    store = Store(tmp_path / "s.db", synchronous="normal")
    wal = tmp_path / "s.db-wal"
    fields = {f"f{n}": n * 1.0001 for n in range(12)}
    store.append([Point("m", {"dev": f"{k % 100}"}, {**fields, "t": t}, t) for t in range(60_000)
                  for k in (t,)])                                  # one large transaction
    assert wal.stat().st_size > WAL_LIMIT
    sizes = []
    for t in range(60_000, 60_000 + 100 * 50, 100):                # then ordinary commits
        store.append([Point("m", {"dev": "x"}, {**fields, "t": t + k}, t + k) for k in range(100)])
        sizes.append(wal.stat().st_size)
    assert sizes[-1] <= WAL_LIMIT, "trimmed after a checkpoint"
    while batch := store.next_batch(5000):                         # a backlog drains
        store.mark_shipped(batch)
        sizes.append(wal.stat().st_size)
    assert max(sizes) < 16 * 2**20 and sizes[-1] <= WAL_LIMIT
    store.checkpoint()
    assert wal.stat().st_size == 0
    store.close()


def test_a_version_1_store_is_converted_in_place_and_keeps_everything(tmp_path):
    """tests/data/store_v1.db was written by the version-1 store (make_store_v1.py)."""
    import shutil
    import sqlite3

    from collector.store import SCHEMA_VERSION

    path = tmp_path / "old.db"
    shutil.copy(Path(__file__).parent / "data" / "store_v1.db", path)
    old = sqlite3.connect(path)
    rows = old.execute("SELECT s.measurement, s.tags, p.time_ns, p.fields, p.state FROM points p "
                       "JOIN series s ON s.id = p.series_id ORDER BY p.id").fetchall()
    cursors = dict(old.execute("SELECT key, value FROM cursors"))
    dead = old.execute("SELECT line, reason FROM dead_letters").fetchall()
    old.close()
    expected = {(m, tags, t): json.loads(fields) for m, tags, t, fields, state in rows if state != 2}
    pending = [(m, t) for m, _, t, _, state in rows if state == 0]
    size_before = path.stat().st_size

    store = Store(path)
    got = {}
    for measurement in store.measurements():
        for chunk in store.query(measurement):
            for point in chunk:
                key = (measurement, json.dumps(point.tags, separators=(",", ":")), point.time_ns)
                got[key] = point.fields
    assert got == expected
    for key, fields in got.items():     # int, float, bool and str stay apart
        assert [type(v) for v in fields.values()] == [type(v) for v in expected[key].values()]
    batch = store.next_batch(1000)           # the same backlog, in the same order
    assert len(batch) == len(pending)
    for item, (measurement, time_ns) in zip(batch, pending):
        assert item.line.startswith(escape_measurement(measurement))
        assert item.line.endswith(f" {time_ns}")
    assert store.stats().shipped == sum(1 for *_, state in rows if state == 1)
    assert store.dead_letters() == dead and store.counts().get("refused") is None
    assert store.cursors() == cursors
    assert store._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    again = [Point(m, json.loads(tags), json.loads(fields), t) for m, tags, t, fields, _ in rows]
    assert store.append(again) == 0        # identical points: nothing changes, nothing ships
    store.mark_shipped(batch)
    assert store.pending_count() == 0
    store.close()
    assert path.stat().st_size < size_before


def test_a_converted_store_restarts_the_rollups_mark(tmp_path):
    """The rollups' mark counted version-1 row ids; kept, the job would miss every new row
    until seq caught up with it."""
    import shutil
    import sqlite3

    from collector.rollups.job import MARK

    path = tmp_path / "old.db"
    shutil.copy(Path(__file__).parent / "data" / "store_v1.db", path)
    old = sqlite3.connect(path)
    old.execute("INSERT INTO cursors (key, value, updated_ns) VALUES (?, '1000000', 0)", (MARK,))
    old.commit()
    old.close()
    store = Store(path)
    assert store.cursor(MARK) is None
    store.append([Point("goe_status", {"serial": "000001"}, {"energy_total_wh": 1.0}, 5)])
    first, newest = store.changed_since(0, ["goe_status"])
    assert first == 5 and newest == store.changed_since(newest, ["goe_status"])[1]
    store.close()


def test_a_batch_of_known_series_packs_as_each_point_alone(store):
    """Appending the same points again (series and layouts known, values packed for a whole
    batch) finds byte for byte what the first append (point by point) stored: nothing is
    queued again, every value reads back exactly. A batch with an exponent, a NaN or a string
    still packs each row as alone; NaN is left out only where it is."""
    import random

    rng = random.Random(18)
    plain = [0.0, -0.0, 7000.0, 231.5, 0.1 + 0.2, -12.75, 123456789.125, -1.0, 10.0]
    odd = [1e16, 1.5e-7, float("nan")]
    ints = [0, -3, 7, 2**63 - 1, -(2**63), 1_000_000]

    def batch(start: int, odd_every: int = 0, strings: bool = False) -> list[Point]:
        points = []
        for t in range(start, start + 100):
            fields = {"f": rng.choice(plain), "i": rng.choice(ints), "b": rng.random() < 0.5,
                      "g": rng.choice(plain)}
            if odd_every and t % odd_every == 0:
                fields["g"] = odd[(t // odd_every) % 3]
            if strings and t % 7 == 0:
                fields["s"] = rng.choice(["pv", "a,b", "", "x y"])
            points.append(Point("m", {"dev": f"d{t % 5}"}, fields, t))
        return points

    batches = [batch(0), batch(100, odd_every=9), batch(200, strings=True), batch(300)]
    stored_first = [store.append(points) for points in batches]
    assert [store.append(points) for points in batches] == [0, 0, 0, 0]
    assert store.append([p for points in batches for p in points][::-1]) == 0
    rows = {row.time_ns: row.fields for chunk in store.query("m") for row in chunk}
    assert len(rows) == sum(stored_first) == 400
    nan = 0
    for point in (p for points in batches for p in points):
        expected = {k: v for k, v in point.fields.items() if v == v}
        nan += len(point.fields) - len(expected)
        assert rows[point.time_ns] == expected
        assert [type(v) for v in rows[point.time_ns].values()] == [type(v) for v in expected.values()]
    assert nan and store.nonfinite_dropped == 3 * nan


def test_a_batch_read_for_shipping_gives_each_row_its_own_line(store):
    """A batch's rows are unpacked together; each line must still hold its own values: rows
    of odd and even length, booleans, strings (also with a comma, or a row of strings only),
    and a row kept as JSON (an exponent) side by side."""
    points = [Point("m", {"d": "a"}, {"v": 1.5, "n": 3, "ok": True}, 1),
              Point("m", {"d": "a"}, {"s": "hi"}, 2),
              Point("m", {"d": "b"}, {"v": 1e300}, 3),
              Point("m", {"d": "a"}, {"v": 2.25, "s": "x,y"}, 4),
              Point("m", {"d": "b"}, {"v": 123.5}, 5),
              Point("m", {"d": "a"}, {"v": -7.0, "ok": False}, 6)]
    store.append(points)
    assert store.next_batch(10).lines == [
        "m,d=a n=3i,ok=t,v=1.5 1",
        'm,d=a s="hi" 2',
        "m,d=b v=1e+300 3",
        'm,d=a s="x,y",v=2.25 4',
        "m,d=b v=123.5 5",
        "m,d=a ok=f,v=-7 6",
    ]


def test_a_sample_left_out_as_unchanged_outlives_a_crash(tmp_path):
    """Where a value was last seen is in the store before the sample is forgotten: a crash
    (no stop, so nothing stored at one) does not move a value's end a heartbeat early."""
    crashed = Store(tmp_path / "s.db")
    for t in (0, 30, 60):
        crashed.append([p(t * 10**9)], heartbeat=900)       # 30, then 60, left out
    assert _times(crashed) == [0]
    # the process dies here; the next one opens the store and the value changes
    restarted = Store(tmp_path / "s.db")
    restarted.append([p(90 * 10**9, v=2.0)], heartbeat=900)
    assert _times(restarted) == [0, 60, 90]                  # 1.0 was still seen at 60
    restarted.close()


def test_a_sample_left_out_before_a_long_outage_ends_its_value(tmp_path):
    crashed = Store(tmp_path / "s.db")
    for t in (0, 30, 60):
        crashed.append([p(t * 10**9)], heartbeat=900)
    restarted = Store(tmp_path / "s.db")                     # back after more than a heartbeat
    restarted.append([p(5000 * 10**9)], heartbeat=900)
    assert _times(restarted) == [0, 60, 5000]
    restarted.close()


def test_a_reader_of_the_store_leaves_the_writers_unchanged_samples_alone(tmp_path):
    """A report or the forwarder opens the same store: closing it must not store (or drop) the
    samples the collector holds back."""
    collector = Store(tmp_path / "s.db")
    for t in (0, 30, 60):
        collector.append([p(t * 10**9)], heartbeat=900)
    reader = Store(tmp_path / "s.db")
    reader.close()
    assert _times(collector) == [0]
    collector.append([p(90 * 10**9, v=2.0)], heartbeat=900)
    assert _times(collector) == [0, 60, 90]
    collector.close()


def test_a_reader_opens_the_store_while_the_collector_holds_its_write_lock(tmp_path):
    """A report, an export or a test's look into the store opens it beside the running
    collector: opening a store of this version must not need the write lock (it used to
    set the schema version at every open, and failed after 5 s behind a long commit)."""
    first = Store(tmp_path / "s.db")
    first.append([p(10**9)])
    first.close()
    committing = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    committing.execute("BEGIN IMMEDIATE")             # the collector, in the middle of a commit
    try:
        reader = Store(tmp_path / "s.db")
        assert _times(reader) == [1]
        reader.close()
    finally:
        committing.execute("ROLLBACK")
        committing.close()
