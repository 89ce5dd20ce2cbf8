"""Command line: `ev-collector run|check|schema ...`."""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import logging
import signal
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from collector.config import ConfigError, load_config
from collector.errors import CollectorError
from collector.shards import add_shard_argument

log = logging.getLogger("collector")


def _version() -> str:
    try:
        return version("ev-collector")
    except PackageNotFoundError:
        return "0+unknown"


def setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper()), stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    # Library chatter at INFO would drown ours; a URL with a query in it must never be logged.
    for noisy in ("httpx", "httpcore", "apscheduler", "urllib3", "influxdb_client"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    # Skipped and missed runs are counted (collector_health.polls_late), not logged each time.
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
    logging.getLogger("apscheduler.executors").setLevel(logging.ERROR)


def _install_stop(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
            pass


async def _run(config_path: str, shard: int | None = None) -> int:
    from collector.app import Collector

    config = load_config(config_path, shard)
    collector = Collector(config)
    # What exists now (modules, config, sources, one poller per device) lives as long as the
    # process: keep it out of the cyclic garbage collector's full passes. At 1,000 chargers
    # each full pass otherwise stopped the event loop for 60-90 ms every two seconds, which
    # made polls late: 98.9 % of charger-seconds polled without the freeze, 99.95-100 % with
    # it (bench/fleet.py, docs/performance.md).
    gc.freeze()
    stop = asyncio.Event()
    _install_stop(asyncio.get_running_loop(), stop)
    await collector.run(stop)
    return 0


async def _check(config_path: str, shard: int | None = None) -> int:
    from collector.app import Collector, format_checks

    config = load_config(config_path, shard)
    collector = Collector(config)
    try:
        results = await collector.check()
    finally:
        collector.close()
    print(format_checks(results))
    return 0 if all(r.ok for r in results) else 1


def _schema(_args: argparse.Namespace) -> int:
    from collector.schema import all_measurements, render_markdown

    sys.stdout.write(render_markdown(all_measurements()))
    return 0


def run_async(main: Any) -> Any:
    """Run the collector's event loop: uvloop when installed (about a third less CPU per poll
    at fleet scale, bench/fleet.py), else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ev-collector",
                                     description="EV charging telemetry collector and logger.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--log-level", default=None,
                        choices=["debug", "info", "warning", "error"],
                        help="overrides [collector] log_level from the config")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="poll the configured sources until stopped")
    run.add_argument("--config", required=True, help="TOML configuration file")
    add_shard_argument(run)

    check = sub.add_parser("check", help="validate the config and reach every source and InfluxDB once")
    check.add_argument("--config", required=True, help="TOML configuration file")
    add_shard_argument(check)

    sub.add_parser("schema", help="print docs/schema.md from the declared measurements")

    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # that command is not part of this build yet
        module.register(sub)
    return parser


# Commands that live in their own modules. Each has `register(subparsers)`, which adds its
# parser and sets `handler=callable(args) -> exit code` on it.
COMMAND_MODULES = ("collector.backfill", "collector.demo", "collector.export", "collector.report",
                   "collector.statement")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = args.log_level
    if level is None and getattr(args, "config", None):
        try:
            level = load_config(args.config, getattr(args, "shard", None)).collector.log_level
        except ConfigError:
            level = "info"  # the command itself reports the config error below
    setup_logging(level or "info")
    try:
        if args.command == "run":
            return run_async(_run(args.config, args.shard))
        if args.command == "check":
            return asyncio.run(_check(args.config, args.shard))
        if args.command == "schema":
            return _schema(args)
        return args.handler(args)
    except CollectorError as exc:   # a failure we name: one line, not a traceback
        print(f"ev-collector: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
