from pathlib import Path

import pytest

from collector.measurement import CoercionReport, FieldType, Measurement, Tag, b, f, i, s
from collector.schema import all_measurements, render_markdown

M = Measurement("t_m", "test", "poll time", (Tag("dev", "device"),),
                (f("power_w", "W", "p"), i("count", "1", "c"), b("on", "o"), s("name", "n")))


def test_values_are_coerced_to_their_declared_type():
    p = M.point({"dev": "1"}, {"power_w": "63.5", "count": "12", "on": 16 > 0, "name": 5}, 10)
    assert p.fields == {"power_w": 63.5, "count": 12, "on": True, "name": "5"}
    assert type(p.fields["power_w"]) is float and type(p.fields["count"]) is int


def test_int_for_float_field_becomes_float_so_influx_sees_one_type():
    assert type(M.point({}, {"power_w": 7}, 1).fields["power_w"]) is float


def test_bad_values_are_left_out_and_reported_none_is_absent():
    report = CoercionReport()
    p = M.point({"dev": "1"}, {"power_w": "abc", "count": 1.5, "on": "maybe", "name": None,
                               }, 1, report)
    assert p is None
    assert sorted(name for name, _ in report.rejected) == ["count", "on", "power_w"]
    report = CoercionReport()
    p = M.point({}, {"power_w": float("nan"), "count": 2}, 1, report)
    assert p.fields == {"count": 2} and report.rejected[0][0] == "power_w"


def test_integers_beyond_64_bits_are_left_out_not_stored():
    # InfluxDB and SQLite hold int64; a wider value used to fail the whole store commit.
    report = CoercionReport()
    p = M.point({}, {"count": 10**30, "power_w": 1.0}, 1, report)
    assert p.fields == {"power_w": 1.0} and report.rejected[0][0] == "count"
    assert M.point({}, {"count": 2**63 - 1}, 1).fields == {"count": 2**63 - 1}
    assert M.point({}, {"count": "-1e30"}, 1) is None


def test_undeclared_field_or_tag_is_a_programming_error():
    with pytest.raises(KeyError, match="not declared"):
        M.point({}, {"bogus": 1}, 1)
    with pytest.raises(KeyError, match="not declared"):
        M.point({"bogus": "x"}, {"count": 1}, 1)


def test_a_name_cannot_be_both_tag_and_field():
    with pytest.raises(ValueError, match="tag and field"):
        Measurement("x", "", "", (Tag("a", ""),), (f("a", "", ""),))


def test_schema_document_is_current():
    committed = (Path(__file__).parent.parent / "docs" / "schema.md").read_text()
    assert committed == render_markdown(all_measurements()), (
        "docs/schema.md is stale: run `ev-collector schema > docs/schema.md`")


def test_every_measurement_declares_types_and_units_in_the_document():
    doc = render_markdown(all_measurements())
    for m in all_measurements():
        assert f"## `{m.name}`" in doc
        for fl in m.fields:
            assert f"| `{fl.name}` | {fl.type.value} |" in doc
            if fl.type in (FieldType.FLOAT, FieldType.INT):
                assert fl.unit, f"{m.name}.{fl.name} has no unit"
