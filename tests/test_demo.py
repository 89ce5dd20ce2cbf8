"""`ev-collector demo`: its options, the config it writes, and end-to-end runs.

The end-to-end runs start the four simulators and the real collector in-process and compare
what reached the store (and InfluxDB) with what the simulators served and the history
generator produced, measurement by measurement.
"""

from __future__ import annotations

import io
import math
import re
import shlex
import uuid
from datetime import datetime
from pathlib import Path

import pytest
from freezegun import freeze_time

from collector.cli import build_parser
from collector.config import ConfigError, load_config
from collector.demo import (Demo, DemoResult, demo_config, influx_section, next_steps, render_line,
                            statement_month, summary)
from collector.sim.world import GOE_SERIAL, build_simulators
from collector.store import Store

ROOT = Path(__file__).resolve().parent.parent
NS = 1_000_000_000


def demo_args(*argv: str):
    return build_parser().parse_args(["demo", *argv])


def entrypoint_demo_argv(env: dict[str, str]) -> list[str]:
    """The `ev-collector demo ...` command of the container entrypoint, with `env` expanded."""
    script = (ROOT / "deploy" / "collector-entrypoint.sh").read_text()
    joined = script.replace("\\\n", " ")
    line = next(l for l in joined.splitlines() if "ev-collector demo" in l)
    command = line.split("exec", 1)[1]

    def expand(match: re.Match) -> str:
        name, default = match.group(1), match.group(3)
        return env.get(name) or (default if default is not None else "")

    command = re.sub(r"\$\{(\w+)(:-([^}]*))?\}", expand, command)
    argv = shlex.split(command)
    assert argv[:2] == ["ev-collector", "demo"]
    return argv[1:]


def test_the_entrypoints_demo_flags_parse_into_a_valid_config(monkeypatch, tmp_path):
    env = {"INFLUX_URL": "http://influxdb:8086", "INFLUX_ORG": "home", "INFLUX_BUCKET": "ev"}
    args = build_parser().parse_args(entrypoint_demo_argv(env))
    assert args.handler.__module__ == "collector.demo"
    assert (args.history, args.duration) == (7 * 86400, 0)
    assert (args.influx_api, args.influx_url, args.influx_org, args.influx_bucket) == \
        ("v2", "http://influxdb:8086", "home", "ev")
    monkeypatch.setenv("INFLUX_TOKEN", "compose-token")
    section = influx_section(args)
    urls = {name: f"http://127.0.0.1:{port}" for port, name in enumerate(("goe", "evcc", "evenergy", "ovms"), 1)}
    path = tmp_path / "config.toml"
    path.write_text(demo_config(urls, build_simulators(), section))
    config = load_config(path)
    assert config.influxdb.token.reveal() == "compose-token"
    assert "compose-token" not in path.read_text()   # the config names the variable only
    assert {"goe", "evcc", "evenergy", "ovms"} <= {
        name for name in ("goe", "evcc", "evenergy", "ovms") if getattr(config.sources, name)}


def test_demo_history_in_the_entrypoint_follows_demo_history(monkeypatch):
    argv = entrypoint_demo_argv({"DEMO_HISTORY": "30d", "INFLUX_URL": "http://x:8086",
                                 "INFLUX_ORG": "o", "INFLUX_BUCKET": "b"})
    assert build_parser().parse_args(argv).history == 30 * 86400


def test_the_written_config_is_valid_without_influxdb(tmp_path):
    urls = {name: f"http://127.0.0.1:{port}" for port, name in enumerate(("goe", "evcc", "evenergy", "ovms"), 1)}
    path = tmp_path / "config.toml"
    path.write_text(demo_config(urls, build_simulators()))
    config = load_config(path)
    assert config.influxdb is None
    assert config.store.path == tmp_path / "ev-collector.db"
    assert config.sources.goe.cloud_url == "http://127.0.0.1:1/{serial}"
    assert "DEMO VALUE" in path.read_text()


