"""report: the terminal summary and an offline HTML file agree with the stored sessions."""

from __future__ import annotations

import re
import xml.dom.minidom
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from collector.analysis import analyse, energy_by_day
from collector.cli import main
from collector.query import StoreReader, parse_when
from collector.points import Point
from collector.report import html_report, period_range, summary_text
from collector.sessions.config import SessionsSection
from collector.sessions.job import SessionDeriver
from collector.store import Store
from tests.sessions.timelines import S, goe, ovms_grid, ts

UTC = ZoneInfo("UTC")
CFG = SessionsSection(tariff="fixed", price=0.3, chargers={"garage": {"goe": "012345", "vehicles": ["ioniq"]}},
                      vehicles={"ioniq": {"ovms": "IONIQ1"}})


def _fill(store: Store) -> None:
    start = ts("2026-01-31T20:00:00+00:00")        # across the month end
    day = [(3600, 1, 0), (3 * 3600, 2, 3000), (600, 4, 0), (3600 * 20 - 600, 1, 0)]
    pts = goe(start, day * 3, solar_share=0.5, step_s=300)
    veh = []
    for k in range(3):
        t = start + (k * 86400 + 3600) * S
        veh += ovms_grid("IONIQ1", [(t - 600 * S, "stopped", {"soc_pct": 40.0}),
                                    (t + 60 * S, "charging", {"soc_pct": 40.0}),
                                    (t + 3 * 3600 * S, "done", {"soc_pct": 52.0, "charge_energy_wh": 8100.0})])
    store.append([Point(p.measurement, p.tags, p.fields, p.time_ns) for p in pts + veh])
    sessions, _ = SessionDeriver(CFG, store, None).derive(start + 5 * 86400 * S)
    store.append(sessions)


def test_summary_and_html(tmp_path):
    store = Store(":memory:")
    _fill(store)
    a = analyse(StoreReader(store), parse_when("2026-01-01", UTC), parse_when("2026-03-01", UTC), UTC)
    t = a.totals
    assert t["sessions"] == 3
    assert t["wall_wh"] == 27000.0
    assert (t["solar_wh"], t["grid_wh"], t["battery_wh"], t["unsplit_wh"]) == (13500.0, 13500.0, 0.0, 0.0)
    assert t["solar_pct"] == pytest.approx(50.0)
    assert t["cost_ct"] == round(27 * 0.5 * 0.3 * 100)
    assert t["savings_ct"] == round(27 * 0.5 * 0.3 * 100)
    assert t["efficiency_pct"] == pytest.approx(90.0)
    assert list(a.per_vehicle["vehicle"]) == ["ioniq"]
    assert list(a.per_month["month"]) == ["2026-01", "2026-02"]
    assert energy_by_day(a)[["solar", "grid"]].sum().sum() == 27000.0
    [meter] = a.meters.to_dict("records")     # three sessions back to back: nothing between them
    assert (meter["meter"], meter["charger"], meter["sessions"]) == ("goe:012345 eto", "garage", 3)
    assert meter["sessions_wh"] == 27000.0 and meter["advanced"] == pytest.approx(27000.0, abs=3)
    text = summary_text(a)
    assert "27.000 kWh" in text and "ioniq" in text and "garage" in text and "90 %" in text
    page = html_report(a)
    svgs = re.findall(r"<svg.*?</svg>", page, re.S)
    assert len(svgs) == 3
    for svg in svgs:
        xml.dom.minidom.parseString(svg)            # well-formed
    assert not re.search(r"(src|href)=\"https?:", page)   # nothing fetched from anywhere
    assert "<script" not in page
    store.close()


def _rows_sum(frame, column):
    return float(frame[column].sum())


def test_every_headline_is_the_sum_of_its_rows_to_the_wh_and_cent():
    """Sessions with fractional Wh and prices: rounded once per session, every total adds up."""
    store = Store(":memory:")
    start = ts("2026-03-01T17:00:00+00:00")
    pts = []
    for k, (serial, power, share) in enumerate([("012345", 7333.3, 0.37), ("999999", 3111.1, None),
                                                 ("012345", 6999.9, 0.21), ("999999", 2222.7, None)]):
        pts += goe(start + k * 86400 * S, [(600, 1, 0), (3 * 3600 + 17, 2, power), (600, 1, 0)],
                   serial=serial, solar_share=share, step_s=60, eto=1000.0 * (k + 1))
    store.append([Point(p.measurement, p.tags, p.fields, p.time_ns) for p in pts])
    cfg = SessionsSection(tariff="fixed", price=0.3117)
    sessions, _ = SessionDeriver(cfg, store, None).derive(start + 10 * 86400 * S)
    store.append(sessions)
    a = analyse(StoreReader(store), parse_when("2026-03-01", UTC), parse_when("2026-04-01", UTC), UTC)
    t = a.totals
    for frame in (a.per_charger, a.per_vehicle, a.per_day, a.per_month):
        for column in ("wall_wh", "solar_wh", "grid_wh", "battery_wh", "unsplit_wh", "cost_ct", "savings_ct"):
            assert _rows_sum(frame, column) == t[column], column
    assert t["solar_wh"] + t["grid_wh"] + t["battery_wh"] + t["unsplit_wh"] == t["wall_wh"]
    text = summary_text(a)
    charger_lines = text.split("Per charger")[1].split("Per vehicle")[0].strip().splitlines()[1:-1]
    shown = sum(float(line.split()[2].replace(",", "")) for line in charger_lines)
    assert f"{shown:,.3f}" == f"{t['wall_wh'] / 1000:,.3f}"      # the displayed rows add up too
    assert "(no vehicle)" in set(a.per_vehicle["vehicle"])       # sessions without a car still count
    store.close()


def test_period_range_local_calendar():
    now = datetime(2026, 3, 15, 12, 0, tzinfo=timezone.utc)
    berlin = ZoneInfo("Europe/Berlin")
    start, end = period_range("year", now, berlin)
    assert start == parse_when("2026-01-01", berlin)
    assert period_range("month", now, berlin)[0] == parse_when("2026-03-01", berlin)


def test_cli_report_html(tmp_path, capsys):
    path = tmp_path / "s.db"
    store = Store(path)
    _fill(store)
    store.close()
    out = tmp_path / "r.html"
    assert main(["report", "--store", str(path), "--from", "2026-01-01", "--to", "2026-03-01",
                 "--html", str(out)]) == 0
    assert re.search(r"sessions +3 ", capsys.readouterr().out)
    assert out.read_text().startswith("<!DOCTYPE html>")
