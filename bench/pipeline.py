"""Pipeline benchmark: points/s from `store.append` to rows in a real InfluxDB.

Runs, each in a fresh subprocess (so peak RSS is per path):
  durable-v2  Store.append (group commits of 1,000) while the Forwarder ships via V2Target
              (influxdb-client) -> rows in InfluxDB
  durable-v1  the same, shipped with our v1 client
  direct-v2   influxdb-client writing the same points as `Point` objects, no store
  ceiling     pre-serialized lines POSTed to InfluxDB: the server's own ingest limit here
  store-only  append + read as line protocol + mark shipped, no InfluxDB: our cost per point
The InfluxDB here is 1.6 (Debian), which has no /api/v2/write; a small shim process translates
/api/v2/write to /write for both v2 paths alike. Usage: python bench/pipeline.py [--points N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

T0 = 1_700_000_000_000_000_000
SERIES = 20


def make_points(n: int):
    from collector.points import Point

    for k in range(n):
        yield Point("bench_charger", {"charger": f"{k % SERIES:06d}"}, {
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

def path_durable(n: int, api: str, url: str, db: str, workdir: str) -> dict:
    from collector.config_types import InfluxV1, InfluxV2, Secret
    from collector.health import Health
    from collector.influx import Forwarder, V1Target, V2Target
    from collector.store import Store

    store = Store(Path(workdir) / f"bench-{api}.db")
    if api == "v1":
        target = V1Target(InfluxV1(api="v1", url=url, database=db, batch_size=5000))
    else:
        target = V2Target(InfluxV2(api="v2", url=url, org="bench", bucket=db,
                                   token=Secret("bench", "bench")))
    forwarder = Forwarder(store, target, Health(), batch_size=5000, idle_wait=0.005)
    producer_done = threading.Event()
    append_seconds = [0.0]

    def produce() -> None:
        started = time.perf_counter()
        chunk = []
        for point in make_points(n):
            chunk.append(point)
            if len(chunk) == 1000:
                store.append(chunk)
                chunk = []
        if chunk:
            store.append(chunk)
        append_seconds[0] = time.perf_counter() - started
        producer_done.set()

    async def ship() -> None:
        while True:
            shipped = await forwarder.ship_once()
            if shipped == 0:
                if producer_done.is_set() and store.pending_count() == 0:
                    return
                await asyncio.sleep(0.005)

    started = time.perf_counter()
    producer = threading.Thread(target=produce)
    producer.start()
    asyncio.run(ship())
    producer.join()
    total = time.perf_counter() - started
    target.close()
    store.close()
    return {"seconds": total, "append_seconds": append_seconds[0]}


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
    """InfluxDB's own ingest limit here: pre-serialized lines POSTed, no Python work per point."""
    import gzip

    import httpx

    from collector.points import to_line

    bodies = []
    lines = [to_line(p) for p in make_points(n)]
    for k in range(0, n, 5000):
        bodies.append(gzip.compress("\n".join(lines[k:k + 5000]).encode(), 1))
    del lines
    with httpx.Client(timeout=120) as client:
        started = time.perf_counter()
        for body in bodies:
            r = client.post(f"{url}/write", params={"db": db, "precision": "ns"}, content=body,
                            headers={"Content-Encoding": "gzip"})
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
    if args.path == "direct-v2":
        result = path_direct(args.points, args.url, args.db)
    elif args.path == "ceiling":
        result = path_ceiling(args.points, args.url, args.db)
    elif args.path == "store-only":
        result = path_store_only(args.points, args.workdir)
    else:
        result = path_durable(args.points, args.path.split("-")[1], args.url, args.db, args.workdir)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


# -- orchestration --------------------------------------------------------------------------

def count_rows(influx_url: str, db: str) -> int:
    import httpx

    r = httpx.get(f"{influx_url}/query", params={"db": db, "q": "SELECT count(power_w) FROM bench_charger"},
                  timeout=120)
    series = r.json()["results"][0].get("series")
    return series[0]["values"][0][1] if series else 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=1_000_000)
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
        results = {}
        try:
            for path in ("store-only", "ceiling", "direct-v2", "durable-v2", "durable-v1"):
                db = path.replace("-", "_")
                influx.create_database(db)
                url = influx.url if path in ("durable-v1", "ceiling") else shim_url
                out = subprocess.run(
                    [sys.executable, __file__, "--child", "--path", path, "--points", str(args.points),
                     "--url", url, "--db", db, "--workdir", tmp],
                    capture_output=True, text=True, check=True)
                result = json.loads(out.stdout.strip().splitlines()[-1])
                result["rows"] = count_rows(influx.url, db) if path != "store-only" else 0
                results[path] = result
                print(f"{path:<11} {args.points / result['seconds']:>10,.0f} points/s  "
                      f"{result['seconds']:6.1f} s  rows in InfluxDB {result['rows']:>9,}  "
                      f"peak RSS {result['peak_rss_mb']:.0f} MB"
                      + (f"  (append alone {args.points / result['append_seconds']:,.0f} points/s)"
                         if "append_seconds" in result else ""), flush=True)
        finally:
            shim.terminate()
            shim.join(5)
        direct = args.points / results["direct-v2"]["seconds"]
        durable = args.points / results["durable-v2"]["seconds"]
        print(f"durable-v2 / direct-v2 = {durable / direct:.2f}x  (target >= 0.8x); "
              f"machine: {os.cpu_count()} cores, {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
