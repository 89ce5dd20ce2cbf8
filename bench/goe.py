"""go-e benchmarks; prints its figures.

1. Conversion: samples/s for body -> JSON -> points -> line protocol, for a full (unfiltered,
   ~4 KB) and a filtered status, with our `Measurement.point` path and with influxdb-client
   `Point` objects doing the same mapping, in one run on one core.
2. Fleet: how many chargers one collector process polls at 1 Hz with >= 99 % of polls on time.
   The simulator runs in its own process (`python -m collector.sim.goe`); the collector side
   is the real source (limiter, httpx client, parser, PointWriter group commit into a SQLite
   store with synchronous=FULL), driven by an asyncio loop that starts each charger's poll on
   its own 1-second grid. A poll is on time when it started on its slot and its point was
   durable before the next slot, or the cloud said its status had not changed since the last
   poll (`last-modified` has a 1 s resolution, so a 1 Hz poll sometimes lands twice in the same
   second of the charger's clock). Skipped (limiter), late, failed or missed polls are not.

Usage: python bench/goe.py [--quick] [--fleet 250,500,750,1000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from collector.config import parse_config  # noqa: E402
from collector.health import Health  # noqa: E402
from collector.http_outcomes import SourceError  # noqa: E402
from collector.limits import Limits  # noqa: E402
from collector.points import to_line  # noqa: E402
from collector.measurement import CoercionReport, FieldType  # noqa: E402
from collector.sources.base import SourceContext  # noqa: E402
from collector.sources.goe import build  # noqa: E402
from collector.sources.goe.parse import STATUS, STATUS_KEYS, parse_status, status_values  # noqa: E402
from collector.store import Store  # noqa: E402
from collector.writer import PointWriter  # noqa: E402

PAYLOAD = ROOT / "tests" / "sources" / "goe" / "payloads" / "full_status_058.json"
TIME_NS = 1795253400_000000000


def ours(body: bytes) -> str:
    status = orjson.loads(body)   # what the client decodes with
    return to_line(parse_status(status, "012345", TIME_NS)[0])


def with_influxdb_client(body: bytes) -> str:
    return _point_line(orjson.loads(body))


def _point_line(status: dict) -> str:
    from influxdb_client import Point, WritePrecision

    values = status_values(status, CoercionReport())
    point = Point("goe_status").tag("serial", "012345").time(TIME_NS, WritePrecision.NS)
    for name, value in values.items():
        kind = _TYPES[name]
        if kind is FieldType.FLOAT:
            value = float(value)
        elif kind is FieldType.INT:
            value = int(value)
        point.field(name, value)
    return point.to_line_protocol()


_TYPES = {fl.name: fl.type for fl in STATUS.fields}


def _fields(line: str) -> dict[str, object]:
    """Field values of a line (our 99.0 and influxdb-client's 99 are the same float)."""
    out: dict[str, object] = {}
    for pair in line.split(" ")[1].split(","):
        key, value = pair.split("=", 1)
        if value.endswith("i") or value.startswith('"') or value in ("true", "false"):
            out[key] = value
        else:
            out[key] = float(value)
    return out


def _rate(fn, body: bytes, seconds: float) -> float:
    """Samples per CPU second of this process over `seconds` of its CPU time."""
    n, start = 0, time.process_time()
    while (elapsed := time.process_time() - start) < seconds:
        for _ in range(200):
            fn(body)
        n += 200
    return n / elapsed


def paired(mine, theirs, body: bytes, seconds: float, rounds: int = 7) -> tuple[float, float, list[float]]:
    """Both paths' rates (medians) and the ratio of each round: the paths take turns, a short
    run each, so a drift in this machine's speed moves both sides of a ratio alike."""
    for _ in range(200):
        mine(body)
        theirs(body)
    ours_rates, their_rates = [], []
    for _ in range(rounds):
        ours_rates.append(_rate(mine, body, seconds / (2 * rounds)))
        their_rates.append(_rate(theirs, body, seconds / (2 * rounds)))
    ratios = sorted(a / b for a, b in zip(ours_rates, their_rates, strict=True))
    return statistics.median(ours_rates), statistics.median(their_rates), ratios


def _row(label: str, mine: float, theirs: float, ratios: list[float]) -> str:
    return (f"  {label:27s}: ours {mine:9,.0f} samples/s   influxdb-client Point {theirs:9,.0f} "
            f"samples/s   x{statistics.median(ratios):.2f} (rounds x{ratios[0]:.2f}-x{ratios[-1]:.2f})")


def conversion(seconds: float) -> None:
    status = json.loads(PAYLOAD.read_text())["status"]
    full = json.dumps(status).encode()
    filtered = json.dumps({k: v for k, v in status.items() if k in STATUS_KEYS}).encode()
    a, b = ours(full), with_influxdb_client(full)
    assert _fields(a) == _fields(b), (a, b)  # the same point, whichever path built it
    print("conversion: body -> JSON -> point -> line protocol, one core; ratio: median of "
          "7 paired rounds")
    # The collector asks for the filtered status (the default `filter`, cloud and local API
    # v2); the full one is what a charger answers without a filter.
    for label, body in ((f"full status ({len(full)} B)", full),
                        (f"filtered status ({len(filtered)} B)", filtered)):
        print(_row(label, *paired(ours, with_influxdb_client, body, seconds)))
    decoded = json.loads(full)
    print(_row("decoded status (no JSON)",
               *paired(lambda _: to_line(parse_status(decoded, "012345", TIME_NS)[0]),
                       lambda _: _point_line(decoded), full, seconds)))
    print("  (the collector asks for the filtered status by default)")


# -- fleet -------------------------------------------------------------------------------------


def start_simulator(chargers: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "collector.sim.goe", "--port", "0",
                             "--chargers", str(chargers), "--token", "bench-token"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError(f"simulator did not start: {line!r}")
    return proc, line.split()[1]


async def fleet_round(url: str, chargers: int, seconds: float, warmup: float = 3.0) -> dict:
    tmp = tempfile.mkdtemp(prefix="goe-bench-")
    store = Store(Path(tmp) / "bench.db")
    health = Health()
    ctx = SourceContext(cursors=store, writer=PointWriter(store, health), limits=Limits(),
                        health=health)
    config = parse_config({"sources": {"goe": {
        "interval": 1, "cloud_url": url, "timeout": 5,
        "chargers": [{"serial": f"{n:06d}", "token": "bench-token"} for n in range(1, chargers + 1)],
    }}}).sources.goe
    source = build(config, ctx)
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.5
    measure_from, measure_to = t0 + warmup, t0 + warmup + seconds
    on_time = 0
    slots = 0
    lateness: list[float] = []
    durations: list[float] = []
    outcomes: dict[str, int] = {}

    async def charger_loop(poller, offset: float) -> None:
        nonlocal on_time, slots
        slot = t0 + offset
        while slot < measure_to:
            now = loop.time()
            if now < slot:
                await asyncio.sleep(slot - now)
            started = loop.time()
            try:
                await poller.run()
                outcome = poller.last_outcome
            except SourceError as exc:  # counted, not raised: the benchmark goes on
                outcome = "unchanged" if poller.last_outcome == "unchanged" else exc.action.value
            except Exception as exc:
                outcome = type(exc).__name__
            finished = loop.time()
            if measure_from <= slot < measure_to:
                slots += 1
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
                lateness.append(started - slot)
                durations.append(finished - started)
                if outcome in ("written", "unchanged") and finished < slot + 1.0:
                    on_time += 1
            slot += 1.0
            while slot < finished:  # missed slots while this poll ran long
                if measure_from <= slot < measure_to:
                    slots += 1
                    outcomes["missed"] = outcomes.get("missed", 0) + 1
                slot += 1.0

    # Spread the chargers over the second, as the scheduler's fixed per-device phases do.
    tasks = [charger_loop(p, (n / len(source.pollers))) for n, p in enumerate(source.pollers)]
    cpu0 = time.process_time()
    await asyncio.gather(*tasks)
    cpu = (time.process_time() - cpu0) / (warmup + seconds + 1.5)
    await source.close()
    stats = store.stats()
    store.close()
    lateness.sort()
    durations.sort()
    return {"chargers": chargers, "on_time": on_time / max(1, slots), "slots": slots,
            "outcomes": outcomes, "p99_start_lag_ms": 1000 * lateness[int(0.99 * (len(lateness) - 1))],
            "median_start_lag_ms": 1000 * statistics.median(lateness), "cpu": cpu,
            "median_poll_ms": 1000 * statistics.median(durations),
            "p99_poll_ms": 1000 * durations[int(0.99 * (len(durations) - 1))],
            "points": stats.pending}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), to see whether the simulator keeps up."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def fleet(sizes: list[int], seconds: float) -> None:
    print(f"fleet: polls at 1 Hz per charger, {seconds:g} s measured after 3 s warm-up; "
          "simulator in its own process")
    proc, url = start_simulator(max(sizes))
    best = 0
    try:
        for size in sizes:
            sim_cpu0, wall0 = cpu_seconds(proc.pid), time.monotonic()
            result = asyncio.run(fleet_round(url, size, seconds))
            sim_cpu = (cpu_seconds(proc.pid) - sim_cpu0) / (time.monotonic() - wall0)
            ok = result["on_time"] >= 0.99
            best = size if ok else best
            print(f"  {size:5d} chargers: {100 * result['on_time']:6.2f} % on time over "
                  f"{result['slots']} polls; start lag median {result['median_start_lag_ms']:.1f} ms, "
                  f"p99 {result['p99_start_lag_ms']:.1f} ms; poll median {result['median_poll_ms']:.1f} ms, "
                  f"p99 {result['p99_poll_ms']:.1f} ms; collector CPU {100 * result['cpu']:.0f} % "
                  f"of a core, simulator {100 * sim_cpu:.0f} %; load average {os.getloadavg()[0]:.1f}; "
                  f"outcomes {result['outcomes']}")
            if not ok:
                break
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(f"  => largest fleet polled at 1 Hz with >= 99 % on time: {best} chargers")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs")
    parser.add_argument("--fleet", default="250,500,600,700,800,1000")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--skip-fleet", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    conversion(1.0 if args.quick else 10.0)
    if not args.skip_fleet:
        fleet([int(s) for s in args.fleet.split(",")], 5.0 if args.quick else args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
