"""`ev-collector report`: a terminal summary and a designed HTML page with charts.

Figures come from `collector.analysis`: every total is the exact sum of its rows (sessions
rounded once to Wh and cents), every share says over what it is taken. Charts are inline SVG
drawn here, with axes and legends: the page opens offline, loads nothing, needs no script.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from collector.analysis import NO_VEHICLE, Analysis, analyse, energy_by_day
from collector.export import add_common
from collector.pages import blank, esc, kwh, money, number, page, pct, table
from collector.query import NS, QueryError, make_reader, parse_when

COLORS = {"solar": "#e0a800", "grid": "#4f6d9a", "battery": "#2e8b57", "unknown": "#b7bdc6",
          "cost": "#c0392b", "all at the tariff": "#9aa5b1", "soc": "#2e86c1", "efficiency": "#8e44ad"}
SOURCES = (("solar", "solar"), ("grid", "grid"), ("battery", "home battery"), ("unknown", "no split known"))


def period_range(period: str, now: datetime, tz: ZoneInfo) -> tuple[int, int]:
    """The last 30 days, or the calendar month or year containing `now` in local time, up to now."""
    if period == "30d":
        return int(now.timestamp()) * NS - 30 * 86400 * NS, int(now.timestamp()) * NS
    local = now.astimezone(tz)
    first = local.replace(month=1 if period == "year" else local.month, day=1, hour=0, minute=0,
                          second=0, microsecond=0)
    start = datetime(first.year, first.month, 1, tzinfo=tz)
    return int(start.timestamp()) * NS, int(now.timestamp()) * NS


def _when(a: Analysis, ns: int) -> str:
    return datetime.fromtimestamp(ns / NS, tz=a.tz).strftime("%Y-%m-%d %H:%M")


# -- what each headline says -------------------------------------------------------------------

def headlines(a: Analysis) -> list[tuple[str, str, str]]:
    """(label, value, what it counts) for the terminal and the page alike."""
    t, cur = a.totals, a.currency or ""
    n = t["sessions"]
    out = [("sessions", f"{n}", "charging sessions that started in the period"),
           ("energy from the wall", f"{kwh(t['wall_wh'])} kWh",
            "sum of the sessions; equals the per-charger and per-vehicle totals")]
    for key, label in (("solar_wh", "  solar"), ("grid_wh", "  grid"), ("battery_wh", "  home battery"),
                       ("unsplit_wh", "  no split known")):
        out.append((label, f"{kwh(t[key])} kWh", ""))
    out.append(("solar share", f"{pct(t['solar_pct'])} %",
                f"of the {kwh(t['split_wh'])} kWh whose source is known"))
    priced = f"{t['priced']} of {n} sessions priced"
    out += [("cost", f"{money(t['cost_ct'])} {cur}".rstrip(), f"the grid part at the tariff; {priced}"),
            ("all at the tariff", f"{money(t['grid_only_cost_ct'])} {cur}".rstrip(),
             "every kWh at the tariff, as if all came from the grid"),
            ("savings", f"{money(t['savings_ct'])} {cur}".rstrip(), "solar and battery energy not bought"),
            ("into the batteries", f"{kwh(t['into_battery_wh'])} kWh",
             f"{t['efficiency_sessions']} sessions where the car reports it"),
            ("efficiency", f"{pct(t['efficiency_pct'])} %",
             f"{kwh(t['into_battery_wh'])} of {kwh(t['into_battery_wall_wh'])} kWh from the wall reached "
             "the batteries (those sessions)"),
            ("meter check", f"{t['flagged']} flagged",
             "sessions whose meter readings differ from their energy by more than 1 %")]
    return out


def _rows(frame: pd.DataFrame, key: str) -> list[list[str]]:
    return [[r[key], r["sessions"], kwh(r["wall_wh"]), pct(r["solar_pct"]), money(r["cost_ct"]),
             money(r["savings_ct"]), pct(r["efficiency_pct"])] for r in frame.to_dict("records")]


def _total(t: dict[str, Any]) -> list[str]:
    return ["total", t["sessions"], kwh(t["wall_wh"]), pct(t["solar_pct"]), money(t["cost_ct"]),
            money(t["savings_ct"]), pct(t["efficiency_pct"])]


GROUP_COLUMNS = ("sessions", "kWh", "solar %", "cost", "saved", "eff. %")


def _text_table(frame: pd.DataFrame, key: str, t: dict[str, Any]) -> list[str]:
    width = max([len(str(v)) for v in frame[key]] + [len(key), 5]) if not frame.empty else len(key)
    width = min(width, 36)
    fmt = f"  {{:<{width}}} {{:>8}} {{:>12}} {{:>7}} {{:>10}} {{:>10}} {{:>6}}"
    lines = [fmt.format(key, *GROUP_COLUMNS)]
    lines += [fmt.format(str(r[0])[:width], *r[1:]) for r in _rows(frame, key)]
    lines.append(fmt.format(*_total(t)))
    return lines


def summary_text(a: Analysis) -> str:
    lines = [f"EV charging {_when(a, a.start_ns)} to {_when(a, a.end_ns)} ({a.tz.key})", ""]
    for label, value, what in headlines(a):
        lines.append(f"  {label:<22} {value:>16}   {what}".rstrip())
    t = a.totals
    if t["sessions"]:
        lines += ["", "Per charger", *_text_table(a.per_charger, "charger", t)]
        lines += ["", "Per vehicle", *_text_table(a.per_vehicle, "vehicle", t)]
    if not a.meters.empty:
        lines += ["", "Meters: how far each advanced from its first session to its last, beside them",
                  f"  {'meter':<36} {'sessions':>8} {'advanced kWh':>13} {'sessions kWh':>13}"]
        for r in a.meters.to_dict("records"):
            lines.append(f"  {str(r['meter'])[:36]:<36} {r['sessions']:>8} "
                         f"{kwh(r['advanced']):>13} {kwh(r['sessions_wh']):>13}")
    return "\n".join(lines) + "\n"


# -- SVG charts --------------------------------------------------------------------------------

W, H = 760, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 40, 52


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exp:
            return step * exp
    return 10 * exp


def _plot_y(v: float, ymax: float) -> float:
    return H - BOTTOM - (H - BOTTOM - TOP) * v / ymax


def _frame(ymax: float, y_title: str, x_title: str) -> list[str]:
    """Grid lines, y ticks, axis lines and axis titles."""
    out = []
    for k in range(5):
        v = ymax * k / 4
        y = _plot_y(v, ymax)
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e7ec"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="13">{v:,.4g}</text>')
    out.append(f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{H - BOTTOM}" stroke="#5f6b7a"/>')
    out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{H - BOTTOM}" y2="{H - BOTTOM}" stroke="#5f6b7a"/>')
    out.append(f'<text x="14" y="{(TOP + H - BOTTOM) / 2:.0f}" font-size="14" text-anchor="middle" '
               f'transform="rotate(-90 14 {(TOP + H - BOTTOM) / 2:.0f})">{esc(y_title)}</text>')
    out.append(f'<text x="{(LEFT + W - RIGHT) / 2:.0f}" y="{H - 8}" font-size="14" '
               f'text-anchor="middle">{esc(x_title)}</text>')
    return out


def _legend(items: Sequence[tuple[str, str]]) -> list[str]:
    out, x = [], LEFT
    for label, color in items:
        out.append(f'<rect x="{x}" y="9" width="13" height="13" rx="2" fill="{color}"/>')
        out.append(f'<text x="{x + 18}" y="20" font-size="14">{esc(label)}</text>')
        x += 34 + 8 * len(label)
    return out


def _svg(body: list[str], title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" '
            f'aria-label="{esc(title)}"><title>{esc(title)}</title>' + "".join(body) + "</svg>")


def _empty(title: str) -> str:
    return _svg([f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" font-size="14" fill="#5f6b7a">'
                 "no sessions in this period</text>"], title)


def _x_labels(labels: Sequence[str], slot: float) -> list[str]:
    every = max(1, math.ceil(len(labels) / 12))
    return [f'<text x="{LEFT + (i + 0.5) * slot:.1f}" y="{H - BOTTOM + 18}" text-anchor="middle" '
            f'font-size="13">{esc(label)}</text>' for i, label in enumerate(labels) if i % every == 0]


def bar_chart(labels: Sequence[str], series: Sequence[tuple[str, str, Sequence[float]]], y_title: str,
              x_title: str, title: str, stacked: bool = True, short: Any = None) -> str:
    """Bars per label: stacked, or side by side. `series`: (legend label, colour, values)."""
    if not labels:
        return _empty(title)
    n = len(labels)
    heights = ([sum(vals[i] for _, _, vals in series) for i in range(n)] if stacked
               else [max(vals[i] for _, _, vals in series) for i in range(n)])
    ymax = _nice_max(max(heights, default=0.0))
    slot = (W - LEFT - RIGHT) / n
    groups = 1 if stacked else len(series)
    bar = min(max(slot * 0.76 / groups, 1.0), 56.0)
    pad = (slot - bar * groups) / 2
    body = _frame(ymax, y_title, x_title)
    for i, label in enumerate(labels):
        base = 0.0
        for g, (name, color, vals) in enumerate(series):
            v = float(vals[i])
            if v <= 0:
                continue
            x = LEFT + i * slot + pad + (0 if stacked else g * bar)
            y0, y1 = (base, base + v) if stacked else (0.0, v)
            top, bottom = _plot_y(y1, ymax), _plot_y(y0, ymax)
            body.append(f'<rect x="{x:.1f}" y="{top:.1f}" width="{bar:.1f}" height="{bottom - top:.2f}" '
                        f'fill="{color}"><title>{esc(label)} {esc(name)}: {v:,.3f} {esc(y_title)}'
                        '</title></rect>')
            if stacked:
                base = y1
    body += _x_labels([short(label) if short else label for label in labels], slot)
    body += _legend([(name, color) for name, color, _ in series])
    return _svg(body, title)


def session_chart(a: Analysis, title: str) -> str:
    """Per session in time: SoC from start to end (a bar), efficiency (a dot), both in %."""
    s = a.sessions
    if s.empty:
        return _empty(title)
    t0, t1 = a.start_ns / NS, max(a.end_ns / NS, a.start_ns / NS + 1)
    body = _frame(100.0, "%", "session start")
    width = W - LEFT - RIGHT
    for r in s.to_dict("records"):
        t = float(str(r["epoch_s"]).split(".")[0])
        x = LEFT + 6 + (t - t0) / (t1 - t0) * (width - 12)
        # Any: a number, or None/NaN that blank() tells apart
        lo: Any = r.get("soc_start_pct")
        hi: Any = r.get("soc_end_pct")
        eff: Any = r.get("efficiency_pct")
        if not blank(lo) and not blank(hi):
            body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{_plot_y(float(lo), 100):.1f}" '
                        f'y2="{_plot_y(float(hi), 100):.1f}" stroke="{COLORS["soc"]}" stroke-width="5" '
                        f'stroke-linecap="round"><title>{esc(r["local_time"][:16])}: SoC {float(lo):.0f} to '
                        f'{float(hi):.0f} %</title></line>')
        if not blank(eff):
            body.append(f'<circle cx="{x:.1f}" cy="{_plot_y(min(float(eff), 100.0), 100):.1f}" r="4" '
                        f'fill="{COLORS["efficiency"]}"><title>{esc(r["local_time"][:16])}: efficiency '
                        f'{float(eff):.1f} %</title></circle>')
    for k in range(5):      # time axis: five dates
        t = t0 + (t1 - t0) * k / 4
        x = LEFT + 6 + (t - t0) / (t1 - t0) * (width - 12)
        label = datetime.fromtimestamp(t, tz=a.tz).strftime("%m-%d")
        body.append(f'<text x="{x:.1f}" y="{H - BOTTOM + 18}" text-anchor="middle" font-size="13">'
                    f'{label}</text>')
    body += _legend([("state of charge, start to end", COLORS["soc"]), ("efficiency", COLORS["efficiency"])])
    return _svg(body, title)


# -- the page ----------------------------------------------------------------------------------

def _kpi(label: str, value: str, sub: str, warn: bool = False) -> str:
    return (f'<div class="kpi{" warn" if warn else ""}"><div class="label">{esc(label)}</div>'
            f'<div class="value">{esc(value)}</div><div class="sub">{esc(sub)}</div></div>')


def _group_table(frame: pd.DataFrame, key: str, t: dict[str, Any], cur: str) -> str:
    columns = [(key, False), ("sessions", True), ("kWh", True), ("solar %", True),
               (f"cost {cur}".strip(), True), (f"saved {cur}".strip(), True), ("efficiency %", True)]
    return table(columns, _rows(frame, key), _total(t))


def _sessions_table(a: Analysis, cur: str) -> str:
    s = a.sessions
    columns = [("~start", False), ("~end", False), ("charger", False), ("vehicle", False), ("card", False),
               ("kWh", True), ("solar kWh", True), ("grid kWh", True), ("battery kWh", True),
               ("price/kWh", True), (f"cost {cur}".strip(), True), ("SoC %", True), ("eff. %", True),
               ("meter", False)]
    rows, flags = [], []
    for r in s.to_dict("records"):
        split = r["unsplit_wh"] == 0
        soc = ("-" if blank(r["soc_start_pct"]) or blank(r["soc_end_pct"])
               else f"{float(r['soc_start_pct']):.0f}→{float(r['soc_end_pct']):.0f}")
        rows.append([r["local_time"][:16].replace("T", " "),
                     (r["end_local_time"] or "")[:16].replace("T", " "),
                     r["charger"], r["vehicle"] or "-", r["card"] or "-", kwh(r["wall_wh"]),
                     kwh(r["solar_wh"]) if split else "-", kwh(r["grid_wh"]) if split else "-",
                     kwh(r["battery_wh"]) if split else "-", number(r["price_per_kwh"], 4),
                     money(r["cost_ct"]), soc, pct(r["efficiency_pct"]),
                     "differs" if r["flagged"] else ("ok" if not blank(r["meter_deviation_pct"]) else "-")])
        flags.append(bool(r["flagged"]))
    t = a.totals
    total = ["total", "", "", "", "", kwh(t["wall_wh"]), kwh(t["solar_wh"]), kwh(t["grid_wh"]),
             kwh(t["battery_wh"]), "", money(t["cost_ct"]), "", pct(t["efficiency_pct"]),
             f"{t['flagged']} differ"]
    return table(columns, rows, total, flags)


def html_report(a: Analysis) -> str:
    t, cur = a.totals, a.currency or ""
    days = energy_by_day(a)
    day_labels = list(days["date"])
    energy_svg = bar_chart(day_labels,
                           [(label, COLORS[key], list(days[key] / 1000)) for key, label in SOURCES],
                           "kWh", "day the session started", "Energy from the wall per day, by source",
                           short=lambda d: d[5:])
    m = a.per_month
    cost_svg = bar_chart(list(m["month"]) if not m.empty else [],
                         [("cost (grid part)", COLORS["cost"],
                           list(m["cost_ct"].fillna(0) / 100) if not m.empty else []),
                          ("all at the tariff", COLORS["all at the tariff"],
                           list(m["grid_only_cost_ct"].fillna(0) / 100) if not m.empty else [])],
                         cur or "cost", "month", "Cost per month", stacked=False)
    soc_svg = session_chart(a, "State of charge and efficiency per session")
    head = {label.strip(): (value, what) for label, value, what in headlines(a)}
    kpis = "".join([
        _kpi("Energy from the wall", f"{kwh(t['wall_wh'], 1)} kWh", f"{t['sessions']} sessions"),
        _kpi("Solar share", f"{pct(t['solar_pct'])} %", head["solar share"][1]),
        _kpi("Cost", f"{money(t['cost_ct'])} {cur}".strip(), head["cost"][1]),
        _kpi("Saved", f"{money(t['savings_ct'])} {cur}".strip(), "solar and battery energy not bought"),
        _kpi("Efficiency", f"{pct(t['efficiency_pct'])} %",
             f"over {t['efficiency_sessions']} sessions with the car's reading"),
        _kpi("Meter check", f"{t['flagged']} flagged", "meter and energy differ by more than 1 %",
             warn=t["flagged"] > 0)])
    facts = "".join(f"<tr><th scope=row>{esc(label.strip())}</th><td class=num>{esc(value)}</td>"
                    f"<td>{esc(what)}</td></tr>" for label, value, what in headlines(a))
    day_rows = [[r["date"], r["sessions"], kwh(r["wall_wh"]), kwh(r["solar_wh"]), kwh(r["grid_wh"]),
                 kwh(r["battery_wh"]), kwh(r["unsplit_wh"]), money(r["cost_ct"])]
                for r in a.per_day.to_dict("records")]
    day_table = table([("~day", False), ("sessions", True), ("kWh", True), ("solar", True), ("grid", True),
                       ("battery", True), ("no split", True), (f"cost {cur}".strip(), True)], day_rows,
                      ["total", t["sessions"], kwh(t["wall_wh"]), kwh(t["solar_wh"]), kwh(t["grid_wh"]),
                       kwh(t["battery_wh"]), kwh(t["unsplit_wh"]), money(t["cost_ct"])])
    meter_rows = [[r["meter"], r["charger"], r["sessions"], kwh(r["advanced"]), kwh(r["sessions_wh"])]
                  for r in a.meters.to_dict("records")]
    body = f"""<header><h1>EV charging report</h1>
