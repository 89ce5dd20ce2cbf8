"""`trx` and the RFID card list on recorded payloads (payloads/cards/README.md says whence)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collector.measurement import CoercionReport
from collector.sources.goe.parse import card_label, parse_cards

CARDS = Path(__file__).parent / "payloads" / "cards"
CASES = sorted(p.name for p in CARDS.glob("*.json"))


def load(name: str) -> dict:
    return json.loads((CARDS / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", CASES)
def test_card_labels(name: str) -> None:
    # the card list and transaction points of each case: tests/sources/payloads.py
    case = load(name)
    cards = parse_cards(case["status"], case["serial"], case["time_ns"], v1=case.get("api") == "v1")
    names = {int(p.tags["card"]): p.fields["name"] for p in cards}
    for trx, label in case["expected_labels"].items():
        assert card_label(None if trx == "null" else int(trx), names) == label


def test_recordings_are_marked_as_such_and_the_constructed_one_too() -> None:
    readme = (CARDS / "README.md").read_text(encoding="utf-8")
    for name in CASES:
        assert f"`{name}`" in readme, name
        assert name.startswith(("recorded_", "constructed_")), name


def test_a_broken_card_list_is_reported_not_raised() -> None:
    report = CoercionReport()
    points = parse_cards({"cards": "nope", "c3n": "Kim", "c3i": "maybe"}, "012345", 1, report=report)
    assert [(p.tags["card"], p.fields) for p in points] == [("4", {"name": "Kim"})]
    assert sorted(name for name, _ in report.rejected) == ["cards", "learned"]
