import math

import pytest

from collector.points import Point, field_set, to_line


def test_line_protocol_escapes_measurement_tags_fields_and_strings():
    p = Point("my meas,x", {"tag key": "a,b=c d", "z": "1"},
              {"str": 'say "hi" \\ back', "f k": 1.5, "n": 3, "ok": True}, 1_700_000_000_123_456_789)
    assert to_line(p) == (
        r'my\ meas\,x,tag\ key=a\,b\=c\ d,z=1 f\ k=1.5,n=3i,ok=true,'
        r'str="say \"hi\" \\ back" 1700000000123456789'
    )


def test_integral_float_stays_float_and_bool_is_not_int():
    fields, _ = field_set({"a": 230.0, "b": False, "c": 0})
    assert fields == "a=230.0,b=false,c=0i"


def test_nonfinite_values_are_dropped_and_counted():
    fields, dropped = field_set({"a": math.nan, "b": math.inf, "c": -math.inf, "d": 1.0})
    assert (fields, dropped) == ("d=1.0", 3)
    assert to_line(Point("m", {}, {"a": math.nan}, 1)) is None


def test_empty_tag_values_are_left_out():
    assert to_line(Point("m", {"a": "", "b": "x"}, {"v": 1}, 5)) == "m,b=x v=1i 5"


def test_unsupported_type_raises():
    with pytest.raises(TypeError):
        field_set({"a": [1, 2]})


def test_a_declared_point_ships_and_stores_as_the_same_point_built_by_hand(tmp_path):
    """A point from `Measurement.point` carries its layout to the line and the store; what
    they make of it must not differ from a point whose layout is worked out from its values,
    on the bulk path (an integer for a float field) and on the coercing one (a string)."""
    from collector.measurement import Measurement, Tag, b, f, i, s
    from collector.store import Store

    m = Measurement("t_layout", "test", "poll time", (Tag("dev", "device"),),
                    (f("w", "W", "power"), i("n", "", "count"), b("on", "state"),
                     s("name", "label")))
    built = [m.point({"dev": "a"}, {"w": 1500, "n": 3, "on": True, "name": 'x "y"'}, 1),
             m.point({"dev": "a"}, {"n": "4", "w": "2.5"}, 2),
             m.point({"dev": "b"}, {"on": "yes"}, 3)]
    assert all(point is not None and point.layout is not None for point in built)
    by_hand = [Point(p.measurement, dict(p.tags), dict(p.fields), p.time_ns) for p in built]
    assert by_hand == built
    assert [to_line(p) for p in built] == [to_line(p) for p in by_hand]
    assert to_line(built[0]) == 't_layout,dev=a n=3i,name="x \\"y\\"",on=true,w=1500.0 1'
    stores = []
    for name, points in (("built", built), ("by_hand", by_hand)):
        store = Store(tmp_path / f"{name}.db")
        store.append(points)
        stores.append([item.line for item in store.next_batch(10)])
        store.close()
    assert stores[0] == stores[1] and len(stores[0]) == 3
