"""Parse tests beyond the points of each case (those: tests/sources/payloads.py)."""

from __future__ import annotations

import json

import pytest

from collector.http_outcomes import Action, SourceError
from collector.measurement import CoercionReport
from collector.sources.evenergy.parse import (format_time, parse_command_logs, parse_evses,
                                              parse_status_logs, parse_time_ns)

EVSE = "evse01HSH04KDEWF6Z4DB2J77J74K5"


def _load(payloads_dir, name):
    return json.loads((payloads_dir / name).read_text())


def test_status_logs_page_gives_the_expected_points(payloads_dir):
    report = CoercionReport()
    # the points themselves: status_logs_page.expected (tests/sources/payloads.py)
    parsed = parse_status_logs(_load(payloads_dir, "status_logs_page.json"), EVSE, report)
    # Field types are the declared ones, whatever the payload sent (int watts -> float).
    assert all(type(v) is float for k, v in parsed.points[0].fields.items()
               if k.endswith(("_w", "_wh", "_a", "_v", "_dbm", "_pct", "_s")))
    # The wrong types are left out and reported, not guessed at.
    assert sorted(name for name, _ in report.rejected) == ["charge_power_w", "voltage_millivolts"]
    assert len(parsed.skipped_items) == 2         # the null sampled_at and the string item
    assert parsed.newest_ns == 1713346785984584000
    assert parsed.oldest_ns == 1713345585000000000


def test_command_logs_page_keeps_unknown_reasons_and_leaves_nulls_out(payloads_dir):
    # the points themselves: command_logs_page.expected (tests/sources/payloads.py)
    parsed = parse_command_logs(_load(payloads_dir, "command_logs_page.json"), EVSE)
    assert parsed.skipped_items == ["item 3 has no usable logged_at: 'yesterday'"]


def test_evses_page_tolerates_a_missing_cpid_and_skips_items_without_an_id(payloads_dir):
    ids, skipped = parse_evses(_load(payloads_dir, "evses_page.json"))
    assert ids == ["evse01HSH04KDEWF6Z4DB2J77J74K5", "evse01HSH04KDEWF6Z4DB2J77J74K6"]
    assert skipped == ["item 2 has no usable id"]


@pytest.mark.parametrize("payload", [{"detail": "oops"}, "text", None, 3])
def test_a_payload_that_is_not_a_list_is_dropped(payload):
    for parse in (parse_status_logs, parse_command_logs):
        with pytest.raises(SourceError) as info:
            parse(payload, EVSE)
        assert info.value.action is Action.DROP


def test_an_empty_page_is_no_points_and_no_times():
    parsed = parse_status_logs([], EVSE)
    assert parsed.points == [] and parsed.newest_ns is None and parsed.oldest_ns is None


@pytest.mark.parametrize("text, ns", [
    ("2024-04-17T09:39:45.984584Z", 1713346785984584000),
    ("2024-04-17T09:39:45Z", 1713346785000000000),
    ("2024-04-17T11:39:45.5+02:00", 1713346785500000000),
    ("2024-04-17T09:39:45.123456789Z", 1713346785123456789),
    ("2024-04-17T09:39:45", 1713346785000000000),
])
def test_times_are_exact_nanoseconds(text, ns):
    assert parse_time_ns(text) == ns


@pytest.mark.parametrize("text", ["", "yesterday", "2024-13-01T00:00:00Z", None, 17133467])
def test_unusable_times_are_none(text):
    assert parse_time_ns(text) is None


def test_format_time_floors_or_ceils_to_the_microsecond():
    ns = 1713346785123456789
    assert format_time(ns) == "2024-04-17T09:39:45.123456Z"
    assert format_time(ns, round_up=True) == "2024-04-17T09:39:45.123457Z"
    assert parse_time_ns(format_time(1713346785984584000)) == 1713346785984584000
