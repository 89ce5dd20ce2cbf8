"""`ev-collector statement`: a monthly charging statement per vehicle or card, to hand over.

For company-car drivers reimbursed per proven kWh (from 2026 German rules: the kWh times the
driver's own tariff, or a published flat price per kWh), landlords and households sharing a
wallbox. Each statement lists every session that started in the month with its times, meter
readings, kWh, card or vehicle, odometer, price per kWh and its source, and amount; totals
that are the sums of the rows (each session rounded once to the Wh and the cent); the tariff
method; which meter measured the energy; and each meter's own count over the month beside the
sessions' sum. Written as CSV, a printable HTML page and, through fpdf2, a PDF.
"""

from __future__ import annotations

import argparse
import csv
import logging
import re
import sys
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from collector.analysis import rounded, summarise
from collector.pages import blank, esc, kwh, money, page, table
from collector.query import NS, FrameReader, QueryError, make_reader
from collector.query.counters import LEAD_IN_NS
from collector.query.frames import Request, sessions_frame
from collector.query.readers import declared
from collector.sources import counter_specs, load_all_sources
from collector.specs import CounterSpec

MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
METER_NAMES = {"eto": "the go-eCharger's internal meter (eto)",
               "chargeTotalImport": "the charger meter evcc reads (chargeTotalImport)",
               "meter reading": "the EVSE's meter as ev.energy reports it"}
COLUMNS = ("start", "end", "charger", "vehicle", "card", "odometer_km", "meter_start_wh", "meter_end_wh",
           "energy_kwh", "solar_kwh", "grid_kwh", "battery_kwh", "price_per_kwh", "price_source",
           "amount", "grid_cost", "currency", "meter_check")


@dataclass
class MeterCount:
    """What one meter counted over the month, beside the sessions' sum on it."""

    meter: str
    first: float | None = None        # reading at the start of the month (or the first in it)
    first_at: str = ""
    last: float | None = None         # reading at the end of the month (or the last in it)
    last_at: str = ""
    counted_wh: float | None = None   # sum of the increments (a reset counts from zero)
    sessions_wh: float = 0.0


@dataclass
class Statement:
    who: str                          # the vehicle's or card's name
    kind: str                         # "vehicle" or "card"
    month: str                        # YYYY-MM
    tz: ZoneInfo
    sessions: pd.DataFrame            # rounded session rows
    totals: dict[str, Any]
    holder: Any                       # collector.sessions.config.Holder
    tariff: str                       # the tariff method, in words
    currency: str
    meters: list[MeterCount] = field(default_factory=list)

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "-", self.who).strip("-.") or "unnamed"

    @property
    def title(self) -> str:
        when = datetime.strptime(self.month, "%Y-%m").strftime("%B %Y")
        return f"Charging statement {when}: {self.who}"


def month_range(month: str, tz: ZoneInfo) -> tuple[int, int]:
    match = MONTH.match(month)
    if not match:
        raise QueryError(f"--month must be YYYY-MM, e.g. 2026-11, got {month!r}")
    year, mon = int(match.group(1)), int(match.group(2))
    start = datetime(year, mon, 1, tzinfo=tz)
    end = datetime(year + (mon == 12), 1 if mon == 12 else mon + 1, 1, tzinfo=tz)
    return int(start.timestamp()) * NS, int(end.timestamp()) * NS


def tariff_method(sessions_cfg: Any, seen: Sequence[str]) -> str:
    """The tariff method in words, from `[sessions]` and the price sources the rows carry."""
    cur = sessions_cfg.currency if sessions_cfg is not None else ""
    kind = sessions_cfg.tariff if sessions_cfg is not None else "none"
    price = sessions_cfg.price if sessions_cfg is not None else None
    fallback = f"; {price:g} {cur}/kWh for hours it has no price for" if price is not None else ""
    if kind == "fixed":
        text = f"fixed: the holder's tariff, {price:g} {cur}/kWh"
    elif kind == "flat":
        text = f"flat: a published flat price of {price:g} {cur}/kWh"
    elif kind == "tou":
        rules = ", ".join(f"{e.start}-{e.end} {e.price:g}" for e in sessions_cfg.tou)
        text = f"time-of-use ({sessions_cfg.timezone}): {rules} {cur}/kWh{fallback}"
    elif kind in load_all_sources():
        text = f"dynamic: the grid price {kind} published for each hour the energy was drawn{fallback}"
    else:
        text = "none configured: sessions carry no price ([sessions] tariff)"
    if seen:
        text += f" (in these sessions: {', '.join(sorted(set(seen)))})"
    return text


