"""Fleet benchmark: K collector processes, the whole system, real InfluxDB; prints its figures.

The collector runs as it does in production (`python -m collector.cli run --config ...
--shard N`: the APScheduler jobs, limiter, httpx, parse, group commit into SQLite with
synchronous=FULL, the forwarder into a real influxd 1.x). With `--shards K`, K such processes
share one configuration (`[collector] shards = K`), each with its own store, against the same
simulators and the same InfluxDB database; every figure is reported per shard and for the
fleet. Each simulator runs in a process of its own (this script re-executed with
`serve <kind>`) and records the time of every request it answers:
- N go-e chargers polled at 1 Hz (Cloud API, the default configuration: each charger on its
  own fixed phase of the second),
- 50 ev.energy EVSEs (status every 5 min, commands every 15 min),
- 20 OVMS vehicles (four streams every 60 s).

Per fleet size, over the measured window after a warm-up:
- on time: the share of charger-seconds that got a successful poll: the requests each
  charger's simulator answered in the window, less failed polls (collector_health.polls_failed),
  over chargers x seconds. Requests at least 1 s apart (the limiter's promise) cannot exceed
  one per second, so a charger polled every 1.01 s on average scores 99 %;
- missed: slots without a poll counted from the gaps (a gap of g seconds misses round(g) - 1),
  late: runs APScheduler dropped because the previous run of the job was still going,
  skipped: polls the limiter refused (they send nothing);
- requests per second per charger: the most requests any charger got in any 1-second window
  (the limiter's promise: never more than 1; 50 ms allowed for delivery jitter), the shortest
  gap between two requests and the share of gaps under 0.95 s. Times are taken when the
  simulator's handler runs, so they include the simulator's own scheduling delays;
- samples stored: the share of the chargers' per-second statuses (the cloud's `last-modified`
  advances once a second) that are in the store, over chargers x seconds of the window;
- CPU seconds of the collector process per 1,000 polls (all sources), peak RSS (VmHWM);
- points per second committed, and the backlog (points not yet in InfluxDB) at the end;
- the go-e simulator's own CPU and the load average: on a 2-core machine the simulator needs
  a core of its own at 1,000 requests per second, and a shared machine's other load shows.

A shard's requests are those to the chargers it owns (collector/shards.py), and to the
ev.energy client and the OVMS account when it owns them; its health and figures come from
its own store. The fleet row adds the shards up (RSS: the sum of the processes' peaks).

Settings the script pins (everything else is the default, `jitter` included):
`health_interval = 5s` and `log_level = warning` in [collector], go-e `timeout = 5s`,
ev.energy `backfill = 1d` and `quota_limit = 100000` (the simulator's rate-limit headers set
the real quota), OVMS `history_interval = 15m`.

Usage: python bench/fleet.py [--sizes 100,300,1000,2000] [--shards K] [--warmup 15]
       [--seconds 30] [--logs DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from bisect import bisect_left
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EVSES = 50
VEHICLES = 20
TOKEN = "bench-token"


# -- simulator processes -------------------------------------------------------------------------


class Recorder:
    """Wraps a simulator: remembers (key, wall time) of every request, for the report."""

    def __init__(self, sim, key) -> None:
        self.sim = sim
        self.key = key
        self.times: dict[str, list[float]] = {}
        self.lock = threading.Lock()

    def handle(self, request):
        now = time.time()
        key = self.key(request)
        with self.lock:
            self.times.setdefault(key, []).append(now)
        return self.sim.handle(request)


def serve(kind: str, size: int, out: Path) -> int:
    from collector.sim.base import SimServer

    if kind == "goe":
        from collector.sim.goe import GoeSimulator
        sim = GoeSimulator.fleet(size, token=TOKEN)
        recorder = Recorder(sim, lambda r: r.path.strip("/").split("/")[0])
    elif kind == "evenergy":
        from collector.sim.evenergy import EvEnergySim
        sim = EvEnergySim(evses=size, quota=1_000_000, history_days=2)
        recorder = Recorder(sim, lambda r: "evenergy")
    elif kind == "ovms":
        from collector.sim.ovms import OvmsSim, SimVehicle
        sim = OvmsSim(vehicles=[SimVehicle(f"V{n:03d}") for n in range(size)],
                      users={"bench": TOKEN})
        recorder = Recorder(sim, lambda r: "ovms")
    else:
        raise SystemExit(f"unknown simulator {kind}")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with SimServer(recorder) as server:
        print(f"READY {server.url}", flush=True)
        while not stop.wait(0.5):
            pass
    with recorder.lock:
        out.write_text(json.dumps(recorder.times))
    return 0


def start_sim(kind: str, size: int, out: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, __file__, "serve", kind, str(size), str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError(f"{kind} simulator did not start: {line!r}")
    return proc, line.split()[1]


def stop_sim(proc: subprocess.Popen, out: Path) -> dict[str, list[float]]:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    return json.loads(out.read_text())


# -- the collector process -----------------------------------------------------------------------


def serials(chargers: int) -> list[str]:
    return [f"{n:06d}" for n in range(1, chargers + 1)]


def write_config(path: Path, store: str, influx_url: str, goe: str, evenergy: str, ovms: str,
                 chargers: int, shards: int) -> None:
    """`store` may hold `{shard}`: one config for every shard."""
    charger_lines = "".join(f'[[sources.goe.chargers]]\nserial = "{serial}"\ntoken = "{TOKEN}"\n'
                            for serial in serials(chargers))
    path.write_text(f"""
