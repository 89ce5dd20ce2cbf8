"""statement: a month's sessions per vehicle or card, totals that are the sums of the rows,
the holder's details, meters beside the sessions; and both HTML pages in a real browser."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from collector.analysis import analyse
from collector.cli import main
from collector.config import parse_config
from collector.query import StoreReader, parse_when
from collector.points import Point
from collector.report import html_report
from collector.sessions.config import SessionsSection
from collector.sessions.job import SessionDeriver
from collector.statement import build, html_statement, month_range
from collector.store import Store
from tests.chromium import chromium_binary, open_page
from tests.sessions.timelines import S, goe, ovms_grid, ts

BERLIN = ZoneInfo("Europe/Berlin")
SECTION = {
    "tariff": "fixed", "price": 0.3141, "currency": "EUR", "timezone": "Europe/Berlin",
    "chargers": {"garage": {"goe": "012345", "vehicles": ["company-car"]}},
    "vehicles": {"company-car": {"ovms": "CAR1", "holder": "Alex Example", "plate": "B-EV 2026",
                                 "employer": "Example GmbH, Berlin"}},
    "cards": {"Kim": {"holder": "Kim Tenant", "employer": "flat 2"}},
}


def _points() -> list:
    """Four evenings in March 2026 (Berlin): the company car on card 1 (Alex); a guest on card 2
    (Kim) one evening on the second charger; one evening in April that is not in March."""
    pts, veh = [], []
    eto = {"012345": 1_000_000.0, "999999": 2_000_000.0}
    for day, (serial, card, power) in enumerate([("012345", 1, 7333.3), ("012345", 1, 6999.9),
                                                  ("999999", 2, 3111.1), ("012345", 1, 7100.7)]):
        start = ts("2026-03-29T18:00:00+02:00") + day * 86400 * S
        day_pts = goe(start, [(600, 1, 0), (3 * 3600 + 170, 2, power), (1200, 4, 0), (600, 1, 0)],
                      serial=serial, eto=eto[serial], solar_share=0.3 if day % 2 else None)
        eto[serial] = day_pts[-1].fields["energy_total_wh"] + 1     # the meter goes on from there
        for p in day_pts:
            if p.fields["car_state"] != 1:
                p.fields["transaction_card"] = card
        pts += day_pts
        if serial == "012345":
            veh += ovms_grid("CAR1", [(start, "stopped", {"soc_pct": 40.0}),
                                      (start + 660 * S, "charging", {"soc_pct": 40.0, "odometer_km": 1000.0 + day}),
                                      (start + 11400 * S, "done", {"soc_pct": 70.0, "odometer_km": 1000.0 + day,
                                                                   "charge_energy_wh": power * 3 * 0.9})])
    cards = [Point("goe_card", {"serial": serial, "card": str(n)}, {"name": name, "learned": True},
                   ts("2026-03-27T12:00:00+00:00"))
             for serial in ("012345", "999999") for n, name in ((1, "Alex"), (2, "Kim"))]
    return [Point(p.measurement, p.tags, p.fields, p.time_ns) for p in pts + veh] + cards


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("statement") / "s.db"
    st = Store(path)
    st.append(_points())
    cfg = SessionsSection(**SECTION)
    sessions, _ = SessionDeriver(cfg, st, None).derive(ts("2026-04-10T00:00:00+00:00"))
    assert len(sessions) == 4
    st.append(sessions)
    yield st, path
    st.close()


def _config(tmp_path: Path, db: Path) -> Path:
    lines = [f'[store]\npath = "{db}"\n[sessions]\ntariff = "fixed"\nprice = 0.3141\ntimezone = "Europe/Berlin"',
             '[sessions.chargers.garage]\ngoe = "012345"\nvehicles = ["company-car"]',
             '[sessions.vehicles.company-car]\novms = "CAR1"\nholder = "Alex Example"\nplate = "B-EV 2026"\n'
             'employer = "Example GmbH, Berlin"', '[sessions.cards.Kim]\nholder = "Kim Tenant"']
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _read(path: Path) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The key-value rows before the empty row, and the table after it."""
    text = path.read_text(encoding="utf-8")
    head, table = text.split("\n\n", 1)
    facts = {row[0]: row[1] for row in csv.reader(io.StringIO(head))}
    return facts, list(csv.DictReader(io.StringIO(table)))


def test_month_is_local_time():
    start, end = month_range("2026-03", BERLIN)
    assert start == parse_when("2026-03-01", BERLIN) and end == parse_when("2026-04-01", BERLIN)
    assert (end - start) // S == 31 * 86400 - 3600            # the spring-forward night