def meter_line(meters: Sequence[str], unmetered: int, sources: Sequence[str]) -> str:
    """Which meter measured the energy, in words."""
    parts = []
    for meter in meters:
        identity, _, kind = meter.partition(" ")
        parts.append(f"{METER_NAMES.get(kind, kind)} of {identity}")
    text = ("Energy measured by " + "; ".join(parts) + ". Meter readings in Wh.") if parts else ""
    if unmetered:
        text += (f" {unmetered} session(s) without meter readings: their energy is what "
                 f"{', '.join(sorted(set(sources))) or 'the source'} reported.")
    return text.strip()


def _counter_spec(meter: str,
                  specs: Sequence[CounterSpec] | None) -> tuple[str, CounterSpec | None, list[str]]:
    """The counter behind a session's `meter` ("goe:012345 eto"): its identity, the counter
    spec of that source among `specs` (default: every registered source's), and the
    measurement's tag names."""
    identity = meter.partition(" ")[0]
    source = identity.partition(":")[0]
    for spec in counter_specs() if specs is None else specs:
        m = declared(spec.measurement)
        if m.source == source:
            return identity, spec, [t.name for t in m.tags]
    return identity, None, []


def count_meter(reader: FrameReader, meter: str, start_ns: int, end_ns: int, tz: ZoneInfo,
                specs: Sequence[CounterSpec] | None = None) -> MeterCount:
    """A meter's readings at the month's edges and what it counted in between (a reading
    just before the month starts counts as its start)."""
    out = MeterCount(meter)
    identity, spec, tag_names = _counter_spec(meter, specs)
    if spec is None:
        return out
    fieldname = spec.counters[0][0]
    before: tuple[int, float] | None = None
    prev = 0.0
    counted = 0.0
    for frame in reader.frames(spec.measurement, [fieldname], start_ns - LEAD_IN_NS, end_ns):
        groups = frame.groupby(tag_names, sort=False) if tag_names else [((), frame)]
        for key, rows in groups:
            values = key if isinstance(key, tuple) else (key,)
            if spec.identity(dict(zip(tag_names, map(str, values), strict=True))) != identity:
                continue
            rows = rows[["time_ns", fieldname]].dropna()
            for time_ns, value in zip(rows["time_ns"].astype("int64"), rows[fieldname].astype("float64"),
                                      strict=True):
                if time_ns < start_ns:
                    before = (int(time_ns), float(value))
                    continue
                if out.first is None:
                    first = before if before is not None else (int(time_ns), float(value))
                    out.first, out.first_at, prev = first[1], _local(first[0], tz), first[1]
                counted += value - prev if value >= prev else value      # a drop: reset, counts anew
                prev = value
                out.last, out.last_at = float(value), _local(int(time_ns), tz)
    if out.first is not None:
        out.counted_wh = round(counted, 0)
    return out