[collector]
log_level = "warning"
health_interval = "5s"
shards = {shards}
name = "bench"
[store]
path = "{store}"
[influxdb]
api = "v1"
url = "{influx_url}"
database = "fleet"
[sources.goe]
interval = "1s"
timeout = "5s"
cloud_url = "{goe}/{{serial}}"
{charger_lines}
[sources.evenergy]
client_id = "demo-client"
client_secret = "demo-secret"
user = "user01HSIMULATEDUSER0000000000"
base_url = "{evenergy}/v2"
backfill = "1d"
quota_limit = 100000
[sources.ovms]
url = "{ovms}"
username = "bench"
password = "{TOKEN}"
history_interval = "15m"
""")


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def store_figures(path: Path) -> tuple[int, int, dict]:
    """(points stored, backlog, newest goe health) read from a collector's store."""
    from collector.store import Store

    store = Store(path)
    try:
        stats = store.stats()
        health: dict = {}
        newest = -1
        for chunk in store.query("collector_health", tags={"source": "goe"}):
            for p in chunk:
                if p.time_ns > newest:
                    newest, health = p.time_ns, p.fields
        return stats.pending + stats.shipped, stats.pending, health
    finally:
        store.close()


def samples_stored(path: Path, chargers: int, start: float, end: float) -> float:
    """Share of the chargers' per-second statuses in [start, end) that the store holds."""
    from collector.store import Store

    first, last = int(start) + 1, int(end) - 1      # whole seconds inside the window
    store = Store(path)
    try:
        seconds = {(p.tags["serial"], p.time_ns // 1_000_000_000)
                   for chunk in store.query("goe_status", first * 10**9, last * 10**9)
                   for p in chunk}
    finally:
        store.close()
    inside = sum(1 for _, second in seconds if first <= second < last)
    return inside / max(1, chargers * (last - first))


# -- figures -----------------------------------------------------------------------------------


def slot_figures(times: dict[str, list[float]], start: float, end: float) -> dict:
    """Missed 1-second slots, the most requests in any 1-second window, the shortest gap."""
    expected = missed = received = 0
    max_in_second = 0
    min_gap = float("inf")
    gaps = short = 0
    for serial, stamps in times.items():
        stamps = sorted(stamps)
        window = stamps[bisect_left(stamps, start - 2):bisect_left(stamps, end + 2)]
        inside = [t for t in window if start <= t < end]
        expected += round(end - start)
        received += len(inside)
        if not inside:
            missed += round(end - start)
            continue
        if inside[0] - start > 1.0:          # polls have a phase within the second
            missed += int(inside[0] - start)
        for a, b in zip(inside, inside[1:]):
            gap = b - a
            min_gap = min(min_gap, gap)
            gaps += 1
            short += gap < 0.95
            missed += max(0, round(gap) - 1)
        if end - inside[-1] > 1.0:
            missed += int(end - inside[-1])
        j = 0
        for i, t in enumerate(window):
            while window[j] <= t - 0.95:     # 50 ms allowance for delivery jitter
                j += 1
            max_in_second = max(max_in_second, i - j + 1)
    return {"expected": expected, "missed": missed, "received": received,
            "max_per_second": max_in_second,
            "min_gap": min_gap, "short_gaps": short / max(1, gaps)}


def owners(config_path: Path) -> dict[str, int]:
    """Which shard polls which simulator key: each charger's serial, the ev.energy client and
    the OVMS account, as the collector assigns them (the sources' `shard_unit`)."""
    from collector.config import load_config
    from collector.shards import owner
    from collector.sources.evenergy.source import shard_unit as evenergy_unit
    from collector.sources.goe.source import shard_unit as goe_unit
    from collector.sources.ovms.source import shard_unit as ovms_unit

    config = load_config(config_path)
    shards = config.collector.shards
    out = {c.serial: owner(goe_unit(c.serial), shards) for c in config.sources.goe.chargers}
    out["evenergy"] = owner(evenergy_unit(config.sources.evenergy), shards)
    out["ovms"] = owner(ovms_unit(config.sources.ovms), shards)
    return out


class Process:
    """One collector process and its store, measured over the window."""

    def __init__(self, shard: int, config: Path, store: Path, log: Path) -> None:
        self.shard = shard
        self.store = store
        self.log = log.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "collector.cli", "run", "--config",
                                      str(config), "--shard", str(shard)],
                                     cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)

    def begin(self) -> None:
        self.cpu0 = proc_cpu(self.proc.pid)
        self.points0, _, self.health0 = store_figures(self.store)

    def end(self) -> None:
        self.cpu = proc_cpu(self.proc.pid) - self.cpu0
        self.points1, self.backlog, self.health1 = store_figures(self.store)
        self.rss = proc_peak_rss_mb(self.proc.pid)
        if self.proc.poll() is not None:
            raise RuntimeError(f"collector shard {self.shard} exited with {self.proc.returncode}")

    def delta(self, name: str) -> int:
        return self.health1.get(name, 0) - self.health0.get(name, 0)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def figures(times: dict[str, dict[str, list[float]]], procs: list[Process], chargers: list[str],
            keys: set[str], start: float, end: float, sim_cpu: float, load: float) -> dict:
    """The figures of some shards (`procs`), from the requests to the keys they own."""
    seconds = end - start
    goe = slot_figures({k: v for k, v in times["goe"].items() if k in keys}, start, end)
    goe["expected"] = round(end - start) * len(chargers)       # a charger never asked still counts
    goe["missed"] += round(end - start) * sum(1 for c in chargers if c not in times["goe"])
    polls = sum(1 for kind, per_key in times.items() for key, stamps in per_key.items()
                if (key if kind == "goe" else kind) in keys for t in stamps if start <= t < end)
    failed = sum(p.delta("polls_failed") for p in procs)
    cpu = sum(p.cpu for p in procs)
    return {
        "chargers": len(chargers),
        "on_time": (goe["received"] - failed) / max(1, goe["expected"]),
        "samples": sum(p.samples * p.chargers for p in procs) / max(1, len(chargers)),
        "missed": goe["missed"], "failed": failed,
        "late": sum(p.delta("polls_late") for p in procs),
        "skipped": sum(p.delta("polls_skipped") for p in procs),
        "max_per_second": goe["max_per_second"], "min_gap": goe["min_gap"],
        "short_gaps": goe["short_gaps"],
        "cpu_per_1000": 1000 * cpu / max(1, polls), "cpu_share": cpu / seconds,
        "sim_cpu_share": sim_cpu / seconds, "load": load,
        "polls_per_s": polls / seconds, "rss_mb": sum(p.rss for p in procs),
        "points_per_s": sum(p.points1 - p.points0 for p in procs) / seconds,
        "backlog": sum(p.backlog for p in procs),
    }


