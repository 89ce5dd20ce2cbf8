"""`ev-collector backfill --config FILE --source NAME [--since DATE]`.

Pulls the history a source's server still holds into the local store (and ships it to
InfluxDB when one is configured). A source takes part by declaring `backfill` in its registry
entry: a builder of a `Backfill` (`collector/sources/base.py`). Backfill commits points and
cursors together, like the polling jobs, so an interrupted backfill resumes where it stopped,
and a later `run` continues from there.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from collector.config import Config, ConfigError, load_config
from collector.config_types import InfluxV1, InfluxV2
from collector.health import Health
from collector.http_outcomes import SourceError
from collector.influx import Forwarder, WriteError, make_target
from collector.limits import Limits
from collector.shards import add_shard_argument
from collector.sources import instances, load_all_sources
from collector.sources.base import ElsewhereSource, NoProgress, Progress, SourceContext
from collector.store import Store
from collector.writer import PointWriter

log = logging.getLogger(__name__)

SHIP_DEADLINE = 600.0


def parse_since(text: str) -> datetime:
    """`2025-06-01` or an ISO date-time; naive values are UTC."""
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a date: {text!r} (use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS)") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


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


async def run_backfill(config: Config, source_name: str, since: datetime | None = None,
                       progress: Progress | None = None,
                       http_transport: httpx.AsyncBaseTransport | None = None,
                       reread: bool = False) -> int:
    """Backfill one configured source; returns the process exit code."""
    packages = load_all_sources()
    if source_name not in packages:
        raise ConfigError(f"unknown source {source_name!r}; known: {', '.join(sorted(packages)) or 'none'}")
    sections = instances(config.sources, source_name)
    if not sections:
        raise ConfigError(f"source {source_name!r} is not configured: add a [sources.{source_name}] section")
    build = packages[source_name].backfill
    if build is None:
        log.error("source %r has no history to backfill", source_name)
        return 2
    store = Store(config.store.path, config.store.synchronous)
    health = Health(collector=config.collector.name, shard=config.collector.shard)
    context = SourceContext(cursors=store, writer=PointWriter(store, health), limits=Limits(), health=health,
                            shard=config.collector.shard, shards=config.collector.shards,
                            http_transport=http_transport)
    try:
        for section in sections:      # every instance ([[sources.<name>]]) in turn
            source = build(section, context)
            label = source_name if len(sections) == 1 else f"{source_name} {section.name}"
            if isinstance(source, ElsewhereSource):
                # Its cursors live in the owning shard's store: backfill there.
                log.warning("backfill %s: collected by shard %d of %d; run this command with "
                            "--shard %d", label, source.shard, source.shards, source.shard)
                continue
            try:
                result = await source.backfill(since, progress or NoProgress(), reread=reread)
            except SourceError as exc:
                log.error("backfill of %s stopped: %s. What was committed stays; run the same "
                          "command again to resume.", label, exc)
                return 1
            finally:
                await source.close()
            log.info("backfill %s: %d records read, %d points committed to %s", label,
                     result.records, result.points, config.store.path)
        if config.influxdb is not None:
            await _ship(store, config.influxdb, health)
        return 0
    finally:
        store.close()


async def _ship(store: Store, influxdb: InfluxV1 | InfluxV2, health: Health) -> None:
    target = make_target(influxdb)
    try:
        forwarder = Forwarder(store, target, health, batch_size=influxdb.batch_size)
        empty = await forwarder.flush(time.monotonic() + SHIP_DEADLINE)
        pending = store.pending_count()
        if empty:
            log.info("shipped to %s", target.description)
        else:
            log.warning("%d points not shipped yet; `ev-collector run` ships them", pending)
    except WriteError as exc:
        log.error("InfluxDB: %s; the points stay in the local store", exc)
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