@pytest.mark.parametrize("argv, message", [
    (["--influx-org", "o"], "--influx-org needs --influx-url"),
    (["--influx-url", "http://x", "--influx-org", "o"], "needs --influx-bucket"),
    (["--influx-url", "http://x", "--influx-org", "o", "--influx-bucket", "b"], "INFLUX_TOKEN"),
    (["--influx-url", "http://x", "--influx-api", "v1"], "needs --influx-database"),
    (["--influx-url", "http://x", "--influx-database", "d", "--influx-username", "u"],
     "INFLUX_PASSWORD"),
])
def test_incomplete_influx_options_are_named(monkeypatch, argv, message):
    monkeypatch.delenv("INFLUX_TOKEN", raising=False)
    monkeypatch.delenv("INFLUX_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match=re.escape(message)):
        influx_section(demo_args(*argv))


def test_v1_options_give_a_database_section(monkeypatch):
    monkeypatch.setenv("INFLUX_PASSWORD", "pw")
    section = influx_section(demo_args("--influx-url", "http://x:8086", "--influx-database", "ev",
                                       "--influx-username", "collector"))
    assert 'api = "v1"' in section and 'database = "ev"' in section
    assert 'password = { env = "INFLUX_PASSWORD" }' in section and "pw" not in section


def test_bad_durations_are_refused(capsys):
    for bad in ("soon", "-5"):
        with pytest.raises(SystemExit):
            demo_args("--duration", bad)
    assert "--duration" in capsys.readouterr().err


def test_the_plain_view_names_each_source_backlog_errors_and_quota():
    snap = {"sources": {name: {"polls": 2, "failed": 0, "points": 5, "errors": 1, "last_error": ""}
                        for name in ("goe", "evcc", "evenergy", "ovms")},
            "quota": {"evenergy": 977}, "backlog": 12, "shipped": 3, "ship_failures": 0}
    line = render_line(snap, 7.0)
    assert "polls goe 2 evcc 2 evenergy 2 ovms 2" in line
    assert "points 20" in line and "backlog 12" in line and "errors 4" in line
    assert "quota evenergy 977" in line


# -- end to end --------------------------------------------------------------------------------


def run_demo(tmp_path: Path, *argv: str):
    out = io.StringIO()
    result = Demo(demo_args("--workdir", str(tmp_path / "demo"), "--refresh", "1", *argv), out).run()
    return result, out.getvalue()


def live_expectations(result) -> dict[str, int]:
    """Points the live phase must have added, from what the simulators served."""
    sims = result.simulators
    goe_seconds = {math.floor(t) for t in sims.goe.status_request_times(GOE_SERIAL)}
    states = sum(1 for path, _ in sims.evcc.requests if path == "/api/state")
    return {"goe_status": len(goe_seconds), "evcc_site": states, "evcc_loadpoint": 2 * states}


# evcc's state is written on change (heartbeat 15 min): a poll whose values equal the series'
# last stored point adds nothing; the first poll of a series always does (series per site).
ON_CHANGE_SERIES = {"evcc_site": 1, "evcc_loadpoint": 2}


def assert_live(measurement: str, total: int, before: int, added: int) -> None:
    """`total` is `before` plus what the live phase served (`added`), less unchanged polls of
    the measurements written on change."""
    if measurement in ON_CHANGE_SERIES:
        floor = before or min(added, ON_CHANGE_SERIES[measurement])
        assert floor <= total <= before + added, measurement
    else:
        assert total == before + added, measurement


def window_counts(store: Store, window) -> dict[str, int]:
    start, end = (int(t.timestamp()) * NS for t in window)
    # An OVMS point carries its message's time, up to 10 minutes before the poll.
    early = {m: 3600 * NS if m.startswith("ovms_") else 0 for m in store.counts()}
    return {m: sum(len(chunk) for chunk in store.query(m, start - early[m], end)) for m in early}


def check_history_and_live(result) -> dict[str, int]:
    """History counts in the window, live additions after it; returns the store's counts."""
    store = Store(result.store_path)
    try:
        total, in_window = store.counts(), window_counts(store, result.history_window)
    finally:
        store.close()
    history = result.history
    for measurement, count in history.items():
        if measurement == "evcc_tariff":          # forecasts reach past the window
            assert total[measurement] >= count
        elif measurement in ("evenergy_status", "evcc_session"):
            # a log sampled before the end but logged after it, a session that finished since
            assert count <= in_window[measurement] <= count + 1, measurement
        else:
            assert in_window[measurement] == count, measurement
    for measurement, added in live_expectations(result).items():
        assert_live(measurement, total[measurement], history.get(measurement, 0), added)
    return total


@pytest.mark.slow
def test_demo_duration_collects_every_source_into_the_embedded_store(tmp_path):
    result, out = run_demo(tmp_path, "--duration", "6")
    assert result.history == {} and 5 <= result.live_seconds < 20
    store = Store(result.store_path)
    counts = store.counts()
    store.close()
    expected = live_expectations(result)
    assert expected["goe_status"] >= 1 and expected["evcc_site"] >= 1
    for measurement, count in expected.items():
        assert_live(measurement, counts[measurement], 0, count)
    assert counts["ovms_charge"] >= 1 and counts["evcc_tariff"] >= 24
    # the view printed plain lines (not a terminal), and the summary names the config
    assert re.search(r"\[\s+\d+s\] polls goe \d+ evcc \d+ evenergy \d+ ovms \d+ \| points \d+", out)
    assert "backlog -" in out and "quota evenergy" in out
    assert f"configuration it ran on: {result.config_path}" in "\n".join(summary(result))
    assert load_config(result.config_path).store.path == result.store_path


def run_as_printed(line: str) -> int:
    """Run a command line the demo printed, with this process's ev-collector."""
    from collector.cli import main

    argv = shlex.split(line)
    assert argv[0] == "ev-collector"
    return main(argv[1:])


@pytest.mark.slow
def test_the_demo_ends_with_commands_that_work_as_printed(tmp_path, monkeypatch, capsys):
    import importlib.util

    monkeypatch.chdir(tmp_path)
    result, _ = run_demo(tmp_path, "--history", "6h", "--duration", "1")
    lines = next_steps(result)
    text = "\n".join(lines)
    month = statement_month(result)
    commands = [line.strip() for line in lines if line.startswith("  ev-collector ")]
    assert commands == ["ev-collector report --config demo/config.toml --html demo/report.html",
                        "ev-collector export sessions --config demo/config.toml --out demo/sessions.csv",
                        f"ev-collector statement --month {month} --config demo/config.toml --out demo"]
    assert "Grafana reads InfluxDB, not the embedded store" in text and "docker compose up" in text
    capsys.readouterr()
    assert run_as_printed(commands[0]) == 0
    assert "energy from the wall" in capsys.readouterr().out
    assert run_as_printed(commands[1]) == 0
    assert (tmp_path / "demo" / "sessions.csv").read_text().startswith("epoch_s,")
    if importlib.util.find_spec("collector.statement") is not None:   # merged separately
        assert run_as_printed(commands[2]) == 0


@pytest.mark.slow
def test_a_restarted_demo_keeps_its_history_and_collects_live(tmp_path):
    first, out = run_demo(tmp_path, "--history", "6h", "--duration", "1")
    assert first.history["goe_status"] == 6 * 360 and "history: generating" in out
    store = Store(first.store_path)
    before = store.counts()["goe_status"]
    store.close()
    again, out = run_demo(tmp_path, "--history", "6h", "--duration", "1")
    assert again.history == {} and "history: generating" not in out
    assert "history: kept from an earlier run" in out and "seed 1" in out
    store = Store(again.store_path)
    try:
        after = store.counts()["goe_status"]
    finally:
        store.close()
    assert before <= after <= before + 5        # live polls only, no second window
    with pytest.raises(ConfigError, match="--seed 1, or use another --workdir"):
        run_demo(tmp_path, "--history", "6h", "--duration", "1", "--seed", "2")


@pytest.mark.slow
def test_demo_history_then_live_into_the_embedded_store(tmp_path):
    result, out = run_demo(tmp_path, "--history", "1d", "--duration", "6")
    assert result.history["goe_status"] == 8640 and "history: " in out
    check_history_and_live(result)


@pytest.mark.slow
def test_three_demo_days_give_a_report_that_adds_up_and_sessions_with_meters_and_cards(tmp_path, capsys):
    """The issue's check: demo --history 3d, then report and export sessions on its config."""
    import csv

    from collector.cli import main

    result, _ = run_demo(tmp_path, "--history", "3d", "--duration", "6")
    config = str(result.config_path)
    assert main(["report", "--config", config]) == 0
    text = capsys.readouterr().out
    sessions = int(re.search(r"^  sessions +(\d+) ", text, re.M).group(1))
    efficiency = int(re.search(r"^  efficiency +(\d+) %", text, re.M).group(1))
    headline = re.search(r"^  energy from the wall +([\d,.]+) kWh", text, re.M).group(1)
    rows = text.split("Per charger")[1].split("Per vehicle")[0].strip().splitlines()
    assert sessions >= 2 and 80 <= efficiency <= 97, text
    assert rows[-1].split()[0] == "total" and rows[-1].split()[2] == headline
    summed = sum(float(line.split()[2].replace(",", "")) for line in rows[1:-1])
    assert f"{summed:,.3f}" == headline
    assert main(["export", "sessions", "--config", config, "--quiet"]) == 0
    exported = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    garage = [r for r in exported if r["charger"] == "garage"]
    assert garage and all(r["meter_start_wh"] and r["meter_end_wh"] and r["card"] == "Alex"
                          and r["meter_mismatch"] == "False" for r in garage)
    assert all(80 <= float(r["efficiency_pct"]) <= 97 for r in garage if r["efficiency_pct"])


@pytest.mark.slow
def test_demo_history_then_live_into_influxdb_v1(tmp_path, influxdb, influx_db):
    result, out = run_demo(tmp_path, "--history", "1d", "--duration", "6",
                           "--influx-url", influxdb.url, "--influx-api", "v1",
                           "--influx-database", influx_db)
    assert "history: shipped" in out
    counts = check_history_and_live(result)
    store = Store(result.store_path)
    try:
        assert store.pending_count() == 0     # the demo's stop flushed everything
    finally:
        store.close()
    for measurement, count in counts.items():
        rows = influxdb.query(f'SELECT * FROM "{measurement}"', db=influx_db)
        assert len(rows) == count, measurement


@pytest.mark.slow
def test_demo_creates_a_v1_database_that_does_not_exist(tmp_path, influxdb):
    database = f"demo_{uuid.uuid4().hex[:8]}"
    result, out = run_demo(tmp_path, "--duration", "2", "--influx-url", influxdb.url,
                           "--influx-api", "v1", "--influx-database", database)
    assert f"influx: database {database} created" in out
    store = Store(result.store_path)
    try:
        counts = store.counts()
    finally:
        store.close()
    assert counts["evcc_tariff"] >= 24                     # the first poll's forecasts
    assert influxdb.count(database, "evcc_tariff") == counts["evcc_tariff"]   # shipped there


class InfluxV1NotAdmin:
    """InfluxDB 1.x with auth on, for a user who may write but not create databases."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def handle(self, request):
        from collector.sim.base import SimResponse

        statement = request.query.get("q", "")
        self.statements.append(statement)
        if statement == "SHOW DATABASES":
            return SimResponse.json({"results": [{"statement_id": 0, "series": [
                {"name": "databases", "columns": ["name"], "values": [["ev"]]}]}]})
        return SimResponse.json({"error": f"error authorizing query: demo not authorized to "
                                          f"execute statement '{statement}', requires admin "
                                          "privilege"}, 403)


@pytest.mark.parametrize("argv", [("--influx-api", "v1", "--influx-database", "evdemo"),
                                  ("--influx-org", "home", "--influx-bucket", "evdemo")])
def test_demo_stops_at_once_naming_the_fix_when_it_may_not_create_the_database(
        tmp_path, monkeypatch, argv):
    from collector.sim.base import SimServer

    monkeypatch.setenv("INFLUX_TOKEN", "demo-token")
    server_sim = InfluxV1NotAdmin() if "v1" in argv else InfluxV2Shim(None, "demo-token",
                                                                      may_create=False)
    with SimServer(server_sim) as server:
        with pytest.raises(ConfigError) as caught:
            run_demo(tmp_path, "--history", "30d", "--influx-url", server.url, *argv)
    message = str(caught.value)
    if "v1" in argv:
        assert server_sim.statements == ["SHOW DATABASES", 'CREATE DATABASE "evdemo"']
        assert "requires admin privilege" in message
        assert """create it as an InfluxDB admin with influx -execute 'CREATE DATABASE "evdemo"'""" in message
    else:
        assert server_sim.created == [] and "HTTP 403" in message
        assert "influx bucket create --name evdemo --org home" in message
    store = Store(tmp_path / "demo" / "ev-collector.db")
    try:
        assert store.counts() == {}           # stopped before generating the 30 days
    finally:
        store.close()


@pytest.mark.slow
def test_ctrl_c_stops_the_demo_cleanly(tmp_path):
    """SIGINT (Ctrl-C) while live: polls finish, the summary is printed, exit status 0."""
    import os
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "collector.cli", "demo", "--workdir", str(tmp_path / "demo"),
         "--refresh", "1"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "| points" in line:      # the live view is up: the collector is polling
                break
        assert any("| points" in line for line in lines), "".join(lines)
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, rest
    assert "demo stopped after" in rest and "Traceback" not in rest
    assert f"ev-collector report --config {tmp_path / 'demo' / 'config.toml'}" in rest
    store = Store(tmp_path / "demo" / "ev-collector.db")
    try:
        assert store.counts()
    finally:
        store.close()


class InfluxV2Shim:
    """InfluxDB 2.x's write, bucket and organisation APIs in front of the test's influxd 1.x.

    A bucket is a database of influxd (listing and creating them too); the organisation is
    "home". Checks the token as InfluxDB 2 does; the body (gzip or not) passes through unchanged.
    """

    ORG_ID = "0123456789abcdef"

    def __init__(self, influx_url: str | None, token: str, may_create: bool = True) -> None:
        self.influx_url = influx_url
        self.token = token
        self.may_create = may_create
        self.writes = 0
        self.lines = 0
        self.created: list[dict] = []

    def handle(self, request):
        import gzip
        import json

        import httpx

        from collector.sim.base import SimResponse

        if request.headers.get("Authorization") != f"Token {self.token}":
            return SimResponse.json({"code": "unauthorized", "message": "unauthorized access"}, 401)
        if request.path == "/api/v2/orgs":
            orgs = [{"id": self.ORG_ID, "name": "home"}]
            return SimResponse.json({"orgs": [o for o in orgs
                                              if request.query.get("org") in (None, o["name"])]})
        if request.path == "/api/v2/buckets" and request.method == "GET":
            names = self._databases()
            wanted = request.query.get("name")
            return SimResponse.json({"buckets": [{"id": f"b{i:015d}", "name": name, "orgID": self.ORG_ID,
                                                  "retentionRules": []}
                                                 for i, name in enumerate(names)
                                                 if wanted in (None, name)]})
        if request.path == "/api/v2/buckets" and request.method == "POST":
            if not self.may_create:
                return SimResponse.json({"code": "forbidden",
                                         "message": "write:orgs/0123456789abcdef/buckets is unauthorized"}, 403)
            bucket = json.loads(request.body)
            self.created.append(bucket)
            httpx.post(f"{self.influx_url}/query", data={"q": f'CREATE DATABASE "{bucket["name"]}"'},
                       timeout=30).raise_for_status()
            return SimResponse.json({"id": "b000000000000001", **bucket}, 201)
        if request.path != "/api/v2/write":
            return SimResponse.json({"code": "not found"}, 404)
        body = gzip.decompress(request.body) if request.body[:2] == b"\x1f\x8b" else request.body
        answer = httpx.post(f"{self.influx_url}/write", content=body, timeout=30,
                            params={"db": request.query["bucket"],
                                    "precision": request.query.get("precision", "ns")})
        self.writes += 1
        self.lines += body.count(b"\n") + 1
        return SimResponse(answer.status_code, answer.content,
                           {"Content-Type": answer.headers.get("content-type", "text/plain")})

    def _databases(self) -> list[str]:
        import httpx

        if self.influx_url is None:
            return []
        answer = httpx.get(f"{self.influx_url}/query", params={"q": "SHOW DATABASES"}, timeout=30).json()
        return [row[0] for series in answer["results"][0].get("series", [])
                for row in series.get("values", [])]


@pytest.mark.slow
def test_the_entrypoints_v2_demo_creates_its_bucket_ships_and_keeps_history_on_restart(
        tmp_path, monkeypatch, influxdb):
    """The compose stack's collector: history once into a new bucket, then live; a restart
    (the container's) goes live again without generating or shipping the history again."""
    from collector.sim.base import SimServer

    bucket = f"compose_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("INFLUX_TOKEN", "compose-token")
    shim = InfluxV2Shim(influxdb.url, "compose-token")
    with SimServer(shim) as server:
        argv = entrypoint_demo_argv({"INFLUX_URL": server.url, "INFLUX_ORG": "home",
                                     "INFLUX_BUCKET": bucket, "DEMO_HISTORY": "6h"})

        def start_container():
            args = build_parser().parse_args(
                [*argv, "--workdir", str(tmp_path / "demo"), "--duration", "3", "--refresh", "1"])
            out = io.StringIO()
            return Demo(args, out).run(), out.getvalue()

        result, out = start_container()
        assert f"influx: bucket {bucket} created in organisation home" in out
        assert [(b["name"], b["orgID"]) for b in shim.created] == [(bucket, InfluxV2Shim.ORG_ID)]
        first_lines = shim.lines
        again, out = start_container()
    assert f"influx: bucket {bucket} present" in out and "history: kept" in out
    assert again.history == {} and shim.lines - first_lines < result.history["goe_status"]
    store = Store(result.store_path)
    try:
        counts, pending = store.counts(), store.pending_count()
    finally:
        store.close()
    assert pending == 0
    for measurement in ("goe_status", "evcc_site", "ovms_charge"):
        rows = influxdb.query(f'SELECT * FROM "{measurement}"', db=bucket)
        assert len(rows) == counts[measurement] >= result.history[measurement], measurement


@pytest.mark.slow
def test_sigterm_during_history_stops_the_demo_with_a_message(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "collector.cli", "demo", "--workdir", str(tmp_path / "demo"),
         "--history", "30d"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "history: generating" not in proc.stdout.readline():
            pass
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, rest
    assert "interrupted before going live" in rest and "Traceback" not in rest


@freeze_time("2026-12-01 00:30:00")
def test_the_statement_it_suggests_is_of_the_month_with_the_sessions(tmp_path):
    """Run on the 1st, a demo's history is nearly all last month's: the statement command it
    prints names that month, not the one just begun (which had no session to show)."""
    from collector.points import Point

    config = tmp_path / "config.toml"
    config.write_text(f'[store]\npath = "{tmp_path / "s.db"}"\n\n[sessions]\ntimezone = "Europe/Berlin"\n')
    store = Store(tmp_path / "s.db")
    starts = ["2026-11-20T08:00:00+00:00", "2026-11-28T18:00:00+00:00", "2026-11-29T18:00:00+00:00",
              "2026-11-30T23:30:00+00:00",   # December in Berlin
              "2026-12-01T00:10:00+00:00"]
    store.append([Point("charging_session", {"charger": "garage"}, {"energy_kwh": 5.0},
                        int(datetime.fromisoformat(start).timestamp() * 1e9)) for start in starts])
    store.close()
    result = DemoResult(config, tmp_path / "s.db", {}, None, 1.0, None)  # type: ignore[arg-type]
    assert statement_month(result) == "2026-11"
    store = Store(tmp_path / "s.db")
    store.append([Point("charging_session", {"charger": "garage"}, {"energy_kwh": 5.0},
                        int(datetime.fromisoformat(start).timestamp() * 1e9))
                  for start in ("2026-12-01T02:00:00+00:00",)])
    store.close()
    assert statement_month(result) == "2026-12"    # three each: the later month
    for leftover in tmp_path.glob("s.db*"):
        leftover.unlink()
    assert statement_month(result) == "2026-12"    # none yet: this month
