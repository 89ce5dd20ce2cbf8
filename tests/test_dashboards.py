"""The committed Grafana dashboards: generated, well-formed, true to the schema, and working.

Every panel query and every variable query is expanded as Grafana would expand it and run
against a real InfluxDB filled with two simulated days of every source; each must return rows.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from dashboards import build
from tests.grafana_macros import TimeRange, expand, format_value, relative_range

ROOT = Path(__file__).resolve().parent.parent
JSON_DIR = ROOT / "dashboards" / "json"
DASHBOARDS = {path.name: json.loads(path.read_text()) for path in sorted(JSON_DIR.glob("*.json"))}


# ---------------------------------------------------------------------------------------- schema.md

def _schema() -> dict[str, dict[str, set[str]]]:
    """measurement -> {"tags": {...}, "fields": {...}}, read from docs/schema.md."""
    out: dict[str, dict[str, set[str]]] = {}
    current = None
    for line in (ROOT / "docs" / "schema.md").read_text().splitlines():
        if m := re.match(r"## `(\w+)`", line):
            current = out.setdefault(m.group(1), {"tags": set(), "fields": set()})
        elif current is not None and (m := re.match(r"\| `(\w+)` \| (.*)", line)):
            kind = "fields" if m.group(2).count("|") >= 3 else "tags"
            current[kind].add(m.group(1))
    return out


SCHEMA = _schema()


# ---------------------------------------------------------------------------------------- reading the JSON

def panels(dashboard: dict) -> list[dict]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def repeat_scope(dashboard: dict) -> dict[int, str]:
    """panel id -> the variable of the repeated row it sits in."""
    scope, current = {}, None
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            current = panel.get("repeat")
        elif current:
            scope[panel["id"]] = current
    return scope


def queries() -> list[tuple[str, dict, dict, dict]]:
    return [(name, dashboard, panel, target) for name, dashboard in DASHBOARDS.items()
            for panel in panels(dashboard) for target in panel["targets"]]


def query_id(case) -> str:
    name, _, panel, target = case
    return f"{name}:{panel['title']}:{target['refId']}"


QUERIES = queries()
_NOW_FIXED = datetime(2026, 3, 29, 12, tzinfo=timezone.utc)
ROLLUP_ZONE = "Europe/Berlin"          # the [rollups] timezone the history_influx fixture uses
VARIABLE_QUERIES = [(name, v) for name, d in DASHBOARDS.items() for v in d["templating"]["list"]
                    if v["type"] == "query"]


# ---------------------------------------------------------------------------------------- InfluxQL names

_IDENT = re.compile(r'"((?:[^"\\]|\\.)*)"')


def names_in(query: str) -> tuple[set[str], set[str], set[str]]:
    """(measurements, other identifiers, aliases) a query names; every name is double-quoted."""
    measurements = set(re.findall(r'\bFROM\s+"(\w+)"', query, flags=re.I))
    aliases = set(re.findall(r'\bAS\s+"([^"]+)"', query, flags=re.I))
    idents = set(_IDENT.findall(query)) - measurements
    if m := re.search(r'WITH KEY\s*=\s*"(\w+)"', query):
        idents.add(m.group(1))
    return measurements, idents - aliases, aliases


# ---------------------------------------------------------------------------------------- structure

def test_the_committed_json_is_what_the_generator_writes():
    generated = build.render()
    assert sorted(generated) == sorted(DASHBOARDS), "dashboards/json holds other files than the generator writes"
    stale = [name for name, text in generated.items() if (JSON_DIR / name).read_text() != text]
    assert not stale, f"run `python dashboards/build.py`: {stale} differ from the generator"


def test_twelve_dashboards_or_more_with_unique_uids_and_the_overview_is_home():
    assert {"overview.json", "charger.json", "vehicle.json", "sessions.json", "smart-charging.json",
            "health.json", "energy.json", "efficiency.json", "battery.json", "trips.json",
            "vampire-drain.json", "solar-tariffs.json", "statement.json"} <= set(DASHBOARDS)
    assert len(DASHBOARDS) >= 12
    uids = [d["uid"] for d in DASHBOARDS.values()]
    assert len(set(uids)) == len(uids)
    import yaml
    grafana = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["grafana"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == "/var/lib/grafana/dashboards/overview.json"
    assert any(v.endswith(":/var/lib/grafana/dashboards:ro") and v.startswith("./dashboards/json")
               for v in grafana["volumes"])


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_panel_has_a_datasource_a_title_and_a_unit(name):
    dashboard = DASHBOARDS[name]
    for panel in panels(dashboard):
        assert panel["title"].strip(), f"{name}: panel {panel['id']} has no title"
        assert panel["datasource"] == {"type": "influxdb", "uid": "${datasource}"}, panel["title"]
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{name}: {panel['title']} has no unit"
        assert panel["targets"], f"{name}: {panel['title']} has no query"
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"] and target["rawQuery"] is True


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_panels_have_unique_ids_and_fit_the_grid(name):
    ids = [p["id"] for p in DASHBOARDS[name]["panels"]]
    assert len(set(ids)) == len(ids)
    for panel in DASHBOARDS[name]["panels"]:
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24 and pos["h"] > 0, panel["title"]


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_variables_datasource_and_filters(name):
    variables = {v["name"]: v for v in DASHBOARDS[name]["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "influxdb"
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["query"].startswith("SHOW TAG VALUES FROM ")
            assert variable["multi"] and variable["includeAll"]
    wanted = {"overview.json": {"charger", "loadpoint", "vehicle", "rollup_charger"},
              "charger.json": {"charger", "loadpoint", "rollup_charger"},
              "sessions.json": {"session_charger", "loadpoint", "vehicle"},
              "vehicle.json": {"vehicle", "rollup_vehicle"}, "smart-charging.json": {"evse"},
              "health.json": {"source"}, "energy.json": {"rollup_charger", "rollup_site"},
              "efficiency.json": {"rollup_vehicle"}, "statement.json": {"rollup_vehicle", "rollup_charger"}}
    assert wanted.get(name, set()) <= set(variables)


@pytest.mark.parametrize("case", QUERIES, ids=query_id)
def test_queries_reference_variables_with_an_explicit_format_and_filter_on_time(case):
    """Bare `$var` gets the datasource's escaping (a single value regex-escaped, `Europe\\/Berlin`):
    always say `:regex` (device filters) or `:raw`."""
    name, dashboard, panel, target = case
    text = target["query"]
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    for match in re.finditer(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)", text):
        variable = match.group(1) or match.group(3)
        if variable in variables:
            assert match.group(2) in ("regex", "raw"), f"{match.group(0)} in {panel['title']}"
    assert "$timeFilter" in text, f"{panel['title']}: every query is bounded by the time picker"


@pytest.mark.parametrize("case", QUERIES, ids=query_id)
def test_every_measurement_and_field_a_query_names_is_in_the_schema(case):
    name, _, panel, target = case
    measurements, idents, _ = names_in(target["query"])
    assert measurements, f"{panel['title']}: no measurement found"
    unknown = measurements - set(SCHEMA)
    assert not unknown, f"{panel['title']}: measurements not in docs/schema.md: {unknown}"
    known = set().union(*(SCHEMA[m]["tags"] | SCHEMA[m]["fields"] for m in measurements))
    assert not idents - known, f"{panel['title']}: not fields or tags of {measurements}: {idents - known}"


@pytest.mark.parametrize("name,variable", VARIABLE_QUERIES, ids=lambda v: v if isinstance(v, str) else v["name"])
def test_every_variable_query_names_a_tag_of_its_measurement(name, variable):
    measurements, idents, _ = names_in(variable["query"])
    [measurement] = measurements
    assert idents <= SCHEMA[measurement]["tags"], variable["query"]


def test_the_schema_parser_sees_tags_and_fields():
    assert "serial" in SCHEMA["goe_status"]["tags"] and "power_w" in SCHEMA["goe_status"]["fields"]
    assert "serial" not in SCHEMA["goe_status"]["fields"]


def test_names_in_catches_an_unknown_field_and_ignores_aliases():
    measurements, idents, aliases = names_in(
        'SELECT sum("e") FROM (SELECT spread("energy_total_wh") AS "e" FROM "goe_status" '
        'WHERE "serial" =~ /^(${charger:regex})$/ GROUP BY "serial")')
    assert measurements == {"goe_status"} and aliases == {"e"}
    assert idents == {"energy_total_wh", "serial"}


# ---------------------------------------------------------------------------------------- Grafana's expansion

def test_expansion_follows_grafana():
    rng = relative_range("now-24h", _NOW_FIXED, "UTC")
    text = ('SELECT mean("x") FROM "m" WHERE $timeFilter AND "t" =~ /^(${v:regex})$/ '
            "GROUP BY time($__interval) tz('${timezone:raw}') -- $__interval_ms")
    out = expand(text, {"v": ["a.b", "c/d"], "timezone": ["Europe/Berlin"]}, rng)
    assert out == ('SELECT mean("x") FROM "m" WHERE time >= 1774699200000ms and time <= 1774785600000ms '
                   "AND \"t\" =~ /^((a\\.b|c\\/d))$/ GROUP BY time(1m) tz('Europe/Berlin') -- 60000")
    assert format_value(["Europe/Berlin"], None, multi=False) == "Europe\\/Berlin"   # why tz() uses :raw
    assert format_value(["12"], None, multi=False) == "12"


def test_today_starts_at_local_midnight_across_dst():
    rng = relative_range("now/d", _NOW_FIXED, "Europe/Berlin")          # the day clocks go forward
    assert rng.start.isoformat() == "2026-03-29T00:00:00+01:00"


# ---------------------------------------------------------------------------------------- against InfluxDB

@pytest.fixture(scope="session")
def resolve(influxdb, history_influx):
    """Dashboard name -> variable values as Grafana's dropdowns would offer them (All selected)."""
    db, _ = history_influx

    @cache
    def values(name: str) -> dict[str, tuple[str, ...]]:
        out: dict[str, tuple[str, ...]] = {}
        for variable in DASHBOARDS[name]["templating"]["list"]:
            if variable["type"] == "custom":
                out[variable["name"]] = (variable["current"]["value"],)
            elif variable["type"] == "query":
                text = expand(variable["query"], {k: list(v) for k, v in out.items()},
                              TimeRange(_NOW_FIXED, _NOW_FIXED))
                rows = influxdb.query(text, db=db)
                out[variable["name"]] = tuple(sorted({row["value"] for row in rows}))
        return out

    return values


