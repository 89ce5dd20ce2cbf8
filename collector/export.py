"""`ev-collector export sessions|daily|monthly|raw`: CSV for spreadsheets and employers.

Reads InfluxDB when the configuration has an `[influxdb]` section, else the embedded store,
through the query layer (`collector.query`), whose readers yield the same frames from both:
the CSV does not depend on where the data lives. Columns and units: docs/export.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from collector.query import DAY_NS, NS, FrameReader, QueryError, make_reader, parse_when
from collector.query.frames import Request, raw_frame, rollup_frame, sessions_frame
from collector.query.readers import declared
from collector.sources import counter_specs, load_all_sources
from collector.specs import CounterSpec


def write_csv(req: Request, reader: FrameReader, out: TextIO,
              specs: Sequence[CounterSpec] | None = None) -> int:
    """Write the CSV; returns the number of data rows. `daily` and `monthly` sum the energy
    counters `specs` name, by default every registered source's."""
    if req.kind == "raw":
        rows, header = 0, True
        for frame in raw_frame(reader, req):
            frame.to_csv(out, index=False, header=header, lineterminator="\n")
            header, rows = False, rows + len(frame)
        if header:  # no data: still a header, so a script sees the columns
            m = declared(req.measurement) if req.measurement else None
            cols = ["epoch_s", "local_time",
                    *([t.name for t in m.tags] + [fl.name for fl in m.fields] if m else [])]
            out.write(",".join(cols) + "\n")
        return rows
    if req.kind == "sessions":
        frame = sessions_frame(reader, req)
    else:
        frame = rollup_frame(reader, req, counter_specs() if specs is None else specs)
    frame.to_csv(out, index=False, lineterminator="\n")
    return len(frame)


def request_from_args(args: argparse.Namespace, config: Any | None) -> Request:
    try:
        tz = ZoneInfo(args.tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise QueryError(f"unknown time zone {args.tz!r} (use an IANA name like Europe/Berlin)") from None
    end = parse_when(args.to, tz) if args.to else int(datetime.now(UTC).timestamp()) * NS
    start = parse_when(args.from_, tz) if args.from_ else end - 30 * DAY_NS
    if start >= end:
        raise QueryError("--from must be before --to")
    names: dict[str, str] = {}
    sessions = getattr(config, "sessions", None) if config is not None else None
    if sessions is not None:
        for name, charger in sessions.chargers.items():
            for identity in charger.identities():
                names[identity] = name
    return Request(args.kind, start, end, tz, args.source, args.measurement, names,
                   progress=sys.stderr.isatty() and not args.quiet)


def _handle(args: argparse.Namespace) -> int:
    from collector.config import load_config

    config = load_config(args.config) if args.config else None
    try:
        req = request_from_args(args, config)
        reader = make_reader(config, args.store)
        try:
            if args.out and args.out != "-":
                with open(args.out, "w", newline="", encoding="utf-8") as handle:
                    rows = write_csv(req, reader, handle)
                print(f"{rows} rows written to {args.out}", file=sys.stderr)
            else:
                write_csv(req, reader, sys.stdout)
        finally:
            reader.close()
    except QueryError as exc:
        print(f"ev-collector export: {exc}", file=sys.stderr)
        return 2
    return 0


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML configuration (InfluxDB, store path, charger names)")
    parser.add_argument("--store", help="local store file, when no --config is given")
    parser.add_argument("--from", dest="from_", help="start, local date or time (default: 30 days ago)")
    parser.add_argument("--to", help="end, exclusive (default: now)")
    parser.add_argument("--tz", default="UTC", help="IANA time zone for local times and days (default UTC)")
    parser.add_argument("--source", choices=sorted(load_all_sources()), help="only this source")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("export", help="write CSV: sessions, daily, monthly or raw points")
    parser.add_argument("kind", choices=["sessions", "daily", "monthly", "raw"])
    add_common(parser)
    parser.add_argument("--measurement", help="raw: the measurement to export")
    parser.add_argument("--out", help="CSV file (default: standard output)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_handle)
