"""Runs an OVMS case file's parser: the response and the call's parameters (`parser`,
`vehicle`, `previous` message times, units). Shared by the payload harness
(`tests/sources/payloads.py`) and the parse tests that look into the points."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from collector.sources.ovms import parse

PAYLOADS = Path(__file__).parent / "payloads"


def parse_case(case: dict[str, Any]) -> Any:
    kind = case["parser"]
    vehicle = case["vehicle"]
    if kind in ("status", "charge"):
        return parse.parse_status(case["response"], vehicle, case.get("previous"), case.get("default_units", "K"))
    if kind == "location":
        return parse.parse_location(case["response"], vehicle, case.get("previous"), case.get("default_units", "K"))
    if kind == "tpms":
        return parse.parse_tpms(case["response"], vehicle, case.get("previous"))
    if kind == "history":
        return parse.parse_history(case["response"], vehicle, case["record_type"], case.get("units"))
    raise ValueError(kind)


def run_case(case: dict[str, Any]) -> tuple[list[dict[str, Any]], Any]:
    result = parse_case(case)
    return [point_json(p) for p in result.points], result


def point_json(point: Any) -> dict[str, Any]:
    when = datetime.fromtimestamp(point.time_ns // 1_000_000_000, tz=timezone.utc)
    return {"measurement": point.measurement, "tags": dict(point.tags), "fields": dict(point.fields),
            "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "time_ns": point.time_ns}