def _local(time_ns: int, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(time_ns / NS, tz=tz).strftime("%Y-%m-%d %H:%M")


def _row(r: Mapping[Hashable, Any]) -> dict[str, Any]:
    """One session as the statement shows it (Wh integers, cents)."""
    split = r["unsplit_wh"] == 0
    return {
        "start": r["local_time"][:16].replace("T", " "),
        "end": (r["end_local_time"] or "")[:16].replace("T", " "),
        "charger": r["charger"], "vehicle": r["vehicle"] or "", "card": r["card"] or "",
        "odometer_km": "" if blank(r["odometer_km"]) else f"{float(r['odometer_km']):.1f}",
        "meter_start_wh": "" if blank(r["meter_start_wh"]) else f"{float(r['meter_start_wh']):.0f}",
        "meter_end_wh": "" if blank(r["meter_end_wh"]) else f"{float(r['meter_end_wh']):.0f}",
        "energy_kwh": kwh(r["wall_wh"]).replace(",", ""),
        "solar_kwh": kwh(r["solar_wh"]).replace(",", "") if split else "",
        "grid_kwh": kwh(r["grid_wh"]).replace(",", "") if split else "",
        "battery_kwh": kwh(r["battery_wh"]).replace(",", "") if split else "",
        "price_per_kwh": "" if blank(r["price_per_kwh"]) else f"{float(r['price_per_kwh']):.4f}",
        "price_source": r["price_source"] or "",
        "amount": "" if blank(r["grid_only_cost_ct"]) else money(r["grid_only_cost_ct"]).replace(",", ""),
        "grid_cost": "" if blank(r["cost_ct"]) else money(r["cost_ct"]).replace(",", ""),
        "currency": r["currency"] or "",
        "meter_check": ("differs" if r["flagged"] else "ok") if not blank(r["meter_deviation_pct"]) else "",
    }


def _total_row(s: Statement) -> dict[str, Any]:
    t = s.totals
    return {"start": "total", "end": f"{t['sessions']} sessions",
            "energy_kwh": kwh(t["wall_wh"]).replace(",", ""),
            "solar_kwh": kwh(t["solar_wh"]).replace(",", ""), "grid_kwh": kwh(t["grid_wh"]).replace(",", ""),
            "battery_kwh": kwh(t["battery_wh"]).replace(",", ""),
            "amount": (money(t["grid_only_cost_ct"]).replace(",", "")
                       if t["grid_only_cost_ct"] is not None else ""),
            "grid_cost": money(t["cost_ct"]).replace(",", "") if t["cost_ct"] is not None else "",
            "currency": s.currency, "meter_check": f"{t['flagged']} differ" if t["flagged"] else ""}


def facts(s: Statement) -> list[tuple[str, str]]:
    h = s.holder
    t = s.totals
    rows = [("statement", s.title), ("holder", h.holder or ""), ("licence plate", h.plate or ""),
            ("employer", h.employer or ""), (s.kind, s.who),
            ("period", f"{s.month} (local time, {s.tz.key})"), ("tariff method", s.tariff),
            ("measured", meter_line([m.meter for m in s.meters], int(s.sessions["meter"].isna().sum())
                                    if not s.sessions.empty else 0,
                                    sorted({x for v in s.sessions.get("sources", [])
                                            for x in str(v).split("+")})))]
    rows.append(("energy", f"{kwh(t['wall_wh'])} kWh in {t['sessions']} sessions"))
    if t["grid_only_cost_ct"] is not None:
        rows.append(("amount",
                     f"{money(t['grid_only_cost_ct'])} {s.currency}: every kWh at its price per kWh"))
        rows.append(("grid cost", f"{money(t['cost_ct'])} {s.currency}: the grid part only (solar and home "
                                  "battery energy at no cost)"))
    for m in s.meters:
        if m.counted_wh is None:
            rows.append((f"meter {m.meter}", "no readings in this month"))
            continue
        rows.append((f"meter {m.meter}",
                     f"{m.first:,.0f} Wh ({m.first_at}) to {m.last:,.0f} Wh ({m.last_at}): it counted "
                     f"{kwh(m.counted_wh)} kWh; this statement's sessions measured by it: "
                     f"{kwh(m.sessions_wh)} kWh"))
    if t["flagged"]:
        rows.append(("meter check", f"{t['flagged']} session(s) whose meter readings differ from their "
                                    "energy by more than 1 %: marked in the table"))
    rows.append(("created", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC") + " by ev-collector"))
    return rows


# -- build --------------------------------------------------------------------------------------

def build(reader: FrameReader, month: str, tz: ZoneInfo, sessions_cfg: Any, vehicle: str | None = None,
          card: str | None = None,
          specs: Sequence[CounterSpec] | None = None) -> tuple[list[Statement], list[str]]:
    """The statements asked for, and notes on sessions no statement covers."""
    from collector.sessions.config import Holder

    start, end = month_range(month, tz)
    s = rounded(sessions_frame(reader, Request("sessions", start, end, tz)))
    groups: list[tuple[str, str, pd.DataFrame]] = []
    notes: list[str] = []
    if vehicle is not None:
        groups.append(("vehicle", vehicle, s[s["vehicle"] == vehicle]))
    elif card is not None:
        groups.append(("card", card, s[s["card"] == card]))
    else:
        with_vehicle = s[s["vehicle"].notna()]
        for name, g in with_vehicle.groupby("vehicle", sort=True):
            groups.append(("vehicle", str(name), g))
        by_card = s[s["vehicle"].isna() & s["card"].notna()]
        for name, g in by_card.groupby("card", sort=True):
            groups.append(("card", str(name), g))
        rest = s[s["vehicle"].isna() & s["card"].isna()]
        if len(rest):
            notes.append(f"{len(rest)} session(s) with neither a vehicle nor a card are in no statement "
                         f"(`export sessions` lists them; [sessions] can name their charger's car)")
    currency = (sessions_cfg.currency if sessions_cfg is not None else "") or ""
    if not s.empty and s["currency"].notna().any():
        currency = str(s["currency"].dropna().iloc[0])
    out = []
    for kind, name, g in groups:
        g = g.sort_values("epoch_s", kind="stable")
        holder = (sessions_cfg.holder(vehicle=name if kind == "vehicle" else None,
                                      card=name if kind == "card" else None)
                  if sessions_cfg is not None else Holder())
        st = Statement(name, kind, month, tz, g, summarise(g), holder,
                       tariff_method(sessions_cfg, [v for v in g["price_source"].dropna()]), currency)
        for meter in sorted({m for m in g["meter"].dropna()}):
            count = count_meter(reader, meter, start, end, tz, specs)
            count.sessions_wh = float(g.loc[g["meter"] == meter, "wall_wh"].sum())
            st.meters.append(count)
        out.append(st)
    return out, notes


# -- write --------------------------------------------------------------------------------------

def write_csv(s: Statement, path: Path) -> None:
    """Key-value rows (holder, tariff, meters), an empty row, then the sessions and a total row."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle, lineterminator="\n")
        for key, value in facts(s):
            out.writerow([key, value])
        out.writerow([])
        out.writerow(COLUMNS)
        for r in s.sessions.to_dict("records"):
            row = _row(r)
            out.writerow([row[c] for c in COLUMNS])
        total = _total_row(s)
        out.writerow([total.get(c, "") for c in COLUMNS])


HEADINGS = (("~start", False), ("~end", False), ("charger", False), ("vehicle / card", False),
            ("odometer km", True), ("meter start Wh", True), ("meter end Wh", True), ("kWh", True),
            ("solar kWh", True), ("grid kWh", True), ("battery kWh", True), ("price /kWh", True),
            ("price source", False), ("amount", True), ("grid cost", True), ("meter check", False))


def _display(row: dict[str, Any], kind: str) -> list[str]:
    other = row["card"] if kind == "vehicle" else row["vehicle"]
    return [row["start"], row["end"], row["charger"], other or "-", row["odometer_km"],
            _grouped(row["meter_start_wh"]), _grouped(row["meter_end_wh"]), row["energy_kwh"],
            row["solar_kwh"], row["grid_kwh"], row["battery_kwh"],
            row["price_per_kwh"], row["price_source"], row["amount"], row["grid_cost"], row["meter_check"]]


def _grouped(digits: str) -> str:
    return f"{int(digits):,}" if digits else ""


def _display_total(s: Statement) -> list[str]:
    t = _total_row(s)
    return [t["start"], t["end"], "", "", "", "", "", t["energy_kwh"], t["solar_kwh"], t["grid_kwh"],
            t["battery_kwh"], "", "", t["amount"], t["grid_cost"], t["meter_check"]]


def html_statement(s: Statement) -> str:
    rows = [_row(r) for r in s.sessions.to_dict("records")]
    headings = [(h if h != "vehicle / card" else ("card" if s.kind == "vehicle" else "vehicle"), n)
                for h, n in HEADINGS]
    headings[13] = (f"amount {s.currency}".strip(), True)
    headings[14] = (f"grid cost {s.currency}".strip(), True)
    sessions = table(headings, [_display(r, s.kind) for r in rows], _display_total(s),
                     [r["meter_check"] == "differs" for r in rows])
    details = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts(s)[1:])
    body = f"""<header><h1>{esc(s.title)}</h1>
<p class="muted">Every charging session that started in {esc(s.month)}, \
as recorded by ev-collector.</p></header>
<section><dl class="facts">{details}</dl>
<p class="note">A meter counts every charge on its charger (other cars and cards too) while its
readings exist; beside it stand only this statement's sessions measured by it.</p></section>
<section class="sessions"><h2>Sessions</h2>{sessions}
<p class="note">kWh to the Wh and money to the cent, each session rounded once: the totals are the
sums of the rows. Amount = the session's kWh at its price per kWh (prices in force when the energy
was drawn); grid cost prices the grid part only. Meter readings in Wh from the meter named above;
"differs": the readings and the energy disagree by more than 1 %.</p></section>
<section class="sign"><h2>Confirmation</h2>
<p>Place, date: ______________________ &nbsp; Signature: ______________________________</p></section>"""
    # sixteen columns: the whole width, headings that wrap, landscape on paper
    landscape = ("<style>main { max-width: 1500px; } .sessions th { white-space: normal; "
                 "vertical-align: bottom; } .sessions td, .sessions th { padding: 4px 6px; } "
                 "@media print { @page { size: A4 landscape; } }</style>")
    return page(s.title, landscape + body)


def write_pdf(s: Statement, path: Path) -> None:
    """The statement as a PDF (fpdf2: pure Python, no system libraries). A Unicode font is used
    where the system has DejaVu; otherwise the PDF core font, and characters outside Latin-1
    are shown as '?' with a note (the CSV and HTML keep them)."""
    from fpdf import FPDF

    # fontTools logs each font subset at INFO; that is not news for a statement's reader
    logging.getLogger("fontTools").setLevel(max(logging.WARNING, logging.getLogger().level))
    pdf = FPDF(orientation="L", unit="mm", format="A4")
    pdf.set_auto_page_break(True, margin=12)
    pdf.set_margins(10, 10, 10)
    font, lossy = "Helvetica", False
    for folder in ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu"):
        regular = Path(folder) / "DejaVuSansCondensed.ttf"
        bold = Path(folder) / "DejaVuSansCondensed-Bold.ttf"
        if regular.exists() and bold.exists():
            pdf.add_font("DejaVu", "", str(regular))
            pdf.add_font("DejaVu", "B", str(bold))
            font = "DejaVu"
            break

    def text(value: Any) -> str:
        nonlocal lossy
        out = "" if value is None else str(value)
        if font == "Helvetica":
            safe = out.encode("latin-1", "replace").decode("latin-1")
            lossy = lossy or safe != out
            return safe
        return out

    pdf.add_page()
    pdf.set_font(font, "B", 14)
    pdf.cell(0, 8, text(s.title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(font, "", 8.5)
    for key, value in facts(s)[1:]:
        pdf.set_font(font, "B", 8.5)
        pdf.cell(38, 4.6, text(key))
        pdf.set_font(font, "", 8.5)
        pdf.multi_cell(0, 4.6, text(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    headings = [h.lstrip("~") if h != "vehicle / card" else ("card" if s.kind == "vehicle" else "vehicle")
                for h, _ in HEADINGS]
    widths = (22, 22, 22, 16, 15, 18, 18, 14, 13, 13, 13, 14, 17, 15, 15, 12)
    pdf.set_font(font, "", 6.5)
    with pdf.table(col_widths=widths, text_align=["LEFT" if not n else "RIGHT" for _, n in HEADINGS],
                   line_height=3.6, first_row_as_headings=True) as grid:
        grid.row([text(h) for h in headings])
        for r in s.sessions.to_dict("records"):
            grid.row([text(v) for v in _display(_row(r), s.kind)])
        grid.row([text(v) for v in _display_total(s)])
    pdf.ln(3)
    pdf.set_font(font, "", 7.5)
    pdf.multi_cell(0, 4, text("kWh to the Wh and money to the cent, each session rounded once: the totals "
                              "are the sums of the rows. Amount = kWh at the price per kWh; grid cost prices "
                              "the grid part only."), new_x="LMARGIN", new_y="NEXT")
    if lossy:
        pdf.multi_cell(0, 4, "Some characters cannot be shown in this PDF's font ('?'); the CSV and HTML "
                             "statements have them.", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.set_font(font, "", 9)
    pdf.cell(0, 6, text("Place, date: ______________________     Signature: ______________________________"))
    pdf.output(str(path))


# -- the command --------------------------------------------------------------------------------

def _handle(args: argparse.Namespace) -> int:
    from collector.config import load_config

    config = load_config(args.config) if args.config else None
    sessions_cfg = config.sessions if config is not None else None
    try:
        zone = args.tz or (sessions_cfg.timezone if sessions_cfg is not None else "UTC")
        try:
            tz = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise QueryError(f"unknown time zone {zone!r} (use an IANA name like Europe/Berlin)") from None
        month_range(args.month, tz)                     # a bad month fails before any reading
        out_dir = Path(args.out)
        out_dir.mkdir(parents=True, exist_ok=True)
        reader = make_reader(config, args.store)
        try:
            statements, notes = build(reader, args.month, tz, sessions_cfg, args.vehicle, args.card)
        finally:
            reader.close()
    except (QueryError, OSError) as exc:
        print(f"ev-collector statement: {exc}", file=sys.stderr)
        return 2
    if not statements:
        print(f"ev-collector statement: no sessions with a vehicle or a card in {args.month}",
              file=sys.stderr)
    used: set[str] = set()
    for s in statements:
        name = s.slug if s.slug not in used else f"{s.slug}-{s.kind}"
        used.add(name)
        base = out_dir / f"statement-{name}-{s.month}"
        write_csv(s, base.with_suffix(".csv"))
        base.with_suffix(".html").write_text(html_statement(s), encoding="utf-8")
        written = [base.with_suffix(".csv"), base.with_suffix(".html")]
        if not args.no_pdf:
            write_pdf(s, base.with_suffix(".pdf"))
            written.append(base.with_suffix(".pdf"))
        t = s.totals
        print(f"{s.kind} {s.who}: {t['sessions']} sessions, {kwh(t['wall_wh'])} kWh"
              + (f", {money(t['grid_only_cost_ct'])} {s.currency}"
                 if t["grid_only_cost_ct"] is not None else "")
              + f" -> {', '.join(str(p) for p in written)}")
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "statement", help="monthly charging statement per vehicle or card (CSV, HTML, PDF)",
        description="Write statement-<who>-<YYYY-MM>.csv, .html and .pdf for each vehicle (and each "
                    "card of sessions without a vehicle) with sessions in the month, or for the one "
                    "asked for. Holder details come from [sessions.vehicles.*] / [sessions.cards.*].")
    parser.add_argument("--month", required=True, help="the local calendar month, YYYY-MM")
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--vehicle", help="only this vehicle (its name in the sessions)")
    who.add_argument("--card", help="only this card (as the sessions' card column names it)")
    parser.add_argument("--out", default=".", help="directory to write into (default: here)")
    parser.add_argument("--config", help="TOML configuration (store or InfluxDB, names, holder details)")
    parser.add_argument("--store", help="local store file, when no --config is given")
    parser.add_argument("--tz", help="IANA time zone of the month (default: [sessions] timezone, else UTC)")
    parser.add_argument("--no-pdf", action="store_true", help="CSV and HTML only")
    parser.set_defaults(handler=_handle)


__all__ = ["Statement", "build", "html_statement", "month_range", "register", "write_csv", "write_pdf"]
