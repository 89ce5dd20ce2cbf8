"""The source registry: one line per source.

A source package exposes `SOURCE`, a `SourcePackage` (`collector/sources/base.py`): its config
section, measurements, jobs and whatever else it contributes. Central modules iterate
`load_all_sources()` and name no source. See docs/adding-a-source.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # types only: a source package is imported when the registry is read
    from collector.sources.base import DemoHook, SourcePackage
    from collector.specs import CounterSpec

REGISTRY: dict[str, str] = {
    # name in [sources.<name>]  ->  package; in the order the demo lists them
    "goe": "collector.sources.goe",
    "evcc": "collector.sources.evcc",
    "evenergy": "collector.sources.evenergy",
    "ovms": "collector.sources.ovms",
}

_loaded: dict[tuple[str, str], SourcePackage] = {}     # (name, package) -> its SOURCE


def load_all_sources() -> dict[str, SourcePackage]:
    """Every registered source package, imported (which registers its measurements)."""
    out = {}
    for name, package in REGISTRY.items():
        if (name, package) not in _loaded:
            source: SourcePackage = importlib.import_module(package).SOURCE
            if source.name != name:
                raise ValueError(f"source package {package} declares {source.name!r}, "
                                 f"registered as {name!r}")
            _loaded[name, package] = source
        out[name] = _loaded[name, package]
    return out


def by_preference() -> list[SourcePackage]:
    """The registered sources, preferred first (`SourcePackage.preference`), then by name."""
    return sorted(load_all_sources().values(), key=lambda source: (source.preference, source.name))


def counter_specs() -> list[CounterSpec]:
    """Every source's energy counters for exported sums, preferred source first."""
    return [spec for source in by_preference() for spec in source.export_counters]


def demo_hooks() -> dict[str, DemoHook]:
    """The sources that take part in the demo and the history, by name, in registry order."""
    return {name: source.demo() for name, source in load_all_sources().items()
            if source.demo is not None}


def instances(sources: object, name: str) -> list:
    """The configured instances of source `name`: none, the single table, or each of
    `[[sources.<name>]]`."""
    section = getattr(sources, name, None)
    if section is None:
        return []
    return list(section) if isinstance(section, list) else [section]
