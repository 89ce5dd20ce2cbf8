"""The schema of everything the collector writes: every declared measurement, and its document.

Gathers the declarations (`measurement.py`) of every registered source and of the collector's
own measurements; `docs/schema.md` is rendered from them (a test keeps it current).
"""

from __future__ import annotations

from collections.abc import Iterable

from collector.health import HEALTH
from collector.measurement import ON_CHANGE, Measurement
from collector.rollups import ROLLUP_DAILY, ROLLUP_MONTHLY
from collector.sessions import CHARGING_SESSION
from collector.sources import load_all_sources


def all_measurements() -> list[Measurement]:
    """Every measurement the collector writes: the collector's own and every registered source's."""
    own = (HEALTH, CHARGING_SESSION, ROLLUP_DAILY, ROLLUP_MONTHLY)
    sources = (m for source in load_all_sources().values() for m in source.measurements)
    unique = {m.name: m for m in (*own, *sources)}
    return sorted(unique.values(), key=lambda m: (m.source != "collector", m.source, m.name))


def render_markdown(measurements: Iterable[Measurement]) -> str:
    lines = [
        "# Schema of measurements",
        "",
        "The contract for dashboards and export. Generated from the declarations in the code",
        "(`ev-collector schema > docs/schema.md`); a test fails when this file is stale.",
        "",
        "Every field has exactly one type. Timestamps are UTC with nanosecond precision. Tags are",
        "low-cardinality identities and are fixed per measurement; no name is both tag and field.",
        "A field whose value the source did not send (null, missing key) is absent from the point.",
        "",
        f"**Written on change** (where a measurement says so): {ON_CHANGE}.",
        "",
    ]
    for m in measurements:
        lines += [f"## `{m.name}`", "", f"{m.description}", "", f"- Source: `{m.source}`",
                  f"- Time: {m.time}"]
        if m.on_change:
            lines.append(f"- Written on change (see above): {m.on_change}")
        lines.append("")
        lines += ["| tag | meaning |", "| --- | --- |"]
        lines += [f"| `{t.name}` | {t.description} |" for t in m.tags]
        lines += ["", "| field | type | unit | meaning |", "| --- | --- | --- | --- |"]
        lines += [f"| `{fl.name}` | {fl.type.value} | {fl.unit or '-'} | {fl.description} |"
                  for fl in m.fields]
        lines.append("")
    return "\n".join(lines)