def test_vehicle_statement_totals_holder_meters(store, tmp_path, capsys):
    _, db = store
    config = _config(tmp_path, db)
    assert main(["statement", "--month", "2026-03", "--config", str(config), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr()
    written = sorted(p.name for p in tmp_path.glob("statement-*"))
    assert written == ["statement-Kim-2026-03.csv", "statement-Kim-2026-03.html", "statement-Kim-2026-03.pdf",
                       "statement-company-car-2026-03.csv", "statement-company-car-2026-03.html",
                       "statement-company-car-2026-03.pdf"]
    assert "vehicle company-car: 2 sessions" in out.out       # the April evening is not in March
    facts, rows = _read(tmp_path / "statement-company-car-2026-03.csv")
    assert (facts["holder"], facts["licence plate"], facts["employer"]) == (
        "Alex Example", "B-EV 2026", "Example GmbH, Berlin")
    assert facts["tariff method"].startswith("fixed: the holder's tariff, 0.3141 EUR/kWh")
    assert "go-eCharger's internal meter (eto) of goe:012345" in facts["measured"]
    sessions, total = rows[:-1], rows[-1]
    assert total["start"] == "total" and len(sessions) == 2
    for column in ("energy_kwh", "solar_kwh", "grid_kwh", "amount", "grid_cost"):
        summed = sum(int(r[column].replace(".", "")) for r in sessions if r[column])
        assert int(total[column].replace(".", "")) == summed, column   # exact, in Wh and cents
    for r in sessions:
        assert r["card"] == "Alex" and r["meter_check"] == "ok" and r["price_source"] == "fixed"
        assert int(r["meter_end_wh"]) - int(r["meter_start_wh"]) == pytest.approx(float(r["energy_kwh"]) * 1000, abs=2)
        assert float(r["amount"]) == pytest.approx(float(r["energy_kwh"]) * 0.3141, abs=0.006)
        assert r["odometer_km"] in ("1000.0", "1001.0")
    meter = facts["meter goe:012345 eto"]
    assert re.search(r"it counted ([\d.]+) kWh; this statement's sessions measured by it: ([\d.]+) kWh", meter)
    counted, ours = (float(x) for x in re.findall(r"([\d.]+) kWh", meter))
    assert counted == pytest.approx(ours, abs=0.01)          # nobody else charged on it in March
    kim_facts, kim_rows = _read(tmp_path / "statement-Kim-2026-03.csv")
    assert kim_facts["card"] == "Kim" and kim_facts["holder"] == "Kim Tenant" and len(kim_rows) == 2
    assert (tmp_path / "statement-company-car-2026-03.pdf").read_bytes().startswith(b"%PDF")


def test_one_card_or_vehicle_and_mistakes(store, tmp_path, capsys):
    _, db = store
    assert main(["statement", "--month", "2026-03", "--store", str(db), "--card", "Alex",
                 "--out", str(tmp_path), "--tz", "Europe/Berlin", "--no-pdf"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["statement-Alex-2026-03.csv", "statement-Alex-2026-03.html"]
    facts, rows = _read(tmp_path / "statement-Alex-2026-03.csv")
    assert facts["card"] == "Alex" and facts["holder"] == "" and len(rows) == 3   # two sessions and the total
    assert main(["statement", "--month", "2026-13", "--store", str(db)]) == 2
    assert "--month must be YYYY-MM" in capsys.readouterr().err


def _month_of_demo() -> tuple[str, datetime]:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    # the month the demo's last completed charges fall in (the first days of a month have none yet)
    return (now - timedelta(days=2)).strftime("%Y-%m"), now


def test_statement_for_the_current_month_of_the_demo(tmp_path, capsys):
    from collector.demo import demo_config
    from collector.sources import demo_hooks
    from collector.history import generate_history
    from collector.sim.world import build_simulators

    month, now = _month_of_demo()
    text = demo_config(dict.fromkeys(demo_hooks(), "http://127.0.0.1:9"), build_simulators())
    config = tmp_path / "config.toml"
    config.write_text(text)
    cfg = parse_config(__import__("tomllib").loads(text))
    st = Store(tmp_path / "ev-collector.db", synchronous="normal")
    generate_history(st, now - timedelta(days=3), now)
    sessions, _ = SessionDeriver(cfg.sessions, st, None).derive(int(now.timestamp()) * S)
    st.append(sessions)
    st.close()
    out = tmp_path / "out"
    assert main(["statement", "--month", month, "--config", str(config), "--out", str(out), "--no-pdf"]) == 0
    facts, rows = _read(out / f"statement-company-car-{month}.csv")
    assert facts["holder"] == "Alex Example" and rows[-1]["start"] == "total" and len(rows) >= 2
    for r in rows[:-1]:
        assert r["card"] == "Alex" and r["meter_start_wh"] and r["meter_end_wh"] and r["meter_check"] == "ok"
    assert (out / f"statement-company-car-{month}.html").read_text().startswith("<!DOCTYPE html>")


@pytest.mark.skipif(chromium_binary() is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_and_statement_pages_load_in_chromium_without_errors(store, tmp_path):
    st, _ = store
    reader = StoreReader(st)
    a = analyse(reader, parse_when("2026-03-01", BERLIN), parse_when("2026-04-01", BERLIN), BERLIN)
    report = tmp_path / "report.html"
    report.write_text(html_report(a), encoding="utf-8")
    [car] = [s for s in build(reader, "2026-03", BERLIN, SessionsSection(**SECTION))[0] if s.who == "company-car"]
    statement = tmp_path / "statement.html"
    statement.write_text(html_statement(car), encoding="utf-8")

    page = open_page(report, ("svg", "table", "tfoot"))
    assert page.problems == []
    assert page.counts["svg"] == 3 and page.counts["tfoot"] >= 4
    total_kwh = f"{a.totals['wall_wh'] / 1000:,.3f}"
    assert "EV charging report" in page.text and total_kwh in page.text
    assert f"{a.totals['cost_ct'] / 100:,.2f} EUR" in page.text and "garage" in page.text

    page = open_page(statement, ("tbody tr", "tfoot"))
    assert page.problems == []
    assert page.counts["tbody tr"] == 2 and page.counts["tfoot"] == 1
    for expected in ("Alex Example", "B-EV 2026", "Example GmbH, Berlin",
                     f"{car.totals['wall_wh'] / 1000:,.3f}", f"{car.totals['grid_only_cost_ct'] / 100:,.2f}"):
        assert expected in page.text, expected


def test_the_browser_check_sees_a_console_error(tmp_path):
    """The check itself: a page that logs an error is reported, so a clean run means something."""
    if chromium_binary() is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><p>x</p><script>console.error('boom')</script>"
                   "<img src='missing.png'></body></html>")
    page = open_page(bad)
    assert any("boom" in p for p in page.problems)
    assert any("missing.png" in p or "ERR_FILE_NOT_FOUND" in p for p in page.problems)
