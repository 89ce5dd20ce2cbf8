"""Builds `store_v1.db`, a local store in the version-1 format, for the migration test.

Run with the code of a version that wrote that format on the path (store.py before the compact
layout, e.g. commit 57aed07): `PYTHONPATH=<checkout> python tests/data/make_store_v1.py`.
It holds shipped, pending, merged and dead-lettered points, strings, booleans, integers,
floats that do and do not pack, several series, and cursors.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from collector.points import Point
from collector.store import Store

HERE = Path(__file__).resolve().parent
T0 = 1_780_000_000_000_000_000
GOE = json.loads((HERE.parent / "sources" / "goe" / "payloads" / "full_status_058.json").read_text())


def goe(t: int) -> Point:
    status = GOE["status"]
    nrg = status["nrg"]
    return Point("goe_status", {"serial": "000001"}, {
        "voltage_l1_v": nrg[0] + t % 3, "voltage_l2_v": nrg[1], "current_l1_a": 16.02,
        "power_w": 7100.5 + t, "power_factor_l1_pct": 99.0, "car_state": 2 if t < 20 else 4,
        "charging_allowed": t < 20, "energy_total_wh": 4182731 + 3 * t,
        "energy_session_wh": 5218.447 + t, "firmware_version": "058.2", "rssi_dbm": -61,
        "uptime_s": 5000.5 + t}, T0 + t * 10**9)


def main() -> None:
    path = HERE / "store_v1.db"
    path.unlink(missing_ok=True)
    store = Store(path)
    store.append([goe(t) for t in range(30)], cursors={"goe:000001:last_modified": str(T0)})
    store.append([Point("evcc_site", {"site": "home"}, {"pv_power_w": 1234.5, "currency": "EUR",
                                                         "version": "0.301.1"}, T0 + t * 10**9)
                  for t in range(10)])
    store.mark_shipped(store.next_batch(25))                      # goe 0..24 shipped
    odd = Point("m x", {"t,k": "a=b c"}, {"big": 1e16, "s": 'a"b\\c\nd', "on": False,
                                          "n": -(2**63)}, T0)
    store.append([odd, Point("refused", {}, {"v": 7}, T0)])
    store.append([goe(t) for t in range(30, 40)], cursors={"goe:000001:last_modified": str(T0 + 40)})
    store.append([Point("goe_status", {"serial": "000001"}, {"error_code": 3}, T0 + 2 * 10**9)])
    batch = store.next_batch(100)
    refused = next(item for item in batch if item.line.startswith("refused"))
    store.dead_letter(refused, "InfluxDB answered HTTP 400: field type conflict")
    store.close()
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
