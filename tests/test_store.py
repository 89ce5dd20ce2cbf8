
import pytest

from collector.points import Point
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
    assert item.line == "m,dev=a v=1.0,w=5i 1"


def test_a_batch_in_flight_cannot_mark_a_newer_version_shipped(store):
    store.append([p(1, v=1.0)])
    batch = store.next_batch(10)
    store.append([p(1, v=2.0)])          # corrected while the old version was being shipped
    store.mark_shipped(batch)
    [item] = store.next_batch(10)
    assert item.line == "m,dev=a v=2.0 1"


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


def test_lines_built_at_append_equal_lines_built_later_from_json(tmp_path):
    """The embedded store keeps no lines; shipping its backlog later must give the same text."""
    tricky = [Point("m x", {"t,k": "a=b c"}, {"f": 0.1 + 0.2, "big": 1e16, "neg": -3, "s": 'a"b\\c\nd',
                                              "on": False, "k y": 7000.0}, 1_700_000_000_123_456_789)]
    eager, lazy = Store(tmp_path / "a.db"), Store(tmp_path / "b.db", keep_lines=False)
    eager.append(tricky)
    lazy.append(tricky)
    from collector.points import to_line
    assert eager.next_batch(1)[0].line == lazy.next_batch(1)[0].line == to_line(tricky[0])
    eager.close()
    lazy.close()


def test_counts_are_points_per_measurement_without_dead_letters(tmp_path):
    store = Store(tmp_path / "s.db")
    store.append([Point("a", {"x": "1"}, {"v": 1.0}, 1), Point("a", {"x": "2"}, {"v": 1.0}, 1),
                  Point("b", {}, {"v": 1.0}, 1)])
    assert store.counts() == {"a": 2, "b": 1}
    store.dead_letter(store.next_batch(1)[0], "refused")
    assert store.counts() == {"a": 1, "b": 1}
    store.close()


def test_a_full_disk_is_a_clear_error_corrupts_nothing_and_passes(store):
    store.append([p(1, dev="a")])
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages}")     # as if the filesystem were full
    big = [p(t, dev=f"new-{t}", note="x" * 3000) for t in range(2, 50)]
    with pytest.raises(StoreError, match=r"s\.db: write failed, nothing committed: database or disk is full"):
        store.append(big, {"k": "v"})
    assert store.cursor("k") is None
    store._db.execute("PRAGMA max_page_count = 1073741823")    # space returns
    assert store.append(big, {"k": "v"}) == len(big)
    assert store.cursor("k") == "v"
    assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert store._db.execute("SELECT count(*) FROM points p LEFT JOIN series s "
                             "ON s.id = p.series_id WHERE s.id IS NULL").fetchone()[0] == 0
    assert store.pending_count() == len(big) + 1
