"""A source from outside the collector's tree (tests/fake_source) is a first-class source once
registered: its configuration is validated, its measurement is in the schema, the demo serves
its simulator and writes its section and history, and the export knows it. Central code is
not touched: the registry is the only line."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from collector import cli
from collector.config import ConfigError, load_config, parse_config
from collector.demo import Demo, demo_config
from collector.history import generate_history
from collector.schema import all_measurements, render_markdown
from collector.sim.world import build_simulators
from collector.sources import REGISTRY, demo_hooks
from collector.store import Store

END = datetime(2026, 3, 2, tzinfo=timezone.utc)


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setitem(REGISTRY, "fake", "tests.fake_source")


def test_its_section_is_validated_like_any_source(fake):
    config = parse_config({"sources": {"fake": {"url": "http://meter.lan", "interval": "2m"}}})
    assert (config.sources.fake.url, config.sources.fake.interval) == ("http://meter.lan", 120.0)
    with pytest.raises(ConfigError, match=r"sources\.fake\.colour: unknown key"):
        parse_config({"sources": {"fake": {"url": "http://meter.lan", "colour": "red"}}})
    with pytest.raises(ConfigError, match=r"sources\.fake\.url: missing required key"):
        parse_config({"sources": {"fake": {}}})


def test_without_the_registry_line_it_is_unknown():
    with pytest.raises(ConfigError, match=r"sources\.fake: unknown key"):
        parse_config({"sources": {"fake": {"url": "http://meter.lan"}}})
    assert "fake_meter" not in {m.name for m in all_measurements()}


def test_its_measurement_is_in_the_schema(fake):
    [meter] = [m for m in all_measurements() if m.name == "fake_meter"]
    assert meter.source == "fake"
    assert "## `fake_meter`" in render_markdown(all_measurements())


def test_the_demo_serves_it_and_writes_its_section_and_history(fake, tmp_path):
    world = build_simulators(seed=1)
    text = demo_config({name: "http://127.0.0.1:9" for name in demo_hooks()}, world)
    path = tmp_path / "config.toml"
    path.write_text(text)
    assert load_config(path).sources.fake.url == "http://127.0.0.1:9"

    demo = Demo(cli.build_parser().parse_args(["demo", "--workdir", str(tmp_path / "demo")]))
    try:
        urls = demo.start_simulators()
        reading = httpx.get(urls["fake"] + "/reading", timeout=5).json()
    finally:
        demo.stop_simulators()
    assert reading["energy_wh"] > 0

    store = Store(tmp_path / "history.db")
    try:
        counts = generate_history(store, END - timedelta(hours=6), END)
    finally:
        store.close()
    assert counts["fake_meter"] == 6 and counts["goe_status"] > 0


def test_the_export_knows_it(fake, tmp_path, capsys):
    db = tmp_path / "history.db"
    store = Store(db)
    try:
        generate_history(store, END - timedelta(days=2), END)
    finally:
        store.close()
    raw, daily = tmp_path / "raw.csv", tmp_path / "daily.csv"
    window = ["--store", str(db), "--from", "2026-02-28", "--to", "2026-03-02", "--source", "fake"]
    assert cli.main(["export", "raw", *window, "--out", str(raw)]) == 0
    assert cli.main(["export", "daily", *window, "--out", str(daily)]) == 0
    with raw.open() as f:
        assert len(list(csv.DictReader(f))) == 48
    with daily.open() as f:
        rows = list(csv.DictReader(f))
    # the counter the source declares for export, at 1 kW: the first day counts from its first
    # reading (00:00 to 23:00), the second from the first day's last one
    assert [(r["charger"], float(r["energy_wh"])) for r in rows] == [("fake:m1", 23000.0),
                                                                     ("fake:m1", 24000.0)]
