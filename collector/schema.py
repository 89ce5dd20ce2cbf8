"""The schema of everything the collector writes: every declared measurement, and its document.

Gathers the declarations (`measurement.py`) of every registered source and of the collector's
own measurements; `docs/schema.md` is rendered from them (a test keeps it current).
"""

from __future__ import annotations

from typing import Iterable

import collector.health  # noqa: F401  (declares collector_health)
import collector.rollups  # noqa: F401  (declares rollup_daily, rollup_monthly)
import collector.sessions  # noqa: F401  (declares charging_session)
from collector.measurement import Measurement, registered
from collector.sources import load_all_sources


def all_measurements() -> list[Measurement]:
    """Every declared measurement, after importing every registered source."""
    load_all_sources()
    return sorted(registered(), key=lambda m: (m.source != "collector", m.source, m.name))


def render_markdown(measurements: Iterable[Measurement]) -> str:
    lines = [
        "# Schema of measurements",
        "",
        "The contract for dashboards and export. Generated from the declarations in the code",
        "(`python -m collector.schema > docs/schema.md`); a test fails when this file is stale.",
        "",
        "Every field has exactly one type. Timestamps are UTC with nanosecond precision. Tags are",
        "low-cardinality identities and are fixed per measurement; no name is both tag and field.",
        "A field whose value the source did not send (null, missing key) is absent from the point.",
        "",
    ]
    for m in measurements:
        lines += [f"## `{m.name}`", "", f"{m.description}", "", f"- Source: `{m.source}`",
                  f"- Time: {m.time}", ""]
        lines += ["| tag | meaning |", "| --- | --- |"]
        lines += [f"| `{t.name}` | {t.description} |" for t in m.tags]
        lines += ["", "| field | type | unit | meaning |", "| --- | --- | --- | --- |"]
        lines += [f"| `{fl.name}` | {fl.type.value} | {fl.unit or '-'} | {fl.description} |"
                  for fl in m.fields]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_markdown(all_measurements()), end="")