@pytest.mark.parametrize("name,variable", VARIABLE_QUERIES, ids=lambda v: v if isinstance(v, str) else v["name"])
def test_every_variable_query_returns_values(resolve, name, variable):
    assert resolve(name)[variable["name"]], f"{name}: {variable['query']} returned nothing"


@pytest.mark.parametrize("case", QUERIES, ids=query_id)
def test_every_panel_query_runs_and_returns_rows(influxdb, history_influx, resolve, case):
    name, dashboard, panel, target = case
    db, now = history_influx
    values = {k: list(v) for k, v in resolve(name).items()}
    repeat = repeat_scope(dashboard).get(panel["id"])
    if repeat:
        values[repeat] = values[repeat][:1]                 # a repeated row sees one value
    # the dashboards' time zone set to the collector's [rollups] timezone, as the README asks
    rng = relative_range(panel.get("timeFrom") or dashboard["time"]["from"], now, ROLLUP_ZONE)
    multi = frozenset(v["name"] for v in dashboard["templating"]["list"] if v.get("multi"))
    text = expand(target["query"], values, rng, multi=multi)
    assert not re.search(r"\$[\w{\[]", text.replace("$/", "")), f"unexpanded macro in {text}"
    rows = influxdb.query(text, db=db)
    assert rows, f"{name}: {panel['title']} ({target['refId']}) returned no rows:\n{text}"


