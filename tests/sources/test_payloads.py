"""Every source's payload files give the points written beside them (see payloads.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sources.payloads import ROOT, cases, produce


@pytest.mark.parametrize("case", cases(), ids=lambda p: str(p.relative_to(ROOT).with_suffix("")))
def test_payload_gives_the_expected_points(case: Path) -> None:
    assert produce(case) == case.with_suffix(".expected").read_text(encoding="utf-8")


def test_every_source_has_cases() -> None:
    assert {case.relative_to(ROOT).parts[0] for case in cases()} == {"evcc", "evenergy", "goe", "ovms"}
