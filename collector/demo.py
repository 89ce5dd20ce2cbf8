"""`ev-collector demo`: the whole product against built-in simulators, with no hardware.

It starts the simulator of every registered source on loopback ports (the demo's world, linked
through one car, see `collector/sim/world.py`), writes the configuration it uses into the work
directory (so it can be copied), optionally generates history first, and runs the real `Collector` on that
configuration: the embedded store by default, or InfluxDB with the `--influx-*` options. A
compact live view shows polls, points, backlog, errors and quota left.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shlex
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from collector.config import ConfigError, load_config
from collector.config_types import parse_duration
from collector.health import COLLECTOR, ERROR_COUNTERS
from collector.history import generate_history
from collector.influx import WriteError
from collector.sim.base import SimServer
from collector.sim.world import Simulators, build_simulators, sessions_config, toml_str
from collector.sources import demo_hooks

log = logging.getLogger(__name__)

CONFIG_NAME = "config.toml"
STORE_NAME = "ev-collector.db"
HISTORY_CURSOR = "demo:history"    # the history generated into this store: window and seed


def _duration_arg(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return seconds


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="run the collector against built-in simulators of all four sources",
        description="Start simulators of a go-eCharger, evcc, ev.energy and OVMS on loopback "
                    "ports, write the configuration used into --workdir, and run the real "
                    "collector against them until Ctrl-C or --duration. With --history, first "
                    "generate that much consistent history. Data goes to the embedded store "
                    "in --workdir, or to InfluxDB with --influx-url.")
    parser.add_argument("--workdir", type=Path, default=Path("ev-collector-demo"),
                        help="where the config and the store are written (default: %(default)s)")
    parser.add_argument("--duration", type=_duration_arg, default=0.0, metavar="TIME",
                        help="stop live collection after this long, e.g. 60, 90s, 5m "
                             "(default 0: until Ctrl-C)")
    parser.add_argument("--history", type=_duration_arg, default=0.0, metavar="TIME",
                        help="first generate this much history up to now, e.g. 7d, 30d")
    parser.add_argument("--seed", type=int, default=1,
                        help="seed of the simulated world; the same seed gives the same data")
    parser.add_argument("--refresh", type=_duration_arg, default=None, metavar="TIME",
                        help="live view refresh (default: 1 s on a terminal, 5 s otherwise)")
    influx = parser.add_argument_group(
        "InfluxDB (optional)", "Ship to InfluxDB instead of keeping the data in the embedded "
                               "store. The v2 token is read from the environment variable "
                               "INFLUX_TOKEN, a v1 password from INFLUX_PASSWORD.")
    influx.add_argument("--influx-url", help="e.g. http://localhost:8086")
    influx.add_argument("--influx-api", choices=("v1", "v2"),
                        help="v2: InfluxDB 2.x/3.x/Cloud (org, bucket, token); v1: InfluxDB 1.x "
                             "(database). Default: v1 if --influx-database is given, else v2")
    influx.add_argument("--influx-org", help="v2 organisation")
    influx.add_argument("--influx-bucket", help="v2 bucket")
    influx.add_argument("--influx-database", help="v1 database")
    influx.add_argument("--influx-username", help="v1 user (password from INFLUX_PASSWORD)")
    parser.set_defaults(handler=run)


# -- configuration ---------------------------------------------------------------------------


def influx_section(args: argparse.Namespace) -> str:
    """The [influxdb] section the options ask for, or "" without --influx-url.

    Raises ConfigError naming the missing option; secrets stay in the environment and the
    config refers to them, so the written file never holds them.
    """
    if not args.influx_url:
        named = [o for o in ("influx_api", "influx_org", "influx_bucket", "influx_database",
                             "influx_username") if getattr(args, o)]
        if named:
            raise ConfigError(f"demo: --{named[0].replace('_', '-')} needs --influx-url")
        return ""
    api = args.influx_api or ("v1" if args.influx_database else "v2")
    lines = ["[influxdb]", f"api = {toml_str(api)}", f"url = {toml_str(args.influx_url)}"]
    if api == "v2":
        missing = [o for o in ("influx_org", "influx_bucket") if not getattr(args, o)]
        if missing:
            raise ConfigError(f"demo: InfluxDB v2 needs --{missing[0].replace('_', '-')}")
        if not os.environ.get("INFLUX_TOKEN"):
            raise ConfigError("demo: InfluxDB v2 needs its API token in the environment "
                              "variable INFLUX_TOKEN")
        lines += [f"org = {toml_str(args.influx_org)}", f"bucket = {toml_str(args.influx_bucket)}",
                  'token = { env = "INFLUX_TOKEN" }']
    else:
        if not args.influx_database:
            raise ConfigError("demo: InfluxDB v1 needs --influx-database")
        lines.append(f"database = {toml_str(args.influx_database)}")
        if args.influx_username:
            if not os.environ.get("INFLUX_PASSWORD"):
                raise ConfigError("demo: --influx-username needs the password in the environment "
                                  "variable INFLUX_PASSWORD")
            lines += [f"username = {toml_str(args.influx_username)}",
                      'password = { env = "INFLUX_PASSWORD" }']
    return "\n".join(lines) + "\n"


def demo_config(urls: Mapping[str, str], world: Simulators, influx: str = "") -> str:
    """The TOML the demo runs on: each source's section for its simulator at `urls[name]`, with
    the simulators' demo credentials, and the world's `[sessions]`."""
    written = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    storage = influx or ("# No [influxdb] section: the store below is the database.\n"
                         "# [influxdb]\n# api = \"v2\"\n# url = \"http://localhost:8086\"\n"
                         "# org = \"home\"\n# bucket = \"ev\"\n# token = { env = \"INFLUX_TOKEN\" }\n")
    sources = "\n".join(hook.config(urls[name], world) for name, hook in demo_hooks().items())
    return f"""\
