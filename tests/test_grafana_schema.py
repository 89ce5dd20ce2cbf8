"""The dashboards fit the dashboard schema of the Grafana that compose.yaml runs.

No Grafana runs in the tests, so the check uses Grafana's own dashboards-as-code library,
grafana-foundation-sdk, whose types are generated from the schemas Grafana publishes: every
committed dashboard is read into the SDK's models (the panel plugins' options and field
configs included) and written back. Anything the schema does not know is dropped on the way,
and every value must have the type the schema gives it (enumerations included): a misspelled
key, an option in the wrong place or a draw style Grafana lacks fails here.

The SDK is built per Grafana release up to 11.6; for Grafana 12 it publishes builds of
Grafana's main branch. `SDK_VERSION` is the one generated on 29 January 2026, while 12.4 was
prepared, and compose.yaml pins `GRAFANA`. Queries are InfluxDB's business, checked against
a real influxd in test_dashboards.py (the SDK has no InfluxDB query type).
"""

from __future__ import annotations

import copy
import enum
import json
import types
import typing
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from grafana_foundation_sdk.cog import plugins, variants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

from tests.test_dashboards import DASHBOARDS

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = "grafana/grafana:12.4.0"
SDK_VERSION = "1769699241"

plugins.register_default_plugins()


# ---------------------------------------------------------------------------------------- the check

def _hints(cls: type) -> dict[str, typing.Any]:
    module = __import__(cls.__module__, fromlist=["_"])
    hints = typing.get_type_hints(cls.__init__, globalns=vars(module))
    hints.pop("return", None)
    return hints


def _is_model(cls: typing.Any) -> bool:
    return isinstance(cls, type) and hasattr(cls, "from_json") and hasattr(cls, "to_json")


def type_errors(value: typing.Any, hint: typing.Any, path: str) -> list[str]:
    """Where `value`, as the SDK decoded it, does not have the type the schema gives it."""
    if hint is typing.Any or hint is object:
        # panel options and custom field config: typed by the panel's plugin, which decoded them
        return type_errors(value, type(value), path) if _is_model(type(value)) else []
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return []
        tried = [type_errors(value, arg, path) for arg in args if arg is not type(None)]
        return [] if any(not errors for errors in tried) else min(tried, key=len)
    if origin is typing.Literal:
        return [] if value in args else [f"{path}: {value!r} is not one of {list(args)}"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {value!r}"]
        return [e for k, item in enumerate(value) for e in type_errors(item, args[0], f"{path}[{k}]")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{path}: expected an object, got {value!r}"]
        return [e for key, item in value.items() for e in type_errors(item, args[1], f"{path}.{key}")]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        known = [m.value for m in hint]
        return [] if value in known or isinstance(value, hint) else [f"{path}: {value!r} is not one of {known}"]
    if hint is bool:
        return [] if isinstance(value, bool) else [f"{path}: expected true/false, got {value!r}"]
    if hint is int:
        return [] if isinstance(value, int) and not isinstance(value, bool) else [f"{path}: expected an integer, got {value!r}"]
    if hint is float:
        return [] if isinstance(value, (int, float)) and not isinstance(value, bool) else [f"{path}: expected a number, got {value!r}"]
    if hint is str:
        return [] if isinstance(value, str) else [f"{path}: expected text, got {value!r}"]
    if isinstance(hint, type) and issubclass(hint, variants.Dataquery):
        return []                                     # a datasource's own query model
    if _is_model(hint):
        if isinstance(value, dict):                   # left undecoded (no plugin for it)
            return []
        if not isinstance(value, hint):
            return [f"{path}: expected {hint.__name__}, got {type(value).__name__}"]
        return [e for name, attr_hint in _hints(type(value)).items()
                for e in type_errors(getattr(value, name), attr_hint, f"{path}.{name}")]
    return []


def dropped(ours: typing.Any, theirs: typing.Any, path: str = "$") -> list[str]:
    """What we wrote that the schema's models did not keep (or changed)."""
    if isinstance(ours, dict):
        if not isinstance(theirs, dict):
            return [f"{path}: became {theirs!r}"]
        return [e for key, value in ours.items()
                for e in (dropped(value, theirs[key], f"{path}.{key}") if key in theirs
                          else [f"{path}.{key}: not in the schema"])]
    if isinstance(ours, list):
        if not isinstance(theirs, list) or len(theirs) != len(ours):
            return [f"{path}: list became {theirs!r}"]
        return [e for k, (a, b) in enumerate(zip(ours, theirs)) for e in dropped(a, b, f"{path}[{k}]")]
    return [] if ours == theirs else [f"{path}: {ours!r} became {theirs!r}"]


def schema_errors(dashboard: dict) -> list[str]:
    decoded = model.Dashboard.from_json(copy.deepcopy(dashboard))
    theirs = json.loads(JSONEncoder().encode(decoded))
    return dropped(dashboard, theirs) + type_errors(decoded, model.Dashboard, "$")


# ---------------------------------------------------------------------------------------- tests

def test_compose_runs_the_grafana_the_sdk_describes():
    image = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["grafana"]["image"]
    assert image == GRAFANA
    assert version("grafana-foundation-sdk") == SDK_VERSION


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_dashboard_fits_grafanas_dashboard_schema(name):
    errors = schema_errors(DASHBOARDS[name])
    assert not errors, f"{name}:\n" + "\n".join(errors[:20])


@pytest.mark.parametrize("breakage,expected", [
    (lambda d: d["panels"][1].update(fieldConfg=d["panels"][1].pop("fieldConfig")), "fieldConfg: not in the schema"),
    (lambda d: d["panels"][1]["fieldConfig"]["defaults"]["custom"].update(drawStyle="bar"), "'bar' is not one of"),
    (lambda d: d["panels"][1]["options"]["legend"].update(placement="top"), "'top' is not one of"),
    (lambda d: d["panels"][1]["gridPos"].update(w="wide"), "expected an integer"),
    (lambda d: d.update(graphTooltip=7), "7 is not one of"),
])
def test_the_check_finds_what_grafana_would_not_understand(breakage, expected):
    dashboard = copy.deepcopy(DASHBOARDS["sessions.json"])
    assert dashboard["panels"][1]["type"] == "timeseries"
    breakage(dashboard)
    assert any(expected in e for e in schema_errors(dashboard)), schema_errors(dashboard)
