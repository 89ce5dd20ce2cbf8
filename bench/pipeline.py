"""Pipeline benchmark: points/s from `store.append` to rows in a real InfluxDB.

Runs, each in a fresh subprocess (so peak RSS is per path), once influxd is idle again after
the path before (its compactions are not charged to the next path):
  store-only  append + read as line protocol + mark shipped, no InfluxDB: our cost per point
  ceiling     pre-serialized lines POSTed to InfluxDB (uncompressed, as to a local InfluxDB):
              the server's own ingest limit here, the ceiling any client can reach
  direct-v2   influxdb-client writing the same points as `Point` objects, no store
  durable-v2  100 sources writing 200 points at a time through the PointWriter (which commits
              what arrived meanwhile, at the default commit_interval of 0.1 s), while the
              forwarder process ships
              via V2Target (influxdb-client) -> rows in InfluxDB, as `ev-collector run` does
  durable-v1  the same, shipped with our v1 client
  drain-v1    a backlog already in the store (as after an outage) shipped with our v1 client:
              how fast a backlog drains once InfluxDB is back
The InfluxDB here is 1.6 (Debian), which has no /api/v2/write; a small shim process translates
/api/v2/write to /write for both v2 paths alike. Usage: python bench/pipeline.py [--points N]
[--only PATH,...] [--repeat K] (K runs of the paths in turn, then their medians: this machine's
speed drifts from run to run by more than most changes gain)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

T0 = 1_700_000_000_000_000_000
SERIES = 20
SOURCES, SOURCE_CHUNK = 100, 200   # durable paths: sources writing at once, points per write


def make_points(n: int):
    from collector.points import Point

    tags = [{"charger": f"{s:06d}"} for s in range(SERIES)]   # a source's tags, built once
    for k in range(n):
        yield Point("bench_charger", tags[k % SERIES], {
            "power_w": 7000.0 + k % 500, "voltage_l1_v": 231.5, "voltage_l2_v": 230.25,
            "voltage_l3_v": 229.75, "current_l1_a": 10.125, "current_l2_a": 10.25,
            "current_l3_a": 10.0, "energy_wh": 1_000_000 + k, "car_state": 2, "allowed": True,
        }, T0 + (k // SERIES) * 1_000_000_000)


# -- the shim -------------------------------------------------------------------------------

def run_shim(port: int, influx_url: str) -> None:
    """/api/v2/write?bucket=B&precision=P -> /write?db=B&precision=P, body passed through."""
    from aiohttp import ClientSession, web

    async def write(request: web.Request) -> web.Response:
        body = await request.read()  # aiohttp inflates gzip request bodies
        params = {"db": request.query["bucket"], "precision": request.query.get("precision", "ns")}
        async with request.app["session"].post(f"{influx_url}/write", params=params, data=body) as r:
            return web.Response(status=r.status, body=await r.read())

    async def ping(_request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def main() -> None:
        app = web.Application(client_max_size=1 << 30)
        app["session"] = ClientSession()
        app.router.add_post("/api/v2/write", write)
        app.router.add_get("/ping", ping)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    asyncio.run(main())


# -- the paths (each in its own process) ----------------------------------------------------

def _influx(api: str, url: str, db: str):
    from collector.config_types import InfluxV1, InfluxV2, Secret

    if api == "v1":
        return InfluxV1(api="v1", url=url, database=db, batch_size=5000)
    return InfluxV2(api="v2", url=url, org="bench", bucket=db, token=Secret("bench", "bench"))


def path_durable(n: int, api: str, url: str, db: str, workdir: str) -> dict:
    """What `ev-collector run` does: sources hand their points to the PointWriter, which
    commits everything that arrived during the previous commit in one transaction (in a
    thread); the forwarder ships from its own process."""
    from collector.config_types import StoreSection
    from collector.forwarder_process import ForwarderProcess
    from collector.health import Health
    from collector.store import Store
    from collector.writer import PointWriter

    store = Store(Path(workdir) / f"bench-{api}.db")
    influx = _influx(api, url, db)
    shipper = ForwarderProcess(store.path, "full", influx, influx.batch_size, Health())
    # the default [store] commit_interval: commits under load at least 0.1 s apart
    writer = PointWriter(store, Health(), commit_interval=StoreSection().commit_interval)
    commits = 0
    commit_groups = store.commit_groups

    def counted(groups):   # the commits the writer makes, for their mean size
        nonlocal commits
        commits += 1
        return commit_groups(groups)

    store.commit_groups = counted  # type: ignore[method-assign]

    async def run() -> tuple[float, float]:
        shipper.start()
        # The clock starts once the forwarder process is up (a Python start and its imports,
        # about a second, once per collector start, not per point).
        while not shipper.alive:
            await asyncio.sleep(0.05)
        await asyncio.sleep(2.0)
        started = time.perf_counter()
        points = make_points(n)

        async def source() -> None:   # a source: makes a poll's points, awaits their commit
            while chunk := list(itertools.islice(points, SOURCE_CHUNK)):
                await writer.write(chunk)

        await asyncio.gather(*(source() for _ in range(SOURCES)))
        appended = time.perf_counter() - started
        # Until the forwarder has shipped everything: the oldest pending point, not a count
        # of them (which scans the backlog, and took a tenth of the run's CPU every 10 ms)
        while await asyncio.to_thread(store.next_batch, 1):
            await asyncio.sleep(0.01)
        total = time.perf_counter() - started
        await shipper.stop()
        return total, appended

    total, appended = asyncio.run(run())
    store.close()
    return {"seconds": total, "append_seconds": appended, "points_per_commit": n / max(commits, 1)}


def path_drain(n: int, api: str, url: str, db: str, workdir: str) -> dict:
    """A backlog already in the store (as after an outage), shipped batch after batch."""
    from collector.health import Health
    from collector.influx import Forwarder, make_target
    from collector.store import Store

    store = Store(Path(workdir) / f"bench-drain-{api}.db")
    points = make_points(n)
    while chunk := list(itertools.islice(points, 100_000)):
        store.append(chunk)
    target = make_target(_influx(api, url, db))
    forwarder = Forwarder(store, target, Health(), batch_size=5000)
    started = time.perf_counter()
    shipped = asyncio.run(forwarder.ship_backlog())
    seconds = time.perf_counter() - started
    assert shipped == n and store.pending_count() == 0, (shipped, n)
    wal = Path(f"{store.path}-wal")
    wal_mb = wal.stat().st_size / 2**20 if wal.exists() else 0.0
    target.close()
    store.close()
    return {"seconds": seconds, "wal_mb": wal_mb}


def path_direct(n: int, url: str, db: str) -> dict:
    from influxdb_client import InfluxDBClient
    from influxdb_client import Point as ClientPoint
    from influxdb_client.client.write_api import SYNCHRONOUS, WritePrecision

    client = InfluxDBClient(url=url, token="bench", org="bench", enable_gzip=True, retries=False)
    write = client.write_api(write_options=SYNCHRONOUS)
    started = time.perf_counter()
    batch = []
    for p in make_points(n):
        cp = ClientPoint(p.measurement).time(p.time_ns, WritePrecision.NS)
        for k, v in p.tags.items():
            cp.tag(k, v)
        for k, v in p.fields.items():
            cp.field(k, v)
        batch.append(cp)
        if len(batch) == 5000:
            write.write(bucket=db, record=batch, write_precision=WritePrecision.NS)
            batch = []
    if batch:
        write.write(bucket=db, record=batch, write_precision=WritePrecision.NS)
    seconds = time.perf_counter() - started
    client.close()
    return {"seconds": seconds}


def path_ceiling(n: int, url: str, db: str) -> dict:
    """InfluxDB's own ingest limit here: pre-serialized lines POSTed, no Python work per point,
    uncompressed as our v1 client sends them to an InfluxDB on this machine."""
    import httpx

    from collector.points import to_line

    bodies = []
    lines = [to_line(p) for p in make_points(n)]
    for k in range(0, n, 5000):
        bodies.append("\n".join(lines[k:k + 5000]).encode())
    del lines
    with httpx.Client(timeout=120) as client:
        started = time.perf_counter()
        for body in bodies:
            r = client.post(f"{url}/write", params={"db": db, "precision": "ns"}, content=body)
            r.raise_for_status()
        seconds = time.perf_counter() - started
    return {"seconds": seconds}


def path_store_only(n: int, workdir: str) -> dict:
    """Our own cost per point on one core: append, read as line protocol, mark shipped."""
    from collector.store import Store

    store = Store(Path(workdir) / "bench-store-only.db")
    points = list(make_points(n))
    started = time.perf_counter()
    for k in range(0, n, 1000):
        store.append(points[k:k + 1000])
    appended = time.perf_counter()
    while batch := store.next_batch(5000):
        store.mark_shipped(batch)
    done = time.perf_counter()
    store.close()
    return {"seconds": done - started, "append_seconds": appended - started}


def child(args: argparse.Namespace) -> None:
    if args.path.startswith("drain-"):
        result = path_drain(args.points, args.path.split("-")[1], args.url, args.db, args.workdir)
    elif args.path == "direct-v2":
        result = path_direct(args.points, args.url, args.db)
    elif args.path == "ceiling":
        result = path_ceiling(args.points, args.url, args.db)
    elif args.path == "store-only":
        result = path_store_only(args.points, args.workdir)
    else:
        result = path_durable(args.points, args.path.split("-")[1], args.url, args.db, args.workdir)
    result["peak_rss_mb"] = peak_rss_mb()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)   # the forwarder process
    result["cpu"] = usage.ru_utime + usage.ru_stime + children.ru_utime + children.ru_stime
    if children.ru_maxrss:
        result["child_rss_mb"] = children.ru_maxrss / 1024
        result["child_cpu"] = children.ru_utime + children.ru_stime
    print(json.dumps(result))


def peak_rss_mb() -> float:
    """VmHWM of this process (ru_maxrss would carry the parent's peak across fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- orchestration --------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(pid: int, limit: float = 60.0) -> float:
    """Wait until influxd is idle (below 5 % of a core over a second), so a path does not
    pay for the compaction of the points the path before it wrote. Returns seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        before = cpu_seconds(pid)
        time.sleep(1.0)
        if cpu_seconds(pid) - before < 0.05:
            break
    return time.monotonic() - started


def count_rows(influx_url: str, db: str) -> int:
    import httpx

    r = httpx.get(f"{influx_url}/query", params={"db": db, "q": "SELECT count(power_w) FROM bench_charger"},
                  timeout=120)
    series = r.json()["results"][0].get("series")
    return series[0]["values"][0][1] if series else 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--only", help="comma-separated paths to run (default: all)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run the paths this many times in turn and print the medians "
                             "(this machine's speed drifts between runs)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--path")
    parser.add_argument("--url")
    parser.add_argument("--db")
    parser.add_argument("--workdir")
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    import httpx
    from multiprocessing import Process

    from tests.servers import free_port, influx_server

    with tempfile.TemporaryDirectory() as tmp, influx_server(Path(tmp)) as influx:
        shim_port = free_port()
        shim = Process(target=run_shim, args=(shim_port, influx.url), daemon=True)
        shim.start()
        shim_url = f"http://127.0.0.1:{shim_port}"
        for _ in range(100):
            try:
                httpx.get(f"{shim_url}/ping", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        paths = ("store-only", "ceiling", "direct-v2", "durable-v2", "durable-v1", "drain-v1")

        def run_path(path: str, rep: int) -> dict:
            db = path.replace("-", "_") + (f"_{rep}" if rep else "")
            workdir = Path(tmp) / f"run{rep}"     # fresh stores for every run
            workdir.mkdir(exist_ok=True)
            influx.create_database(db)
            url = influx.url if path in ("durable-v1", "drain-v1", "ceiling") else shim_url
            settle(influx.proc.pid)
            influx_cpu = cpu_seconds(influx.proc.pid)
            out = subprocess.run(
                [sys.executable, __file__, "--child", "--path", path, "--points", str(args.points),
                 "--url", url, "--db", db, "--workdir", str(workdir)],
                capture_output=True, text=True, check=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            result["influxd_cpu"] = cpu_seconds(influx.proc.pid) - influx_cpu
            result["rows"] = count_rows(influx.url, db) if path != "store-only" else 0
            print(f"{path:<11} {args.points / result['seconds']:>10,.0f} points/s  "
                  f"{result['seconds']:6.1f} s  rows in InfluxDB {result['rows']:>9,}  "
                  f"peak RSS {result['peak_rss_mb']:.0f} MB"
                  + (f" + forwarder {result['child_rss_mb']:.0f} MB" if "child_rss_mb" in result
                     else "")
                  + (f"  (append alone {args.points / result['append_seconds']:,.0f} points/s)"
                     if "append_seconds" in result else "")
                  + (f"  ({result['points_per_commit']:,.0f} points a commit)"
                     if "points_per_commit" in result else "")
                  + (f"  (WAL after {result['wal_mb']:.1f} MB)" if "wal_mb" in result else "")
                  + (f"  influxd CPU {result['influxd_cpu'] / result['seconds']:.2f} cores"
                     if path != "store-only" else "")
                  + f"  our CPU {1e6 * result['cpu'] / args.points:.1f} us/point"
                  + (f" (forwarder {1e6 * result['child_cpu'] / args.points:.1f})"
                     if "child_cpu" in result else ""),
                  flush=True)
            return result

        runs: list[dict[str, dict]] = []
        try:
            for rep in range(args.repeat):
                runs.append({path: run_path(path, rep)
                             for path in (args.only.split(",") if args.only else paths)})
        finally:
            shim.terminate()
            shim.join(5)
        rates = [{path: args.points / result["seconds"] for path, result in results.items()}
                 for results in runs]
        if len(rates) > 1:
            print(f"medians of {len(rates)} runs:")
            for path in rates[0]:
                values = sorted(rate[path] for rate in rates)
                print(f"  {path:<11} {statistics.median(values):>10,.0f} points/s  "
                      f"(runs {values[0]:,.0f}-{values[-1]:,.0f})")

        def ratio(a: str, b: str) -> str:
            values = sorted(rate[a] / rate[b] for rate in rates)
            spread = f" (runs {values[0]:.2f}-{values[-1]:.2f})" if len(values) > 1 else ""
            return f"{statistics.median(values):.2f}x{spread}"

        if "ceiling" in rates[0]:
            for path in ("durable-v1", "durable-v2", "drain-v1"):
                if path in rates[0]:
                    print(f"{path} / ceiling = {ratio(path, 'ceiling')}  (target >= 0.6x"
                          + (", and >= 100,000 points/s)" if path == "durable-v1" else ")"))
        if "direct-v2" in rates[0] and "durable-v2" in rates[0]:
            print(f"durable-v2 / direct-v2 = {ratio('durable-v2', 'direct-v2')}  (target >= 0.8x)")
        print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; "
              f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