# Written by `ev-collector demo` ({written}).
# The collector ran on exactly this file. The URLs point at the demo's simulators, which listen
# on these loopback ports only while the demo runs. Every credential below is a DEMO VALUE that
# the simulators accept, not a secret. To collect from your own devices, copy the sections you
# need, change the addresses and ids, and take secrets from the environment or a file:
#   token = {{ env = "GOE_TOKEN" }}   or   token = {{ file = "/run/secrets/goe" }}
# Every key is documented in docs/configuration.md and each source's README.

[collector]
log_level = "info"
health_interval = "10s"

[store]
path = {toml_str(STORE_NAME)}    # relative to this file

{storage}
{sources}
{sessions_config()}"""


# -- the live view ---------------------------------------------------------------------------


@dataclass
class ViewState:
    started: float
    history_points: int = 0
    lines_drawn: int = 0
    last_shown_error: dict[str, str] = field(default_factory=dict)


def snapshot(collector: Any, backlog: int | None) -> dict[str, Any]:
    """What the view shows, read from the collector's health counters and limits."""
    health = collector.health
    sources = {}
    for name in demo_hooks():
        sources[name] = {
            "polls": health.get(name, "polls"),
            "failed": health.get(name, "polls_failed"),
            "points": health.get(name, "points"),
            "errors": sum(health.get(name, counter) for counter in ERROR_COUNTERS.values()),
            "last_error": health.last_error.get(name, ""),
        }
    quotas = {key.split(":", 1)[0]: budget.remaining()
              for key, budget in collector.limits.quotas().items()}
    return {"sources": sources, "quota": quotas, "backlog": backlog,
            "shipped": health.get(COLLECTOR, "shipped"),
            "ship_failures": health.get(COLLECTOR, "ship_failures")}


def render_line(snap: dict[str, Any], elapsed: float) -> str:
    """One plain line, for logs and pipes."""
    sources = snap["sources"]
    polls = " ".join(f"{name} {s['polls']}" for name, s in sources.items())
    points = sum(s["points"] for s in sources.values())
    errors = sum(s["errors"] for s in sources.values()) + snap["ship_failures"]
    parts = [f"[{elapsed:5.0f}s] polls {polls}", f"points {points}"]
    parts.append("backlog -" if snap["backlog"] is None else f"backlog {snap['backlog']}")
    parts.append(f"errors {errors}")
    parts += [f"quota {name} {left}" for name, left in sorted(snap["quota"].items())]
    return " | ".join(parts)


def render_table(snap: dict[str, Any], elapsed: float, state: ViewState, target: str) -> list[str]:
    """The terminal view: one row per source, then the pipeline."""
    lines = [f"ev-collector demo: {elapsed:.0f} s live, {state.history_points:,} history points, "
             f"{target}   (Ctrl-C stops)",
             f"{'source':<10} {'polls':>6} {'failed':>6} {'points':>8} {'errors':>6} {'quota left':>10}"]
    for name, s in snap["sources"].items():
        quota = snap["quota"].get(name)
        lines.append(f"{name:<10} {s['polls']:>6} {s['failed']:>6} {s['points']:>8} {s['errors']:>6} "
                     f"{'-' if quota is None else quota:>10}")
    if snap["backlog"] is None:
        lines.append("embedded store: nothing to ship")
    else:
        lines.append(f"backlog {snap['backlog']:,}   shipped {snap['shipped']:,}   "
                     f"InfluxDB write failures {snap['ship_failures']}")
    errors = [f"{name}: {s['last_error']}" for name, s in snap["sources"].items() if s["last_error"]]
    lines.append(("last error " + errors[-1])[:160] if errors else "no errors")
    return lines


