"""Runs a payload file's parser; shared by the parse tests and by `python -m` to (re)write the
expected points of a new payload file, which are then checked by hand before committing."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from collector.sources.ovms import parse

PAYLOADS = Path(__file__).parent / "payloads"


def run_case(case: dict[str, Any]) -> tuple[list[dict[str, Any]], Any]:
    kind = case["parser"]
    vehicle = case["vehicle"]
    if kind in ("status", "charge"):
        result = parse.parse_status(case["response"], vehicle, case.get("previous"), case.get("default_units", "K"))
    elif kind == "location":
        result = parse.parse_location(case["response"], vehicle, case.get("previous"), case.get("default_units", "K"))
    elif kind == "tpms":
        result = parse.parse_tpms(case["response"], vehicle, case.get("previous"))
    elif kind == "history":
        result = parse.parse_history(case["response"], vehicle, case["record_type"], case.get("units"))
    else:
        raise ValueError(kind)
    points = [point_json(p) for p in result.points]
    return points, result


def point_json(point: Any) -> dict[str, Any]:
    when = datetime.fromtimestamp(point.time_ns // 1_000_000_000, tz=timezone.utc)
    return {"measurement": point.measurement, "tags": dict(point.tags), "fields": dict(point.fields),
            "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "time_ns": point.time_ns}


def main() -> None:
    for name in sys.argv[1:]:
        path = PAYLOADS / name
        case = json.loads(path.read_text())
        case["points"], _ = run_case(case)
        path.write_text(json.dumps(case, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