def run_size(chargers: int, shards: int, influx_url: str, workdir: Path, warmup: float,
             seconds: float) -> list[tuple[str, dict]]:
    """[(shard label, figures)]: one row per shard, then the fleet (or one row for one process)."""
    import httpx

    httpx.post(f"{influx_url}/query", data={"q": "DROP DATABASE fleet"}, timeout=30)
    httpx.post(f"{influx_url}/query", data={"q": "CREATE DATABASE fleet"}, timeout=30)
    sims = {}
    outs = {kind: workdir / f"{kind}-{chargers}x{shards}.json" for kind in ("goe", "evenergy", "ovms")}
    for kind, size in (("goe", chargers), ("evenergy", EVSES), ("ovms", VEHICLES)):
        sims[kind] = start_sim(kind, size, outs[kind])
    stores = [workdir / f"store-{chargers}x{shards}-{n}.db" for n in range(shards)]
    config = workdir / f"fleet-{chargers}x{shards}.toml"
    write_config(config, str(workdir / f"store-{chargers}x{shards}-{{shard}}.db"), influx_url,
                 sims["goe"][1], sims["evenergy"][1], sims["ovms"][1], chargers, shards)
    owner_of = owners(config)
    procs = [Process(n, config, stores[n], workdir / f"collector-{chargers}x{shards}-{n}.log")
             for n in range(shards)]
    try:
        time.sleep(warmup)
        start = time.time()
        for p in procs:
            p.begin()
        sim_cpu0 = proc_cpu(sims["goe"][0].pid)
        time.sleep(seconds)
        end = time.time()
        sim_cpu = proc_cpu(sims["goe"][0].pid) - sim_cpu0
        load = os.getloadavg()[0]
        for p in procs:
            p.end()
            p.chargers = sum(1 for s in serials(chargers) if owner_of[s] == p.shard)
            p.samples = samples_stored(p.store, p.chargers, start, end)
    finally:
        for p in procs:
            p.stop()
        times = {kind: stop_sim(proc, outs[kind]) for kind, (proc, _) in sims.items()}
    rows = []
    for p in procs if shards > 1 else []:
        keys = {key for key, n in owner_of.items() if n == p.shard}
        mine = [s for s in serials(chargers) if owner_of[s] == p.shard]
        rows.append((str(p.shard), figures(times, [p], mine, keys, start, end, sim_cpu, load)))
    rows.append(("all" if shards > 1 else "-",
                 figures(times, procs, serials(chargers), set(owner_of), start, end, sim_cpu, load)))
    return rows


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        return serve(sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100,300,1000,2000",
                        help="chargers in the whole fleet, comma-separated (one run each)")
    parser.add_argument("--shards", type=int, default=1,
                        help="collector processes sharing the fleet (one config, own stores)")
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--logs", type=Path, default=None,
                        help="keep each run's collector logs in this directory")
    args = parser.parse_args()
    from tests.servers import influx_server

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} at the start; {args.shards} collector process(es); "
          f"{EVSES} ev.energy EVSEs and {VEHICLES} OVMS vehicles besides the chargers; "
          f"{args.seconds:g} s measured after {args.warmup:g} s")
    print(f"{'chargers':>8} {'shard':>5} {'on time':>8} {'samples':>8} {'missed':>6} {'late':>5} {'skipped':>7} {'failed':>6} "
          f"{'req/s max':>9} {'min gap':>7} {'gaps<0.95s':>10} {'CPU s/1k polls':>14} {'CPU':>5} {'polls/s':>7} "
          f"{'peak RSS':>8} {'points/s':>8} {'backlog':>7} {'go-e sim CPU':>12} {'load':>5}")
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "influx").mkdir()
        with influx_server(workdir / "influx") as influx:
            for size in (int(s) for s in args.sizes.split(",")):
                for shard, r in run_size(size, args.shards, influx.url, workdir, args.warmup, args.seconds):
                    print(f"{r['chargers']:>8} {shard:>5} {100 * r['on_time']:>7.2f}% {100 * r['samples']:>7.2f}% "
                          f"{r['missed']:>6} "
                          f"{r['late']:>5} {r['skipped']:>7} "
                          f"{r['failed']:>6} {r['max_per_second']:>9} {r['min_gap']:>6.3f}s "
                          f"{100 * r['short_gaps']:>9.3f}% "
                          f"{r['cpu_per_1000']:>14.3f} {100 * r['cpu_share']:>4.0f}% "
                          f"{r['polls_per_s']:>7.0f} {r['rss_mb']:>6.0f}MB {r['points_per_s']:>8.0f} "
                          f"{r['backlog']:>7} {100 * r['sim_cpu_share']:>11.0f}% {r['load']:>5.1f}",
                          flush=True)
                if args.logs is not None:
                    args.logs.mkdir(parents=True, exist_ok=True)
                    for log in workdir.glob(f"collector-{size}x{args.shards}-*.log"):
                        shutil.copy(log, args.logs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