class LiveView:
    def __init__(self, collector: Any, out: TextIO, refresh: float, tty: bool, target: str,
                 history_points: int) -> None:
        self.collector = collector
        self.out = out
        self.refresh = refresh
        self.tty = tty
        self.target = target
        self.state = ViewState(started=time.monotonic(), history_points=history_points)

    async def _backlog(self) -> int | None:
        if self.collector.target is None:
            return None
        return await asyncio.to_thread(self.collector.store.pending_count)

    async def draw(self) -> None:
        elapsed = time.monotonic() - self.state.started
        snap = snapshot(self.collector, await self._backlog())
        if self.tty:
            lines = render_table(snap, elapsed, self.state, self.target)
            if self.state.lines_drawn:
                self.out.write(f"\x1b[{self.state.lines_drawn}F")   # back to the view's first line
            self.out.write("".join(f"{line}\x1b[K\n" for line in lines) + "\x1b[J")
            self.state.lines_drawn = len(lines)
        else:
            self.out.write(render_line(snap, elapsed) + "\n")
        self.out.flush()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.refresh)
            except TimeoutError:
                await self.draw()


# -- running ---------------------------------------------------------------------------------


@dataclass
class DemoResult:
    config_path: Path
    store_path: Path
    history: dict[str, int]           # points per measurement the generator produced
    history_window: tuple[datetime, datetime] | None
    live_seconds: float
    simulators: Simulators
    influx: str | None = None          # the InfluxDB target's description, if any