<p class="muted">{esc(_when(a, a.start_ns))} to {esc(_when(a, a.end_ns))} ({esc(a.tz.key)}) &middot;
generated {esc(datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))}</p></header>
<section class="kpis">{kpis}</section>
<section><h2>Energy per day</h2><figure class="chart">{energy_svg}\
<figcaption>Each session's energy on the day it
started, split by source where the charger or evcc knows it. The days add up to the
{esc(kwh(t['wall_wh']))} kWh above.</figcaption></figure></section>
<section><h2>Per charger</h2>{_group_table(a.per_charger, "charger", t, cur)}</section>
<section><h2>Per vehicle</h2>{_group_table(a.per_vehicle, "vehicle", t, cur)}
<p class="note">{esc(NO_VEHICLE)}: sessions no source tied to a car.</p></section>
<section><h2>Cost per month</h2><figure class="chart">{cost_svg}\
<figcaption>Cost is the grid part of the energy at
the tariff; "all at the tariff" prices every kWh as if it came from the grid.</figcaption></figure></section>
<section><h2>State of charge and efficiency</h2><figure class="chart">{soc_svg}\
<figcaption>Efficiency is the energy
the car reports into its battery over the energy from the wall.</figcaption></figure></section>
<section><h2>How the figures are counted</h2>\
<div class="scroll"><table><tbody>{facts}</tbody></table></div></section>
<section><h2>Per day</h2>{day_table}</section>
<section><h2>Sessions</h2>{_sessions_table(a, cur)}
<p class="note">Energies in kWh to the Wh, money to the cent, each session rounded once: every
total is the sum of the rows above it.</p></section>
<section><h2>Meters</h2>{table([("meter", False), ("charger", False), ("sessions", True),
                                   ("advanced kWh", True), ("sessions kWh", True)], meter_rows)}
