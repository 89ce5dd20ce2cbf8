"""CSV export: columns, units, local days, totals equal to the stored points, and the same CSV
from InfluxDB as from the embedded store."""

from __future__ import annotations

import csv
import io
from zoneinfo import ZoneInfo

import httpx
import pytest

from collector.cli import main
from collector.export import write_csv
from collector.query import InfluxQuery, InfluxReader, StoreReader, parse_when
from collector.query.frames import Request
from collector.points import Point, to_line
from collector.sessions.config import SessionsSection
from collector.sessions.job import SessionDeriver
from collector.store import Store
from tests.sessions.timelines import S, goe, ts

BERLIN = ZoneInfo("Europe/Berlin")


def _points() -> list[Point]:
    """Three days across the DST fall-back night, one session across midnight, 2 chargers."""
    phases = [(3600, 1, 0), (3 * 3600, 2, 3000), (600, 4, 0), (3600, 1, 0)] * 6
    a = goe(ts("2026-10-24T20:00:00+02:00"), phases, serial="012345", solar_share=0.25)
    b = goe(ts("2026-10-24T22:30:00+02:00"), phases[:8], serial="999999", eto=5_000.0)
    return [Point(p.measurement, p.tags, p.fields, p.time_ns) for p in a + b]


@pytest.fixture
def store() -> Store:
    st = Store(":memory:")
    points = _points()
    st.append(points)
    deriver = SessionDeriver(SessionsSection(tariff="fixed", price=0.3), st, None)
    sessions, _ = deriver.derive(max(p.time_ns for p in points) + 86400 * S)
    assert len(sessions) == 8
    st.append(sessions)
    yield st
    st.close()


def export(reader, kind: str, start="2026-10-24", end="2026-10-28", tz=BERLIN, **kw) -> str:
    out = io.StringIO()
    write_csv(Request(kind, parse_when(start, tz), parse_when(end, tz), tz, **kw), reader, out)
    return out.getvalue()


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_daily_local_days_and_totals_equal_the_counters(store):
    daily = rows(export(StoreReader(store), "daily"))
    assert list(daily[0]) == ["date", "epoch_s", "local_time", "charger", "energy_wh",
                              "solar_energy_wh", "grid_energy_wh", "battery_energy_wh", "sessions",
                              "vehicle_energy_wh", "cost", "grid_only_cost", "savings"]
    dst_day = [r for r in daily if r["date"] == "2026-10-25" and r["charger"] == "goe:012345"][0]
    assert dst_day["local_time"] == "2026-10-25T00:00:00+02:00"
    next_day = [r for r in daily if r["date"] == "2026-10-26"][0]
    assert int(next_day["epoch_s"]) - int(dst_day["epoch_s"]) == 25 * 3600   # the long day
    points = [p for p in _points() if p.tags["serial"] == "012345"]
    eto = [p.fields["energy_total_wh"] for p in points]
    total = sum(float(r["energy_wh"]) for r in daily if r["charger"] == "goe:012345")
    assert total == pytest.approx(eto[-1] - eto[0])
    assert sum(int(r["sessions"]) for r in daily) == 8
    cost = sum(float(r["cost"]) for r in daily if r["cost"])
    # 012345: 6 sessions of 9 kWh, a quarter solar; 999999: 2 of 9 kWh from the grid; 0.30/kWh
    assert cost == pytest.approx(6 * 9.0 * 0.75 * 0.3 + 2 * 9.0 * 0.3)


def test_monthly_rolls_up_local_months(store):
    monthly = rows(export(StoreReader(store), "monthly"))
    assert {r["month"] for r in monthly} == {"2026-10"}
    assert monthly[0]["local_time"] == "2026-10-01T00:00:00+02:00"
    daily = rows(export(StoreReader(store), "daily"))
    for charger in ("goe:012345", "goe:999999"):
        assert sum(float(r["energy_wh"]) for r in monthly if r["charger"] == charger) == pytest.approx(
            sum(float(r["energy_wh"]) for r in daily if r["charger"] == charger))


def test_sessions_columns_and_values_equal_stored_points(store):
    text = export(StoreReader(store), "sessions")
    got = rows(text)
    stored = [p for chunk in store.query("charging_session") for p in chunk]
    assert len(got) == len(stored) == 8
    assert list(got[0])[:5] == ["epoch_s", "local_time", "end_local_time", "charger", "vehicle"]
    by_time = {p.time_ns // S: p for p in stored}
    for row in got:
        p = by_time[int(row["epoch_s"])]
        assert float(row["energy_wh"]) == p.fields["energy_wh"]
        assert float(row["cost"]) == p.fields["cost"]
        assert row["charger"] == p.tags["charger"]
    assert sum(float(r["energy_wh"]) for r in got) == pytest.approx(
        sum(p.fields["energy_wh"] for p in stored))


def test_raw_has_one_row_per_point_with_exact_epoch(store):
    got = rows(export(StoreReader(store), "raw", measurement="goe_status", start="2026-10-25T01:00",
                      end="2026-10-25T05:00"))
    points = [p for p in _points() if parse_when("2026-10-25T01:00", BERLIN) <= p.time_ns
              < parse_when("2026-10-25T05:00", BERLIN)]
    assert len(got) == len(points)
    # the repeated hour 02:00-03:00 appears twice, told apart by its offset
    assert any(r["local_time"].startswith("2026-10-25T02:30:00+02:00") for r in got)
    assert any(r["local_time"].startswith("2026-10-25T02:30:00+01:00") for r in got)
    assert {int(r["epoch_s"]) * S for r in got} == {p.time_ns for p in points}


def _influx_reader(influxdb, db, points) -> InfluxReader:
    body = "\n".join(line for line in map(to_line, points) if line)
    r = httpx.post(f"{influxdb.url}/write", params={"db": db, "precision": "ns"}, content=body, timeout=30)
    r.raise_for_status()
    return InfluxReader(InfluxQuery(influxdb.url, db, {}), window_ns=86400 * S)


@pytest.mark.parametrize("kind", ["daily", "monthly", "sessions", "raw"])
def test_influxdb_and_store_give_the_same_csv(store, influxdb, influx_db, kind):
    everything = [Point(p.measurement, p.tags, p.fields, p.time_ns)
                  for m in ("goe_status", "charging_session") for chunk in store.query(m) for p in chunk]
    reader = _influx_reader(influxdb, influx_db, everything)
    try:
        kw = {"measurement": "goe_status"} if kind == "raw" else {}
        from_store = export(StoreReader(store), kind, **kw)
        from_influx = export(reader, kind, **kw)
    finally:
        reader.close()
    assert from_store.count("\n") > 2
    assert from_influx == from_store


def test_cli_export_to_file_and_errors(tmp_path, capsys):
    path = tmp_path / "s.db"
    st = Store(path)
    st.append(_points())
    st.close()
    out = tmp_path / "daily.csv"
    assert main(["export", "daily", "--store", str(path), "--from", "2026-10-24", "--to", "2026-10-28",
                 "--tz", "Europe/Berlin", "--out", str(out), "--quiet"]) == 0
    assert rows(out.read_text())[0]["date"] == "2026-10-24"
    assert main(["export", "raw", "--store", str(path), "--quiet"]) == 2
    assert "needs --measurement" in capsys.readouterr().err
    assert main(["export", "daily", "--store", str(path), "--tz", "Mars/Olympus", "--quiet"]) == 2
    assert main(["export", "daily", "--store", str(tmp_path / "none.db"), "--quiet"]) == 2