class Demo:
    """Simulators, config and collector for one demo run; `run()` returns when it stopped."""

    def __init__(self, args: argparse.Namespace, out: TextIO | None = None) -> None:
        self.args = args
        self.out = out or sys.stdout
        self.workdir: Path = args.workdir.expanduser().resolve()
        self.influx = influx_section(args)   # validate the options before starting anything
        now = time.time()
        # The simulated servers hold the history asked for. evcc's session log begins with
        # that history, so its sessions have the charger's data beside them (without history:
        # a week, so a first sync has something to fetch).
        self.simulators = build_simulators(args.seed, start=now - (args.history or 7 * 86400.0),
                                           history_days=max(args.history / 86400, 7.0))
        self.servers: list[SimServer] = []
        self.titles: list[str] = []       # "<source title> <URL>" of each simulator served

    def start_simulators(self) -> dict[str, str]:
        """Serve each source's simulator; returns each one's URL by source name."""
        urls = {}
        for name, hook in demo_hooks().items():
            server = SimServer(hook.simulator(self.simulators)).start()
            self.servers.append(server)
            self.titles.append(f"{hook.title} {server.url}")
            urls[name] = server.url
        return urls

    def stop_simulators(self) -> None:
        for server in self.servers:
            server.stop()
        self.servers, self.titles = [], []

    def write_config(self, urls: Mapping[str, str]) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.workdir / CONFIG_NAME
        text = demo_config(urls, self.simulators, self.influx)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        return path

    def run(self) -> DemoResult:
        urls = self.start_simulators()
        try:
            config_path = self.write_config(urls)
            return asyncio.run(self._run(config_path))
        finally:
            self.stop_simulators()

    async def _run(self, config_path: Path) -> DemoResult:
        from collector.app import Collector

        config = load_config(config_path)
        collector = Collector(config)
        target = collector.target.description if collector.target else "embedded store"
        print(f"simulators: {', '.join(self.titles)}", file=self.out)
        print(f"config: {config_path} (copy it; the credentials in it are demo values)", file=self.out)
        print(f"data:   {config.store.path}" + (f" -> {target}" if collector.target else ""),
              file=self.out, flush=True)
        history: dict[str, int] = {}
        window = None
        stop = asyncio.Event()
        running = False
        try:
            if collector.target is not None:
                await self._prepare_influx(collector.target)
            if self.args.history > 0 and not self._history_kept(collector.store):
                end = datetime.now(UTC).replace(microsecond=0)
                window = (end - timedelta(seconds=self.args.history), end)
                history = self._history(collector, *window)
            _install_stop(stop)
            if history and collector.forwarder is not None:
                await self._ship_backlog(collector, stop)
            tty = self.out.isatty()
            refresh = self.args.refresh or (1.0 if tty else 5.0)
            view = LiveView(collector, self.out, refresh, tty, target, sum(history.values()))
            until = f"for {self.args.duration:g} s" if self.args.duration > 0 else "until Ctrl-C"
            print(f"live: the collector polls the simulators {until}", file=self.out, flush=True)
            began = time.monotonic()
            tasks = [asyncio.create_task(view.run(stop), name="demo-view")]
            if self.args.duration > 0:
                tasks.append(asyncio.create_task(_stop_after(stop, self.args.duration),
                                                 name="demo-duration"))
            running = True
            try:
                await collector.run(stop)   # closes the collector when it returns
            finally:
                stop.set()
                await asyncio.gather(*tasks, return_exceptions=True)
            live = time.monotonic() - began
        except BaseException:
            stop.set()
            if not running:
                collector.close()
            raise
        return DemoResult(config_path, config.store.path, history, window, live, self.simulators,
                          target if collector.target else None)

    async def _prepare_influx(self, target: Any) -> None:
        """Create the database or bucket the options name, or stop at once saying why."""
        try:
            said = await asyncio.to_thread(target.prepare)
        except WriteError as exc:
            raise ConfigError(f"demo: {exc}") from None
        print(f"influx: {said}", file=self.out, flush=True)

    def _history_kept(self, store: Any) -> bool:
        """Whether this store already holds generated history (a restart): then it is kept.

        A restarted demo (the compose stack's container, the same command run again) collects
        live on top of what it has; generating again would re-ship the whole window. History of
        another seed's world would not fit the live simulators, so that stops the demo.
        """
        recorded = store.cursor(HISTORY_CURSOR)
        if recorded is None:
            return False
        earlier = json.loads(recorded)
        if earlier["seed"] != self.args.seed:
            raise ConfigError(f"demo: {self.workdir} holds the simulated world of --seed "
                              f"{earlier['seed']}; run with --seed {earlier['seed']}, or use "
                              "another --workdir for another world")
        print(f"history: kept from an earlier run ({earlier['from']} to {earlier['to']}, seed "
              f"{earlier['seed']}); not generated again. Another --workdir starts afresh.",
              file=self.out, flush=True)
        return True

    def _history(self, collector: Any, start: datetime, end: datetime) -> dict[str, int]:
        days = self.args.history / 86400
        print(f"history: generating {days:.4g} day{'' if days == 1 else 's'} "
              f"({start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC, seed {self.args.seed})",
              file=self.out, flush=True)
        began = time.monotonic()
        with _stop_raises():
            counts = generate_history(collector.store, start, end, seed=self.args.seed,
                                      progress=sys.stderr.isatty())
        print(f"history: {sum(counts.values()):,} points in {time.monotonic() - began:.1f} s",
              file=self.out, flush=True)
        window = {"from": f"{start:%Y-%m-%d %H:%M}", "to": f"{end:%Y-%m-%d %H:%M} UTC",
                  "seed": self.args.seed}
        collector.store.append([], {HISTORY_CURSOR: json.dumps(window)})
        if collector.rollups is not None:
            # the days of the history get their rollups now, as a running collector's would
            began = time.monotonic()
            with _stop_raises():
                rolled = collector.rollups.run_now(int(end.timestamp() * 1e9))
            print(f"history: {rolled:,} daily and monthly rollup points "
                  f"({collector.rollups.zone_name} days) in {time.monotonic() - began:.1f} s",
                  file=self.out, flush=True)
        return counts

    async def _ship_backlog(self, collector: Any, stop: asyncio.Event) -> None:
        """Ship the history to InfluxDB before going live, so the dashboards have it at once.

        A stop now skips the live phase; the collector still starts and stops, which flushes
        what it can and leaves the rest in the store for the next run.
        """
        pending = await asyncio.to_thread(collector.store.pending_count)
        print(f"history: shipping {pending:,} points to {collector.target.description}",
              file=self.out, flush=True)
        bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm
            bar = tqdm(total=pending, unit="pt", desc="shipping", unit_scale=True)
        began, shipped = time.monotonic(), 0
        try:
            while not stop.is_set():
                count = await collector.forwarder.ship_once()
                if count == 0:
                    break
                shipped += count
                if bar is not None:
                    bar.update(count)
        except Exception as exc:   # the forwarder keeps trying while the demo runs
            log.warning("shipping the history stopped: %s; the collector retries while it runs", exc)
        finally:
            if bar is not None:
                bar.close()
        print(f"history: shipped {shipped:,} points in {time.monotonic() - began:.1f} s",
              file=self.out, flush=True)