@pytest.mark.parametrize("zone", ["Europe/Berlin", "Europe/London", "Asia/Kolkata", "America/St_Johns",
                                  "Pacific/Chatham"])
def test_summed_rollups_give_one_row_per_local_day_in_any_zone_without_tz(influxdb, influx_db, zone):
    """The dashboards add up rollup points of several chargers period by period with
    GROUP BY time(15m) instead of tz(): each local midnight of every zone lies on a quarter
    hour, so each day is one bucket, across the DST change too (London's midnight moves from
    00:00 to 23:00 UTC of the day before, which time(1d) would merge)."""
    from collector.points import to_line
    from collector.rollups import ROLLUP_DAILY
    from collector.rollups.periods import days

    tz = ZoneInfo(zone)
    start = datetime(2026, 3, 26, 12, tzinfo=timezone.utc)
    wanted = days(int(start.timestamp()) * 10**9, int((start + timedelta(days=6)).timestamp()) * 10**9, tz)
    points = [ROLLUP_DAILY.point({"kind": "charger", "name": name}, {"energy_wh": watt_hours, "period": d.label},
                                 d.start_ns)
              for d in wanted for name, watt_hours in (("a", 1000.0), ("b", 234.0))]
    body = "\n".join(to_line(point) for point in points)
    httpx.post(f"{influxdb.url}/write", params={"db": influx_db}, content=body).raise_for_status()
    text = build.summed('sum("energy_wh") AS "energy"', build.DAILY, build.R_CHARGER)
    rng = TimeRange(datetime(2026, 3, 20, tzinfo=timezone.utc), datetime(2026, 4, 5, tzinfo=timezone.utc))
    rows = influxdb.query(expand(text, {"rollup_charger": ["a", "b"]}, rng, multi=frozenset({"rollup_charger"})),
                          db=influx_db)
    assert [r["time"] for r in rows] == [d.start_ns for d in wanted]
    assert {r["energy"] for r in rows} == {1234.0}


