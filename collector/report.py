"""`ev-collector report`: a terminal summary and an HTML file with charts.

Charts are inline SVG drawn here: the file opens offline, loads nothing from the internet,
and needs no plotting library.
"""

from __future__ import annotations

import argparse
import html
import math
import sys
from datetime import datetime, timezone
from typing import Any, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from collector.analysis import Analysis, analyse, energy_by_day
from collector.export import NS, ExportError, add_common, make_reader, parse_when

COLORS = {"solar": "#f2b705", "grid": "#5b6c8f", "battery": "#3c9d5d", "unknown": "#b9b9b9",
          "cost": "#c0392b", "grid_only_cost": "#95a5a6", "soc": "#2e86c1", "efficiency": "#8e44ad"}


def period_range(period: str, now: datetime, tz: ZoneInfo) -> tuple[int, int]:
    """The calendar month or year containing `now`, in local time, up to now."""
    local = now.astimezone(tz)
    first = local.replace(month=1 if period == "year" else local.month, day=1, hour=0, minute=0,
                          second=0, microsecond=0)
    start = datetime(first.year, first.month, 1, tzinfo=tz)
    return int(start.timestamp()) * NS, int(now.timestamp()) * NS


def _fmt(value: Any, digits: int = 1, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}{suffix}"


def _table(frame: pd.DataFrame, key: str, currency: str) -> list[str]:
    lines = [f"  {key:<22} {'sessions':>8} {'kWh':>10} {'solar':>7} {'cost':>10} {'saved':>10} {'eff.':>6}"]
    for row in frame.itertuples(index=False):
        r = row._asdict()
        lines.append(f"  {str(r[key])[:22]:<22} {r['sessions']:>8} {_fmt(r['energy_kwh']):>10} "
                     f"{_fmt(r['solar_pct'], 0, '%'):>7} {_fmt(r['cost'], 2):>10} "
                     f"{_fmt(r['savings'], 2):>10} {_fmt(r['efficiency_pct'], 0, '%'):>6}")
    return lines


def summary_text(a: Analysis) -> str:
    t = a.totals
    cur = a.currency or ""
    start = datetime.fromtimestamp(a.start_ns / NS, tz=a.tz).strftime("%Y-%m-%d")
    end = datetime.fromtimestamp(a.end_ns / NS, tz=a.tz).strftime("%Y-%m-%d %H:%M")
    lines = [f"EV charging {start} .. {end} ({a.tz.key})", "",
             f"  energy from the wall   {_fmt(t['energy_kwh'])} kWh",
             f"  solar share            {_fmt(t['solar_pct'], 0, ' %')}",
             f"  sessions               {t['sessions']}",
             f"  cost                   {_fmt(t['cost'], 2)} {cur}",
             f"  grid-only cost         {_fmt(t['grid_only_cost'], 2)} {cur}",
             f"  savings                {_fmt(t['savings'], 2)} {cur}",
             f"  into the batteries     {_fmt(t['vehicle_energy_kwh'])} kWh",
             f"  efficiency             {_fmt(t['efficiency_pct'], 0, ' %')}", ""]
    if not a.per_vehicle.empty:
        lines += ["Per vehicle", *_table(a.per_vehicle, "vehicle", cur), ""]
    if not a.per_charger.empty:
        lines += ["Per charger", *_table(a.per_charger, "charger", cur), ""]
    return "\n".join(lines)


# -- SVG ------------------------------------------------------------------------------------

W, H, PAD_L, PAD_B, PAD_T = 760, 260, 56, 48, 16


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exp:
            return step * exp
    return 10 * exp


def _axes(ymax: float, unit: str) -> list[str]:
    out = []
    for k in range(5):
        v = ymax * k / 4
        y = H - PAD_B - (H - PAD_B - PAD_T) * k / 4
        out.append(f'<line x1="{PAD_L}" x2="{W - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end">{v:g}</text>')
    out.append(f'<text x="12" y="{PAD_T + 4}" >{html.escape(unit)}</text>')
    return out


def _legend(names: Sequence[str]) -> list[str]:
    out, x = [], PAD_L
    for name in names:
        out.append(f'<rect x="{x}" y="{H - 14}" width="10" height="10" fill="{COLORS.get(name, "#777")}"/>')
        out.append(f'<text x="{x + 14}" y="{H - 5}">{html.escape(name.replace("_", " "))}</text>')
        x += 24 + 8 * len(name)
    return out


def _svg(body: list[str], title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" '
            f'font-family="sans-serif" font-size="11"><title>{html.escape(title)}</title>'
            + "".join(body) + "</svg>")


