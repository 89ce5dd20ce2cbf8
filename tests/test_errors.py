"""One error vocabulary: every exception the project defines derives from CollectorError."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import collector
from collector.errors import CollectorError


def _project_exceptions() -> dict[str, type[BaseException]]:
    """Exceptions defined in `collector`, but for the simulators' stand-ins for a library's
    own (`collector.sim.goe.SimTimeout` is an httpx timeout on purpose)."""
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(collector.__path__, "collector."):
        if info.name.startswith("collector.sim."):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (inspect.isclass(value) and issubclass(value, BaseException)
                    and value.__module__.startswith("collector.")):
                found[f"{value.__module__}.{name}"] = value
    return found


def test_every_project_exception_has_the_one_root() -> None:
    found = _project_exceptions()
    assert {"collector.config.ConfigError", "collector.http_outcomes.SourceError",
            "collector.influx.WriteError", "collector.store.StoreError"} <= set(found)
    assert [name for name, cls in found.items() if not issubclass(cls, CollectorError)] == []


def test_standard_bases_are_kept_for_those_that_had_them() -> None:
    from collector.config import ConfigError
    from collector.query import QueryError
    from collector.store import StoreError

    assert issubclass(ConfigError, ValueError) and issubclass(QueryError, ValueError)
    assert issubclass(StoreError, RuntimeError)
