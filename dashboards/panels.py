"""A small dashboards-as-code layer: Grafana panels, variables and dashboards as plain dicts.

Every panel built here shares one style (datasource variable, legend, line width, units on every
panel) and every query is raw InfluxQL, so the same JSON works on InfluxDB 1.x, 2.x (v1
compatibility API) and 3.x. We generate JSON rather than hand-edit it so that a change of style
is one line, and so that tests can read the queries back out of the committed files.

Grafana's own dashboards-as-code library (grafana-foundation-sdk) checks the result instead of
writing it: tests/test_grafana_schema.py reads every dashboard into the SDK's models for the
Grafana version compose.yaml pins and refuses anything they do not know. Building with it would
need an InfluxQL query type it does not have, and would tie this generator to one SDK release.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

DATASOURCE_UID = "influxdb"      # the uid provisioned in provisioning/datasources/influxdb.yaml
DS = {"type": "influxdb", "uid": "${datasource}"}


def tag_in(tag: str, variable: str) -> str:
    """WHERE condition: tag matches the variable's selection (one, several or All).

    The explicit `regex` format gives the same expansion in every Grafana version: one value
    escaped, several (or All) as `(a|b)`; the outer group keeps `^...$` around all of them.
    """
    return f'"{tag}" =~ /^(${{{variable}:regex}})$/'


def where(*conditions: str) -> str:
    return " AND ".join(("$timeFilter",) + conditions)


# ---------------------------------------------------------------------------------------- queries

@dataclass(frozen=True)
class Query:
    """One raw InfluxQL target. `alias` uses Grafana's $tag_<key> and $col patterns."""
    text: str
    alias: str = ""
    table: bool = False

    def target(self, ref_id: str) -> dict[str, Any]:
        out: dict[str, Any] = {"refId": ref_id, "datasource": DS, "query": self.text, "rawQuery": True,
                               "resultFormat": "table" if self.table else "time_series"}
        if self.alias:
            out["alias"] = self.alias
        return out


def _targets(queries: Iterable[Query | str]) -> list[dict[str, Any]]:
    items = [q if isinstance(q, Query) else Query(q) for q in queries]
    return [q.target(chr(ord("A") + n)) for n, q in enumerate(items)]


# ---------------------------------------------------------------------------------------- panels

@dataclass
class Panel:
    """A panel before layout: its JSON body and its size on the 24-column grid."""
    body: dict[str, Any]
    w: int = 12
    h: int = 8


def _field_config(unit: str, *, decimals: int | None = None, min: float | None = None,
                  max: float | None = None, mappings: list | None = None,
                  overrides: dict[str, dict[str, Any]] | None = None,
                  custom: dict[str, Any] | None = None, thresholds: list | None = None) -> dict[str, Any]:
    if not unit:
        raise ValueError("every panel needs a unit")
    defaults: dict[str, Any] = {"unit": unit, "color": {"mode": "palette-classic"}}
    if decimals is not None:
        defaults["decimals"] = decimals
    if min is not None:
        defaults["min"] = min
    if max is not None:
        defaults["max"] = max
    if mappings:
        defaults["mappings"] = mappings
    if thresholds:
        defaults["thresholds"] = {"mode": "absolute", "steps": thresholds}
        defaults["color"] = {"mode": "thresholds"}
    if custom:
        defaults["custom"] = custom
    override_list = []
    for pattern, props in (overrides or {}).items():
        matcher = ({"id": "byRegexp", "options": pattern} if any(c in pattern for c in "^$.*")
                   else {"id": "byName", "options": pattern})
        override_list.append({"matcher": matcher,
                              "properties": [{"id": k, "value": v} for k, v in props.items()]})
    return {"defaults": defaults, "overrides": override_list}


def _panel(kind: str, title: str, queries: Iterable[Query | str], unit: str, description: str,
           options: dict[str, Any], field_config: dict[str, Any], *, time_from: str | None = None,
           transformations: list | None = None, w: int, h: int) -> Panel:
    body: dict[str, Any] = {"type": kind, "title": title, "description": description, "datasource": DS,
                            "targets": _targets(queries), "fieldConfig": field_config, "options": options}
    if time_from:
        body["timeFrom"] = time_from
        body["hideTimeOverride"] = False
    if transformations:
        body["transformations"] = transformations
    return Panel(body, w, h)


_LEGEND = {"displayMode": "list", "placement": "bottom", "showLegend": True, "calcs": []}