<p class="note">How far each charger meter (go-e <code>eto</code>, evcc <code>chargeTotalImport</code>,
ev.energy meter reading) advanced from its first session's start reading to its last session's
end reading, beside the energy of those sessions: a cross-check. More on the meter than in the
sessions is energy between them that no session holds (a charge the data missed, another
user). <code>statement</code> shows each meter's own count over its month.</p></section>
<footer class="muted">ev-collector report &middot; \
figures from the charging_session records of the period</footer>"""
    return page(f"EV charging report {_when(a, a.start_ns)[:10]} to {_when(a, a.end_ns)[:10]}", body)


# -- the command ------------------------------------------------------------------------------

def _handle(args: argparse.Namespace) -> int:
    from collector.config import load_config

    config = load_config(args.config) if args.config else None
    try:
        try:
            tz = ZoneInfo(args.tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise QueryError(f"unknown time zone {args.tz!r}") from None
        now = datetime.now(UTC)
        start, end = period_range(args.period, now, tz)
        if args.from_:
            start = parse_when(args.from_, tz)
        if args.to:
            end = parse_when(args.to, tz)
        reader = make_reader(config, args.store)
        try:
            result = analyse(reader, start, end, tz)
        finally:
            reader.close()
    except QueryError as exc:
        print(f"ev-collector report: {exc}", file=sys.stderr)
        return 2
    print(summary_text(result), end="", flush=True)
    if args.html:
        with open(args.html, "w", encoding="utf-8") as handle:
            handle.write(html_report(result))
        print(f"HTML report written to {args.html}", file=sys.stderr)
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("report", help="summary of energy, solar share, cost and efficiency")
    add_common(parser)
    # A rolling default: a calendar month shows next to nothing in its first days.
    parser.add_argument("--period", choices=["30d", "month", "year"], default="30d",
                        help="the last 30 days (default), this calendar month or this calendar "
                             "year; --from/--to override")
    parser.add_argument("--html", metavar="FILE", help="also write an HTML report with charts")
    parser.set_defaults(handler=_handle)
