"""`ev-collector backfill --config FILE --source NAME [--since DATE]`.

Pulls the history a source's server still holds into the local store (and ships it to
InfluxDB when one is configured). A source takes part by offering

    async def backfill(self, since: datetime | None, progress: Progress) -> result

where `progress` is a `Progress` (below) and the result has `records` (rows read) and `points`
(points committed). Backfill commits points and cursors together, like the polling jobs, so an
interrupted backfill resumes where it stopped, and a later `run` continues from there.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import logging
import sys
import time
from datetime import datetime, timezone
from typing import Any, Protocol

import httpx

from collector.config import ConfigError, load_config
from collector.health import Health
from collector.http_outcomes import SourceError
from collector.influx import Forwarder, WriteError, make_target
from collector.limits import Limits
from collector.shards import add_shard_argument
from collector.sources import instances, load_all_sources
from collector.sources.base import ElsewhereSource, SourceContext
from collector.store import Store
from collector.writer import PointWriter

log = logging.getLogger(__name__)

SHIP_DEADLINE = 600.0


class Progress(Protocol):
    """What a source's backfill reports to: records expected, then records done."""

    def add_total(self, records: int) -> None: ...

    def advance(self, records: int, note: str = "") -> None: ...


def parse_since(text: str) -> datetime:
    """`2025-06-01` or an ISO date-time; naive values are UTC."""
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS)") from None
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


class TqdmProgress:
    """The Progress protocol on a tqdm bar counting records."""

    def __init__(self, enabled: bool | None = None, file: Any = None) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=0, unit="rec", desc="backfill", disable=enabled is False or None,
                        file=file or sys.stderr, dynamic_ncols=True)

    def add_total(self, records: int) -> None:
        self.bar.total = (self.bar.total or 0) + records
        self.bar.refresh()

    def advance(self, records: int, note: str = "") -> None:
        if note:
            self.bar.set_postfix_str(note, refresh=False)
        self.bar.update(records)

    def close(self) -> None:
        self.bar.close()


async def run_backfill(config: Any, source_name: str, since: datetime | None = None,
                       progress: Any = None, http_transport: httpx.AsyncBaseTransport | None = None,
                       reread: bool = False) -> int:
    """Backfill one configured source; returns the process exit code."""
    modules = load_all_sources()
    if source_name not in modules:
        raise ConfigError(f"unknown source {source_name!r}; known: {', '.join(sorted(modules)) or 'none'}")
    sections = instances(config.sources, source_name)
    if not sections:
        raise ConfigError(f"source {source_name!r} is not configured: add a [sources.{source_name}] section")
    store = Store(config.store.path, config.store.synchronous)
    health = Health(collector=config.collector.name, shard=config.collector.shard)
    context = SourceContext(store=store, writer=PointWriter(store, health), limits=Limits(), health=health,
                            shard=config.collector.shard, shards=config.collector.shards,
                            http_transport=http_transport)
    try:
        for section in sections:      # every instance ([[sources.<name>]]) in turn
            source = modules[source_name].build(section, context)
            label = source_name if len(sections) == 1 else f"{source_name} {section.name}"
            if isinstance(source, ElsewhereSource):
                # Its cursors live in the owning shard's store: backfill there.
                print(f"backfill {label}: collected by shard {source.shard} of {source.shards}; "
                      f"run this command with --shard {source.shard}", file=sys.stderr)
                continue
            if reread and "reread" not in inspect.signature(getattr(source, "backfill", lambda: None)).parameters:
                print(f"ev-collector: source {source_name!r} does not support --reread", file=sys.stderr)
                await source.close()
                return 2
            if not hasattr(source, "backfill"):
                print(f"ev-collector: source {source_name!r} has no history to backfill", file=sys.stderr)
                await source.close()
                return 2
            try:
                # `reread` only reaches sources that offer it (the option is refused otherwise).
                result = await (source.backfill(since, progress, reread=True) if reread
                                else source.backfill(since, progress))
            except SourceError as exc:
                print(f"ev-collector: backfill of {label} stopped: {exc}\n"
                      "What was committed stays; run the same command again to resume.", file=sys.stderr)
                return 1
            finally:
                await source.close()
            print(f"backfill {label}: {getattr(result, 'records', '?')} records read, "
                  f"{getattr(result, 'points', '?')} points "
                  f"committed to {config.store.path}", file=sys.stderr)
        if config.influxdb is not None:
            await _ship(store, config, health)
        return 0
    finally:
        store.close()


async def _ship(store: Store, config: Any, health: Health) -> None:
    target = make_target(config.influxdb)
    try:
        forwarder = Forwarder(store, target, health, batch_size=config.influxdb.batch_size)
        empty = await forwarder.flush(time.monotonic() + SHIP_DEADLINE)
        pending = store.pending_count()
        if empty:
            print(f"shipped to {target.description}", file=sys.stderr)
        else:
            print(f"{pending} points not shipped yet; `ev-collector run` ships them", file=sys.stderr)
    except WriteError as exc:
        print(f"InfluxDB: {exc}; the points stay in the local store", file=sys.stderr)
    finally:
        target.close()


def _handle(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.shard)
    progress = TqdmProgress(enabled=False if args.no_progress else None)
    try:
        return asyncio.run(run_backfill(config, args.source, args.since, progress, reread=args.reread))
    finally:
        progress.close()


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "backfill", help="pull the history a source's server still holds (resumable)")
    parser.add_argument("--config", required=True, help="TOML configuration file")
    add_shard_argument(parser)
    parser.add_argument("--source", required=True, help="source name, e.g. ovms")
    parser.add_argument("--since", type=parse_since, default=None,
                        help="only records from this date (UTC), e.g. 2025-06-01")
    parser.add_argument("--reread", action="store_true",
                        help="ignore the stored cursors and read everything (from --since) again; "
                             "stored points are rewritten identically, records that reached the "
                             "server late are added")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_handle)
