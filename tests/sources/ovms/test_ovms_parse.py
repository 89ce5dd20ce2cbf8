"""The rules behind the points of the payload files (the points: tests/sources/payloads.py)."""

from __future__ import annotations

import json

import pytest

from collector.http_outcomes import Action, SourceError
from collector.sources.ovms import parse

from .payload_cases import PAYLOADS, run_case


def load(name: str) -> dict:
    return json.loads((PAYLOADS / name).read_text())


def fields_of(name: str, measurement: str) -> dict:
    points, _ = run_case(load(name))
    [point] = [p for p in points if p["measurement"] == measurement]
    return point["fields"]


def test_strings_become_declared_numbers_and_bit_flags_become_booleans():
    fields = fields_of("status_km.json", "ovms_vehicle")
    assert fields["battery_temperature_c"] == 24.0 and isinstance(fields["battery_temperature_c"], float)
    assert fields["parking_time_s"] == 2882 and isinstance(fields["parking_time_s"], int)
    # charging 16, carlocked 8, handbrake 64, carawake 2, trunk 128 are true; 0 is false
    assert fields["charging"] is True and fields["locked"] is True and fields["awake"] is True
    assert fields["trunk_open"] is True and fields["car_on"] is False
    # stale indicators keep their three states
    assert fields["stale_temps"] == 1 and fields["stale_ambient"] == 0


def test_charge_type_as_text_and_as_number_each_keep_one_field_type():
    # InfluxDB fixes a field's type: text goes to its own string field, never into the integer
    text = fields_of("charge_type_text_constructed.json", "ovms_charge")
    assert text["charge_type"] == "type2" and "charge_type_id" not in text
    number = fields_of("charge_miles.json", "ovms_charge")
    assert number["charge_type_id"] == 0 and "charge_type" not in number
    assert {f.name: f.type.value for f in parse.CHARGE.fields if f.name.startswith("charge_type")} == \
        {"charge_type_id": "integer", "charge_type": "string"}


def test_each_part_is_timestamped_with_its_own_message_time():
    points, _ = run_case(load("status_km.json"))
    times = {p["measurement"]: p["time"] for p in points}
    assert times == {"ovms_charge": "2026-11-20T18:44:00Z", "ovms_vehicle": "2026-11-20T18:45:00Z"}


def test_miles_are_converted_to_km():
    charge = fields_of("charge_miles.json", "ovms_charge")
    assert charge["ideal_range_km"] == pytest.approx(163 * 1.609344)
    assert charge["distance_units"] == "M"
    vehicle = fields_of("status_miles_d_only.json", "ovms_vehicle")
    assert vehicle["odometer_km"] == pytest.approx(60874.2 * 1.609344)
    location = fields_of("location_miles.json", "ovms_location")
    assert location["speed_kmh"] == pytest.approx(31.1 * 1.609344)
    assert location["trip_km"] == pytest.approx(8.1 * 1.609344)


def test_empty_object_gives_nothing():
    for parser in (parse.parse_status, parse.parse_location, parse.parse_tpms):
        result = parser({}, "DEMO3")
        assert result.points == [] and result.msgtimes == {}


def test_unchanged_message_time_gives_no_point_for_that_part():
    case = load("status_unchanged.json")
    points, result = run_case(case)
    assert [p["measurement"] for p in points] == ["ovms_vehicle"]
    assert result.msgtimes == {"s": "2026-11-20 18:44:00", "d": "2026-11-20 18:45:00"}


def test_bad_values_are_left_out_and_reported():
    points, result = run_case(load("status_bad_values.json"))
    assert [p["measurement"] for p in points] == ["ovms_charge"]
    assert "soc_pct" not in points[0]["fields"]
    assert [name for name, _ in result.report.rejected] == ["soc_pct"]
    assert any("not a time" in reason for reason in result.skipped)


def test_history_empty_fields_semicolons_and_trailing_fields():
    points, _ = run_case(load("history_trip.json"))
    work = points[1]["fields"]
    assert work["location"] == "Work; Main Street 5; Building B"
    assert work["energy_used_wh"] == 4318.0
    assert work["extra"] == "3.5,extra text"
    sparse = points[2]["fields"]
    assert sparse == {"gps_lock": False, "odometer_km": 62603.4, "soc_pct": 81.0, "record_number": 1}


def test_grid_formats_1_and_2_and_newer():
    points, _ = run_case(load("history_grid.json"))
    assert "odometer_km" not in points[0]["fields"]               # format 1
    assert points[1]["fields"]["odometer_km"] == 97941.9          # format 2
    assert points[2]["fields"]["extra"] == "7.250"                 # a newer firmware's field
    assert points[1]["fields"]["charge_energy_wh"] == 11062.0


def test_same_second_records_stay_distinct_without_a_record_tag():
    points, _ = run_case(load("history_unknown.json"))
    assert len({(p["measurement"], tuple(sorted(p["tags"].items())), p["time_ns"]) for p in points}) == 2
    assert all(set(p["tags"]) == {"vehicle", "record_type"} for p in points)
    assert [p["time_ns"] % 1_000_000_000 for p in points] == [0, 1]


def test_re_reading_history_gives_the_same_identities():
    case = load("history_trip.json")
    first = parse.parse_history(case["response"], "DEMO1", "*-LOG-Trip")
    again = parse.parse_history(case["response"][1:], "DEMO1", "*-LOG-Trip")
    assert {p.key() for p in again.points} <= {p.key() for p in first.points}


def test_history_cursor_is_the_newest_timestamp():
    case = load("history_grid.json")
    result = parse.parse_history(list(reversed(case["response"])), "DEMO2", "*-LOG-Grid")
    assert result.last_timestamp == "2026-11-20 07:31:00"


def test_unusable_payloads_raise_drop():
    with pytest.raises(SourceError) as info:
        parse.parse_status(["not", "an", "object"], "DEMO1")
    assert info.value.action is Action.DROP
    with pytest.raises(SourceError):
        parse.parse_history({"h_data": "x"}, "DEMO1", "*-LOG-Trip")


def test_history_rows_that_are_not_usable_are_skipped_not_fatal():
    result = parse.parse_history([None, {"h_timestamp": "0000-00-00 00:00:00", "h_data": "x"},
                                  {"h_timestamp": "2026-11-20 00:00:00", "h_recordnumber": "x", "h_data": ""}],
                                 "DEMO1", "*-FOO-Bar")
    assert len(result.points) == 1 and result.points[0].fields == {"record_number": 0, "data": ""}
    assert len(result.skipped) == 3


def test_vehicle_list():
    assert parse.parse_vehicles([{"id": "A", "v_net_connected": 1}, {"id": ""}, "junk"]) == ["A"]
