"""The source registry: one line per source.

A source package exposes `Config` (its pydantic config section), `MEASUREMENTS` (registered
into the schema) and `build(config, context) -> Source`. See `collector/sources/base.py`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

REGISTRY: dict[str, str] = {
    # name in [sources.<name>]  ->  package
    "evcc": "collector.sources.evcc",
    "evenergy": "collector.sources.evenergy",
    "goe": "collector.sources.goe",
    "ovms": "collector.sources.ovms",
}

_loaded: dict[str, ModuleType] = {}


def load_all_sources() -> dict[str, ModuleType]:
    """Import every registered source package (which registers its measurements)."""
    for name, package in REGISTRY.items():
        if name not in _loaded:
            _loaded[name] = importlib.import_module(package)
    return dict(_loaded)


def instances(sources: object, name: str) -> list:
    """The configured instances of source `name`: none, the single table, or each of
    `[[sources.<name>]]`."""
    section = getattr(sources, name, None)
    if section is None:
        return []
    return list(section) if isinstance(section, list) else [section]