def bar_chart(labels: Sequence[str], series: dict[str, Sequence[float]], unit: str, title: str,
              stacked: bool = True) -> str:
    n = max(len(labels), 1)
    totals = [sum(vals[i] for vals in series.values()) if stacked else
              max((vals[i] for vals in series.values()), default=0) for i in range(len(labels))]
    ymax = _nice_max(max(totals, default=0.0))
    scale = (H - PAD_B - PAD_T) / ymax
    slot = (W - PAD_L - 8) / n
    body = _axes(ymax, unit)
    groups = 1 if stacked else max(len(series), 1)
    bar_w = max(slot * 0.8 / groups, 1.0)
    for i, label in enumerate(labels):
        x0 = PAD_L + i * slot + slot * 0.1
        base = H - PAD_B
        for g, (name, vals) in enumerate(series.items()):
            h = vals[i] * scale
            x = x0 if stacked else x0 + g * bar_w
            y = base - h if stacked else H - PAD_B - h
            body.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                        f'fill="{COLORS.get(name, "#777")}"><title>{html.escape(label)} {html.escape(name)}: '
                        f'{vals[i]:.2f} {html.escape(unit)}</title></rect>')
            if stacked:
                base -= h
        every = max(1, n // 12)
        if i % every == 0:
            body.append(f'<text x="{x0 + slot * 0.4:.1f}" y="{H - PAD_B + 14}" text-anchor="middle">'
                        f'{html.escape(label[5:] if len(label) == 10 else label)}</text>')
    return _svg(body + _legend(list(series)), title)


def session_chart(times: Sequence[float], low: Sequence[float], high: Sequence[float],
                  points: Sequence[float], title: str) -> str:
    """SoC start..end as a vertical bar per session, efficiency as a dot (both in %)."""
    body = _axes(100.0, "%")
    if times:
        t0, t1 = min(times), max(times)
        span = (t1 - t0) or 1.0
        scale = (H - PAD_B - PAD_T) / 100.0
        for t, lo, hi, eff in zip(times, low, high, points):
            x = PAD_L + 8 + (t - t0) / span * (W - PAD_L - 24)
            if not (math.isnan(lo) or math.isnan(hi)):
                body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{H - PAD_B - lo * scale:.1f}" '
                            f'y2="{H - PAD_B - hi * scale:.1f}" stroke="{COLORS["soc"]}" stroke-width="4">'
                            f'<title>SoC {lo:.0f} to {hi:.0f} %</title></line>')
            if not math.isnan(eff):
                body.append(f'<circle cx="{x:.1f}" cy="{H - PAD_B - min(eff, 100) * scale:.1f}" r="3" '
                            f'fill="{COLORS["efficiency"]}"><title>efficiency {eff:.0f} %</title></circle>')
    return _svg(body + _legend(["soc", "efficiency"]), title)


def html_report(a: Analysis) -> str:
    days = energy_by_day(a)
    energy_svg = bar_chart(list(days["date"]), {k: list(days[k] / 1000) for k in
                                                 ("solar", "grid", "battery", "unknown")},
                           "kWh", "Energy per day by source")
    cur = a.currency or "currency"
    m = a.monthly_cost.fillna(0.0)
    cost_svg = bar_chart(list(m["month"]), {"cost": list(m["cost"]), "grid_only_cost": list(m["grid_only_cost"])},
                         cur, "Cost per month", stacked=False)
    s = a.sessions
    times = [float(v) for v in s["epoch_s"]] if not s.empty else []
    col = (lambda name: [float(v) for v in s[name].astype("float64").fillna(float("nan"))]) if not s.empty else (lambda name: [])
    soc_svg = session_chart(times, col("soc_start_pct"), col("soc_end_pct"), col("efficiency_pct"),
                            "SoC and efficiency per session")
    summary = html.escape(summary_text(a))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>EV charging report</title>
<style>body{{font-family:sans-serif;max-width:800px;margin:2em auto;color:#222}}
pre{{background:#f6f6f6;padding:1em;overflow-x:auto}}svg{{width:100%;height:auto}}</style></head>
<body><h1>EV charging report</h1><pre>{summary}</pre>
<h2>Energy per day by source</h2>{energy_svg}
<h2>Cost per month</h2>{cost_svg}
<h2>State of charge and efficiency</h2>{soc_svg}
</body></html>
"""


def _handle(args: argparse.Namespace) -> int:
    from collector.config import load_config

    config = load_config(args.config) if args.config else None
    try:
        try:
            tz = ZoneInfo(args.tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ExportError(f"unknown time zone {args.tz!r}") from None
        now = datetime.now(timezone.utc)
        start, end = period_range(args.period, now, tz)
        if args.from_:
            start = parse_when(args.from_, tz)
        if args.to:
            end = parse_when(args.to, tz)
        names = {}
        if config is not None and config.sessions is not None:
            names = {i: n for n, c in config.sessions.chargers.items() for i in c.identities()}
        reader = make_reader(config, args.store)
        try:
            result = analyse(reader, start, end, tz, names)
        finally:
            (getattr(reader, "close", None) or reader.store.close)()
    except ExportError as exc:
        print(f"ev-collector report: {exc}", file=sys.stderr)
        return 2
    print(summary_text(result))
    if args.html:
        with open(args.html, "w", encoding="utf-8") as handle:
            handle.write(html_report(result))
        print(f"HTML report written to {args.html}", file=sys.stderr)
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("report", help="summary of energy, solar share, cost and efficiency")
    add_common(parser)
    parser.add_argument("--period", choices=["month", "year"], default="month",
                        help="this calendar month or year (default month); --from/--to override")
    parser.add_argument("--html", metavar="FILE", help="also write an HTML report with charts")
    parser.set_defaults(handler=_handle)
