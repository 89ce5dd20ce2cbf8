"""The printable HTML pages `report` and `statement` write: one stylesheet, tables, formats.

A page is one self-contained file: inline CSS and SVG, no script, nothing loaded from
anywhere, so it opens offline, prints on A4 and reads on a phone (tables scroll sideways in
their own box instead of widening the page).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

CSS = """
:root { --ink: #1d2330; --muted: #5f6b7a; --line: #d9dee5; --bg: #f5f7fa; --accent: #2f6f9f; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff; line-height: 1.45;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 980px; margin: 0 auto; padding: 24px 16px 48px; }
header { border-bottom: 3px solid var(--accent); margin-bottom: 20px; padding-bottom: 8px; }
h1 { font-size: 1.6rem; margin: 0 0 4px; }
h2 { font-size: 1.15rem; margin: 28px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
p { margin: 6px 0; }
.muted, figcaption, .note { color: var(--muted); font-size: 0.9em; }
.kpis { display: grid; grid-template-columns: repeat(auto-fit, minmax(140px, 1fr)); \
gap: 10px; margin: 16px 0; }
.kpi { background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
.kpi .label { color: var(--muted); font-size: 0.85em; }
.kpi .value { font-size: 1.45rem; font-weight: 600; font-variant-numeric: tabular-nums; }
.kpi .sub { color: var(--muted); font-size: 0.8em; }
.kpi.warn { border-color: #d4a017; background: #fff8e1; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 8px 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; font-weight: 500; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; margin: 8px 0; }
table { border-collapse: collapse; width: 100%; font-size: 0.9em; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 8px; border-bottom: 1px solid var(--line); text-align: left; white-space: nowrap; }
td:not(.num):not(.keep) { white-space: normal; max-width: 16em; overflow-wrap: break-word; }
th { background: var(--bg); font-weight: 600; }
td.num, th.num { text-align: right; }
tfoot td { font-weight: 700; border-top: 2px solid var(--ink); border-bottom: none; }
tr.flag td { background: #fff3cd; }
figure { margin: 8px 0 4px; }
.chart { overflow-x: auto; -webkit-overflow-scrolling: touch; }
.chart svg { min-width: 560px; }
svg { width: 100%; height: auto; display: block; }
svg text { font-family: inherit; fill: var(--ink); }
footer { margin-top: 32px; border-top: 1px solid var(--line); padding-top: 8px; }
@media (max-width: 600px) { body { font-size: 14px; } main { padding: 12px 10px 32px; } \
h1 { font-size: 1.3rem; } }
@media print {
  @page { size: A4; margin: 14mm 12mm; }
  body { font-size: 10pt; }
  main { max-width: none; padding: 0; }
  .scroll, .chart { overflow: visible; }
  .chart svg { min-width: 0; }
  table { font-size: 8.5pt; }
  th, td { white-space: normal; }
  section, figure, .kpis, tr { break-inside: avoid; }
  h2 { break-after: avoid; }
  .kpi .value { font-size: 1.15rem; }
  .kpi, th, tr.flag td { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def kwh(wh: Any, digits: int = 3) -> str:
    """Wh as kWh; exact to the Wh with the default 3 decimals."""
    return "-" if blank(wh) else f"{float(wh) / 1000:,.{digits}f}"


def money(cents: Any) -> str:
    return "-" if blank(cents) else f"{float(cents) / 100:,.2f}"


def pct(value: Any) -> str:
    return "-" if blank(value) else f"{float(value):.0f}"


def number(value: Any, digits: int = 1) -> str:
    return "-" if blank(value) else f"{float(value):,.{digits}f}"


Column = tuple[str, bool]   # (heading, numeric); a heading starting with "~" never wraps (times)


def table(columns: Sequence[Column], rows: Sequence[Sequence[Any]], total: Sequence[Any] | None = None,
          flagged: Sequence[bool] | None = None) -> str:
    """A table in its own horizontal scroll box; `total` becomes the footer row."""
    kinds = [" class=num" if numeric else (" class=keep" if heading.startswith("~") else "")
             for heading, numeric in columns]

    def cells(values: Sequence[Any], tag: str = "td") -> str:
        return "".join(f"<{tag}{kind}>{esc(v)}</{tag}>" for v, kind in zip(values, kinds, strict=False))
    head = "".join(f'<th{kind} scope="col">{esc(h.lstrip("~"))}</th>' for (h, _),
                   kind in zip(columns, kinds, strict=True))
    body = "".join(f'<tr{" class=flag" if flagged and flagged[k] else ""}>{cells(r)}</tr>'
                   for k, r in enumerate(rows))
    foot = f"<tfoot><tr>{cells(total)}</tr></tfoot>" if total is not None else ""
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
            f'<tbody>{body}</tbody>{foot}</table></div>')


def page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head>\n"
            f"<body><main>\n{body}\n</main></body></html>\n")
