"""Expected points beside the payloads: `<payload>.points.json`, checked by test_parse; and
how MQTT points are compared with REST's.

Regenerate after a deliberate schema change with `python -m tests.sources.evcc.expected`,
then review the diff: these files are the contract, not a snapshot to accept blindly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collector.points import Point
from collector.sim.evcc import parse_version

PAYLOADS = Path(__file__).parent / "payloads"
SITE = "home"
POLL_NS = 1_763_683_200_000_000_000  # 2025-11-21T00:00:00Z, the poll time of state payloads


def points_to_json(points: list[Point]) -> list[dict]:
    rows = [{"measurement": p.measurement, "tags": dict(sorted(p.tags.items())),
             "time_ns": p.time_ns, "fields": dict(sorted(p.fields.items()))} for p in points]
    return sorted(rows, key=lambda r: (r["measurement"], sorted(r["tags"].items()), r["time_ns"]))


def assert_same_points(mqtt: list[dict], rest: list[dict], version: str) -> None:
    """MQTT gives REST's points, as precise as evcc's MQTT float format allows: "%.5g" up to
    0.300.6 (5 significant digits), three decimals later (what REST carries too)."""
    assert [(r["measurement"], r["tags"], r["time_ns"], sorted(r["fields"])) for r in mqtt] == \
        [(r["measurement"], r["tags"], r["time_ns"], sorted(r["fields"])) for r in rest]
    coarse = parse_version(version) <= (0, 300, 6)
    for got, want in zip(mqtt, rest):
        for name, value in want["fields"].items():
            if isinstance(value, float) and coarse:
                assert got["fields"][name] == pytest.approx(value, rel=5.1e-5, abs=1e-3), name
            else:
                assert got["fields"][name] == value, name


def produce(name: str) -> list[Point]:
    from collector.sources.evcc.parse import parse_sessions, parse_state, parse_tariff

    payload = json.loads((PAYLOADS / name).read_text())
    if name.startswith("state_"):
        return parse_state(payload, SITE, POLL_NS)
    if name.startswith("sessions"):
        return parse_sessions(payload, SITE).points
    kind = name.split("_")[1].split(".")[0]
    return parse_tariff(payload, SITE, kind)


CASES = ["state_0301_bare.json", "state_nulls.json", "state_wrong_types.json", "sessions.json",
         "tariff_grid_0207.json", "tariff_solar.json",
         # recorded from real systems (see README.md beside the payloads)
         "state_0111_target_soc.json", "sessions_2026_identifier_nul.json",
         # constructed from evcc's source: no public recording yet
         "sessions_0304_reference_constructed.json"]


if __name__ == "__main__":
    for case in CASES:
        out = PAYLOADS / case.replace(".json", ".points.json")
        out.write_text(json.dumps(points_to_json(produce(case)), indent=1) + "\n")
        print("wrote", out)