@contextlib.contextmanager
def _stop_raises() -> Iterator[None]:
    """SIGINT and SIGTERM interrupt the (blocking) history generation with KeyboardInterrupt.

    Also when the process started with SIGINT ignored (a background job, some containers).
    Batches committed so far stay; the cursors are only set at the end, so a later collector
    simply fetches what the sources still hold.
    """
    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _install_stop(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):   # not the main thread, or Windows
            pass


async def _stop_after(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        stop.set()


def summary(result: DemoResult) -> list[str]:
    from collector.store import Store

    store = Store(result.store_path)
    try:
        counts = store.counts()
        pending = store.pending_count() if result.influx else 0
    finally:
        store.close()
    lines = [f"demo stopped after {result.live_seconds:.0f} s live; points per measurement in "
             f"{result.store_path}:"]
    lines += [f"  {name:<20} {count:>10,}" for name, count in counts.items()]
    if result.influx:
        lines.append(f"all shipped to {result.influx}" if not pending else
                     f"{pending:,} points not yet shipped to {result.influx}: they stay in the "
                     "store and ship when a collector runs on this config again")
    lines.append(f"the configuration it ran on: {result.config_path}")
    return lines


def statement_month(result: DemoResult) -> str:
    """The month (in the statement's zone) with the most charging sessions in the store, the
    latest of equals: on the 1st of a month the history is nearly all last month's, and a
    statement of this month would be empty. This month when there is no session yet."""
    from collections import Counter
    from zoneinfo import ZoneInfo

    from collector.config import load_config
    from collector.sessions.model import CHARGING_SESSION
    from collector.store import Store

    zone = ZoneInfo(load_config(result.config_path).sessions.timezone)
    store = Store(result.store_path)
    try:
        months = Counter(datetime.fromtimestamp(point.time_ns / 1e9, zone).strftime("%Y-%m")
                         for chunk in store.query(CHARGING_SESSION.name) for point in chunk)
    finally:
        store.close()
    if not months:
        return datetime.now(zone).strftime("%Y-%m")
    return max(months, key=lambda month: (months[month], month))


def next_steps(result: DemoResult) -> list[str]:
    """What to run next on what the demo collected: the commands, with the paths it wrote."""
    program = _program()
    workdir = result.config_path.parent
    config, csv = _shown(result.config_path), _shown(workdir / "sessions.csv")
    month = statement_month(result)
    lines = ["", "Next, on what it collected (it stays in the store; the simulators have stopped):",
             f"  {program} report --config {config} --html {_shown(workdir / 'report.html')}",
             f"  {program} export sessions --config {config} --out {csv}",
             f"  {program} statement --month {month} --config {config} --out {_shown(workdir)}"]
    if result.influx:
        lines += [f"Grafana: the data is in {result.influx}.",
                  "Give Grafana an InfluxDB data source for it (InfluxQL, uid \"influxdb\") and the",
                  "dashboards in dashboards/json/ (see dashboards/README.md)."]
    else:
        lines += ["Grafana reads InfluxDB, not the embedded store. For the dashboards, run the compose",
                  "stack (README, \"With Docker Compose\": `docker compose up -d` starts InfluxDB,",
                  "Grafana with the dashboards, and this demo), or run the demo into your own",
                  "InfluxDB with --influx-url (see --help)."]
    return lines


def _program() -> str:
    """How to call ev-collector again from here: by name when the shell finds this one."""
    argv0 = sys.argv[0]
    if os.path.basename(argv0) != "ev-collector":   # python -m collector.cli, tests
        return "ev-collector"
    found = shutil.which("ev-collector")
    if found and os.path.realpath(found) == os.path.realpath(argv0):
        return "ev-collector"
    return _shown(Path(argv0))


def _shown(path: Path) -> str:
    """A path as the user can type it here: relative below the working directory, quoted for
    the shell when it needs it."""
    path = path.resolve()
    try:
        return shlex.quote(str(path.relative_to(Path.cwd())))
    except ValueError:
        return shlex.quote(str(path))


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    if args.log_level is None:
        # The live view is the output; the collector's info lines would scroll it away.
        logging.getLogger().setLevel(logging.WARNING)
    try:
        result = Demo(args, out).run()
    except KeyboardInterrupt:
        print("demo: interrupted before going live; the history generated so far is in the store",
              file=sys.stderr)
        return 130
    for line in summary(result) + next_steps(result):
        print(line, file=out)
    return 0


__all__ = ["Demo", "DemoResult", "demo_config", "influx_section", "next_steps", "register",
           "render_line", "run", "snapshot"]
