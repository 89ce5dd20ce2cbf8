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