def timeseries(title: str, unit: str, queries: Iterable[Query | str], description: str = "", *,
               bars: bool = False, stack: bool = False, step: bool = False, points: bool = False,
               min: float | None = None, max: float | None = None, decimals: int | None = None,
               overrides: dict[str, dict[str, Any]] | None = None, legend_calcs: list[str] | None = None,
               time_from: str | None = None, transformations: list | None = None,
               w: int = 12, h: int = 8) -> Panel:
    custom = {"drawStyle": "bars" if bars else ("points" if points else "line"),
              "lineWidth": 1, "fillOpacity": 80 if bars else 10, "pointSize": 5,
              "showPoints": "always" if points else "never", "spanNulls": False,
              "lineInterpolation": "stepAfter" if step else "linear",
              "stacking": {"mode": "normal" if stack else "none", "group": "A"},
              "axisSoftMin": 0 if bars else None}
    custom = {k: v for k, v in custom.items() if v is not None}
    legend = dict(_LEGEND, calcs=legend_calcs or [])
    if legend_calcs:
        legend["displayMode"] = "table"
    return _panel("timeseries", title, queries, unit, description,
                  {"legend": legend, "tooltip": {"mode": "multi", "sort": "desc"}},
                  _field_config(unit, min=min, max=max, decimals=decimals, overrides=overrides,
                                custom=custom),
                  time_from=time_from, transformations=transformations, w=w, h=h)


def stat(title: str, unit: str, queries: Iterable[Query | str], description: str = "", *,
         decimals: int | None = None, time_from: str | None = None, thresholds: list | None = None,
         mappings: list | None = None, w: int = 6, h: int = 4) -> Panel:
    options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
               "colorMode": "value", "graphMode": "none", "textMode": "value_and_name",
               "orientation": "auto", "justifyMode": "auto"}
    return _panel("stat", title, queries, unit, description, options,
                  _field_config(unit, decimals=decimals, thresholds=thresholds or
                                [{"color": "text", "value": None}], mappings=mappings),
                  time_from=time_from, w=w, h=h)


def gauge(title: str, unit: str, queries: Iterable[Query | str], description: str = "", *,
          min: float = 0, max: float = 100, thresholds: list | None = None, w: int = 6, h: int = 6) -> Panel:
    options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
               "showThresholdLabels": False, "showThresholdMarkers": True}
    steps = thresholds or [{"color": "red", "value": None}, {"color": "orange", "value": 20},
                           {"color": "green", "value": 40}]
    return _panel("gauge", title, queries, unit, description, options,
                  _field_config(unit, min=min, max=max, thresholds=steps), w=w, h=h)


def table(title: str, unit: str, queries: Iterable[Query | str], description: str = "", *,
          columns: dict[str, str] | None = None, renames: dict[str, str] | None = None,
          decimals: int | None = None, transformations: list | None = None,
          sort_by: str | None = None, time_from: str | None = None, w: int = 24, h: int = 9) -> Panel:
    """A table; `unit` is the default, `columns` maps a column name to its own unit."""
    overrides = {name: {"unit": column_unit} for name, column_unit in (columns or {}).items()}
    steps = list(transformations or [])
    if renames:
        steps.append({"id": "organize", "options": {"renameByName": renames, "excludeByName": {},
                                                       "indexByName": {}}})
    options: dict[str, Any] = {"showHeader": True, "cellHeight": "sm",
                               "footer": {"show": False, "reducer": ["sum"]}}
    if sort_by:
        options["sortBy"] = [{"displayName": sort_by, "desc": True}]
    body_queries = [q if not isinstance(q, Query) else Query(q.text, q.alias, table=True) for q in queries]
    return _panel("table", title, body_queries, unit, description, options,
                  _field_config(unit, decimals=decimals, overrides=overrides,
                                custom={"align": "auto", "cellOptions": {"type": "auto"}}),
                  time_from=time_from, transformations=steps, w=w, h=h)


def state_timeline(title: str, queries: Iterable[Query | str], description: str = "", *,
                   unit: str = "none", mappings: list | None = None, time_from: str | None = None,
                   w: int = 24, h: int = 6) -> Panel:
    options = {"showValue": "auto", "mergeValues": True, "rowHeight": 0.8, "alignValue": "left",
               "legend": dict(_LEGEND), "tooltip": {"mode": "single"}}
    return _panel("state-timeline", title, queries, unit, description, options,
                  _field_config(unit, mappings=mappings, custom={"lineWidth": 0, "fillOpacity": 75}),
                  time_from=time_from, w=w, h=h)


