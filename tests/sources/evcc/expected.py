"""Points as comparable rows, and how MQTT points are compared with REST's.

The points each payload file must give are in `<payload>.expected` beside it, checked by the
one payload harness (`tests/sources/payloads.py`).
"""

from __future__ import annotations

import pytest

from collector.points import Point
from collector.sim.evcc import parse_version


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