def test_the_health_dashboard_draws_one_line_per_shard_and_the_fleet_total(influxdb, history_influx, resolve):
    """Two shards write health (tests/health_history.py): each keeps its own series, and the
    fleet line is their sum in every bucket, not one shard's counter read across the other's."""
    db, now = history_influx
    dashboard = DASHBOARDS["health.json"]
    [panel] = [p for p in panels(dashboard) if p["title"] == "Points collected per shard"]
    values = {k: list(v) for k, v in resolve("health.json").items()}
    assert values["shard"] == ["0", "1"]
    rng = relative_range(dashboard["time"]["from"], now, "UTC")
    per_shard, fleet = (influxdb.query(expand(t["query"], values, rng, multi=frozenset(values)), db=db)
                        for t in panel["targets"])
    by_time: dict[int, dict[str, float]] = {}
    for row in per_shard:
        by_time.setdefault(row["time"], {})[row["shard"]] = row["points"]
    both = {t: rows for t, rows in by_time.items() if set(rows) == {"0", "1"}}
    assert len(both) > 10
    for row in fleet:
        if row["time"] in both:
            assert row["points"] == pytest.approx(sum(both[row["time"]].values()))
    # shard 0 collects 70 points per 5-minute sample, shard 1 collects 10: 14 and 2 per minute
    assert {round(v, 3) for rows in both.values() for v in rows.values()} == {14.0, 2.0}


# ---------------------------------------------------------------------------------------- long ranges

ROLLUPS = {"rollup_daily", "rollup_monthly"}
# One point per session, trip or charge record: a year of them is a few thousand points.
EVENT_LOGS = {"charging_session", "evcc_session", "ovms_trip", "ovms_grid"}


@pytest.mark.parametrize("case", QUERIES, ids=query_id)
def test_panels_over_more_than_two_days_read_rollups_not_raw_samples(case):
    """Long ranges must not scan raw 1-10 s samples: slow on a Raspberry Pi, and refused by
    InfluxDB 3 Core beyond the files one query may touch (about 72 hours by default)."""
    name, dashboard, panel, target = case
    rng = relative_range(panel.get("timeFrom") or dashboard["time"]["from"], _NOW_FIXED, ROLLUP_ZONE)
    if rng.end - rng.start <= timedelta(days=2):
        return
    measurements, _, _ = names_in(target["query"])
    assert measurements <= ROLLUPS | EVENT_LOGS, \
        f"{name}: {panel['title']} spans {rng.end - rng.start} but reads {measurements - ROLLUPS - EVENT_LOGS}"


def test_the_dashboards_read_the_rollups():
    readers = [case for case in QUERIES if names_in(case[3]["query"])[0] & ROLLUPS]
    assert len(readers) >= 3 and {case[0] for case in readers} >= {"energy.json", "overview.json"}
