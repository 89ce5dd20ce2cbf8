"""The status parser on payload files: each file holds a status and the point it must produce."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collector.http_outcomes import Action, SourceError
from collector.points import to_line
from collector.measurement import CoercionReport
from collector.sources.goe.parse import (STATUS, denoise, nrg_all_zero, parse_last_modified,
                                        parse_status, parse_status_v1)

PAYLOADS = Path(__file__).parent / "payloads"
CASES = sorted(p.name for p in PAYLOADS.glob("*.json") if p.name != "garbage.json")


def load(name: str) -> dict:
    # parse_constant keeps 1e400 as JSON decoders do: float("inf")
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", CASES)
def test_payload_file_produces_its_point(name: str) -> None:
    case = load(name)
    report = CoercionReport()
    parse = parse_status_v1 if case.get("api") == "v1" else parse_status
    points = parse(case["status"], case["serial"], case["time_ns"], report)
    expected = case["expected"]
    if expected is None:
        assert points == []
    else:
        assert len(points) == 1
        point = points[0]
        assert point.measurement == expected["measurement"]
        assert dict(point.tags) == expected["tags"]
        assert point.time_ns == expected["time_ns"]
        assert dict(point.fields) == expected["fields"]
        # Declared types hold exactly (InfluxDB refuses a field whose type changes).
        declared = {fl.name: fl.type.value for fl in STATUS.fields}
        kinds = {"float": float, "integer": int, "boolean": bool, "string": str}
        for field, value in point.fields.items():
            assert type(value) is kinds[declared[field]], field
        line = to_line(point)
        assert line.startswith(f"goe_status,serial={expected['tags']['serial']} ")
        assert line.endswith(f" {expected['time_ns']}") and line.count(" ") >= 2
    assert sorted(field for field, _ in report.rejected) == sorted(case["rejected"])


def test_full_status_is_one_line_of_line_protocol() -> None:
    case = load("full_status_058.json")
    line = to_line(parse_status(case["status"], "012345", case["time_ns"])[0])
    assert line.startswith("goe_status,serial=012345 ")
    assert " car_state=2i," in line or ",car_state=2i," in line
    assert "voltage_l1_v=232.81" in line
    assert "firmware_version=\"058.2\"" in line
    assert "secret-cloud-key" not in line  # `cak` is an unknown key: never stored
    assert line.endswith(" 1795253400000000000")


def test_same_status_gives_the_same_point_identity() -> None:
    case = load("filtered_status_cloud.json")
    first = parse_status(case["status"], "000042", case["time_ns"])[0]
    again = parse_status(json.loads(json.dumps(case["status"])), "000042", case["time_ns"])[0]
    assert first.key() == again.key() and first == again


def test_garbage_is_dropped_with_a_source_error() -> None:
    case = load("garbage.json")
    for body in case["garbage"]:
        for parse in (parse_status, parse_status_v1):
            with pytest.raises(SourceError) as info:
                parse(body, case["serial"], case["time_ns"])
            assert info.value.action is Action.DROP
            assert case["serial"] in str(info.value)


def test_all_zero_nrg_is_recognised_but_kept() -> None:
    assert nrg_all_zero(load("firmware_60_4_zero_nrg.json")["status"])
    assert not nrg_all_zero(load("full_status_058.json")["status"])
    assert not nrg_all_zero({"nrg": None})
    assert not nrg_all_zero({"nrg": [0, 0]})


@pytest.mark.parametrize("raw, clean", [
    (232.8099976, 232.81), (15.9499998, 15.95), (11057.6699219, 11057.67), (230.0, 230.0),
    (0.1, 0.1), (-0.0, -0.0), (7, 7), ("231.5", "231.5"), (None, None), (True, True),
])
def test_denoise_strips_float32_noise_only(raw, clean) -> None:
    result = denoise(raw)
    assert result == clean and type(result) is type(clean)


@pytest.mark.parametrize("header, expected", [
    ("Sat, 21 Nov 2026 09:30:00 GMT", 1795253400_000000000),
    ("Sat, 21 Nov 2026 10:30:00 +0100", 1795253400_000000000),
    ("2026-11-21T09:30:00Z", 1795253400_000000000),
    ("2026-11-21T09:30:00.250+00:00", 1795253400_250000000),
    ("2026-11-21 09:30:00", 1795253400_000000000),
    ("1795253400", 1795253400_000000000),
    ("1795253400500", 1795253400_500000000),
    ("yesterday", None), ("", None), (None, None), ("-1", None), ("nan", None),
])
def test_last_modified_formats(header, expected) -> None:
    assert parse_last_modified(header) == expected


# A number is a garbled value (go-e sends text), not evidence of another charger.
@pytest.mark.parametrize("sse, same", [("060435", True), (60435, True), (12345, True),
                                       ("60435", True), (None, True), ("", True),
                                       ("060436", False)])
def test_a_status_that_reports_another_serial_is_refused(sse, same) -> None:
    status = load("api_v1_v3_tma_051.json")["status"]
    status["sse"] = sse
    for parse in (parse_status, parse_status_v1):
        if same:
            assert parse(status, "060435", 0)
        else:
            with pytest.raises(SourceError, match="reports serial 060436") as err:
                parse(status, "060435", 0)
            assert err.value.action is Action.CONFIG