def geomap(title: str, query: Query, description: str = "", *, w: int = 12, h: int = 12) -> Panel:
    """Positions as markers: the query returns `latitude` and `longitude` columns (table format)."""
    layer = {"type": "markers", "name": "Positions",
             "config": {"showLegend": False, "style": {"size": {"fixed": 4}, "color": {"fixed": "blue"},
                                                       "opacity": 0.6}},
             "location": {"mode": "coords", "latitude": "latitude", "longitude": "longitude"},
             "tooltip": True}
    options = {"view": {"id": "fit", "lat": 0, "lon": 0, "zoom": 12, "allLayers": True},
               "controls": {"showZoom": True, "mouseWheelZoom": True},
               "basemap": {"type": "default", "name": "Basemap"}, "layers": [layer]}
    return _panel("geomap", title, [Query(query.text, query.alias, table=True)], "degree",
                  description, options, _field_config("degree"), w=w, h=h)


def row(title: str, *, repeat: str | None = None) -> Panel:
    body: dict[str, Any] = {"type": "row", "title": title, "collapsed": False, "panels": []}
    if repeat:
        body["repeat"] = repeat
    return Panel(body, 24, 1)


def value_map(values: dict[int | str, tuple[str, str]]) -> list[dict[str, Any]]:
    """Value mappings for codes and booleans: value -> (text, color)."""
    return [{"type": "value", "options": {str(k).lower() if isinstance(k, bool) else str(k):
                                          {"text": text, "color": color, "index": n}
                                          for n, (k, (text, color)) in enumerate(values.items())}}]


# ---------------------------------------------------------------------------------------- variables

def datasource_variable() -> dict[str, Any]:
    return {"type": "datasource", "name": "datasource", "label": "InfluxDB", "query": "influxdb",
            "current": {"text": "InfluxDB", "value": DATASOURCE_UID}, "hide": 0, "regex": "",
            "refresh": 1, "options": []}


def tag_variable(name: str, label: str, measurement: str, key: str,
                 *conditions: str) -> dict[str, Any]:
    """A multi-value variable filled by SHOW TAG VALUES; All expands to every value."""
    text = f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "{key}"'
    if conditions:
        text += " WHERE " + " AND ".join(conditions)
    return {"type": "query", "name": name, "label": label, "datasource": DS, "query": text, "refresh": 1, "sort": 1, "multi": True, "includeAll": True,
            "current": {"text": ["All"], "value": ["$__all"]}, "options": [], "regex": "", "hide": 0}


# ---------------------------------------------------------------------------------------- dashboard

@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    variables: list[dict[str, Any]]
    panels: list[Panel] = field(default_factory=list)
    time_from: str = "now-24h"
    refresh: str = "1m"

    def to_json(self) -> dict[str, Any]:
        return {
            "uid": self.uid, "title": self.title, "description": self.description,
            "tags": ["ev-collector"], "editable": True, "graphTooltip": 1, "timezone": "",
            "schemaVersion": 39, "version": 1, "refresh": self.refresh, "liveNow": False,
            "time": {"from": self.time_from, "to": "now"},
            "timepicker": {}, "fiscalYearStartMonth": 0, "weekStart": "monday",
            "templating": {"list": self.variables},
            "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                                      "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                                      "name": "Annotations & Alerts", "type": "dashboard"}]},
            "links": [{"type": "dashboards", "tags": ["ev-collector"], "asDropdown": True,
                       "title": "EV dashboards", "includeVars": False, "keepTime": True}],
            "panels": _layout(self.panels),
        }


def _layout(panels: list[Panel]) -> list[dict[str, Any]]:
    """Flow panels left to right on the 24-column grid; a row starts a new line."""
    out, x, y, line_h = [], 0, 0, 0
    for n, panel in enumerate(panels, start=1):
        if panel.body["type"] == "row" or x + panel.w > 24:
            x, y, line_h = 0, y + line_h, 0
        body = dict(panel.body, id=n, gridPos={"h": panel.h, "w": panel.w, "x": x, "y": y})
        out.append(body)
        x += panel.w
        line_h = max(line_h, panel.h)
        if panel.body["type"] == "row":
            x, y, line_h = 0, y + panel.h, 0
    return out
