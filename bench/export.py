"""Export benchmark: one year of 10 s go-e data (3.15M points) as a daily CSV; a year of the
demo's world through `report` and `statement`.

Builds the year once per target (not timed), then runs the command in a fresh subprocess per
target and prints its wall time and peak RSS:
  store   export daily from the embedded store, filled with Store.append; target < 20 s, < 500 MB
  influx  export daily from a local influxd (Debian 1.6), filled with line protocol to /write
  demo    a year of the demo's history (go-e at 10 s, evcc at 30 s, ev.energy, OVMS) with its
          sessions derived as the collector's job does (timed too), then `report` over the
          whole year with --html and `statement` for its last full month; target < 30 s each
Usage: python bench/export.py [--days 365] [--only store|influx|demo] [--keep DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STEP_NS = 10 * 10**9
T0 = 1_767_222_000 * 10**9          # 2026-01-01 00:00 Europe/Berlin
CHUNK = 100_000


def charger_fields(k: int) -> dict:
    """A go-e day: idle, a car charges 11 kW for 3 h from 18:00 local, complete, leaves at 23:00."""
    second = (k * 10) % 86400
    day = k * 10 // 86400
    charging = 18 * 3600 <= second < 21 * 3600
    connected = 18 * 3600 <= second < 23 * 3600
    wh_today = min(max(second - 18 * 3600, 0), 3 * 3600) * 11000 / 3600 if connected else 33000.0
    eto = 1_000_000 + day * 33000 + (wh_today if connected else (33000.0 if second >= 23 * 3600 else 0.0))
    power = 11000.0 if charging else 0.0
    return {"car_state": 2 if charging else (4 if connected else 1), "power_w": power,
            "voltage_l1_v": 231.2, "voltage_l2_v": 230.8, "voltage_l3_v": 232.1,
            "current_l1_a": power / 3 / 230, "current_l2_a": power / 3 / 230, "current_l3_a": power / 3 / 230,
            "energy_total_wh": int(eto), "energy_session_wh": wh_today,
            "energy_solar_wh": wh_today * 0.3, "energy_grid_wh": wh_today * 0.7, "energy_battery_wh": 0.0,
            "temperature_1_c": 21.5, "requested_current_a": 16, "charging_allowed": connected}


def fill_store(path: Path, n: int) -> None:
    from collector.points import Point
    from collector.store import Store

    store = Store(path, synchronous="normal")
    tags = {"serial": "012345"}
    for base in range(0, n, CHUNK):
        store.append([Point("goe_status", tags, charger_fields(k), T0 + k * STEP_NS)
                      for k in range(base, min(base + CHUNK, n))])
    store.close()


def fill_influx(url: str, db: str, n: int) -> None:
    import httpx

    from collector.points import Point, to_line

    httpx.post(f"{url}/query", data={"q": f'CREATE DATABASE "{db}"'}, timeout=30).raise_for_status()
    counted = httpx.post(f"{url}/query", data={"q": 'SELECT count("power_w") FROM goe_status', "db": db},
                         timeout=120).json()["results"][0].get("series")
    if counted and counted[0]["values"][0][1] == n:
        print("influxdb already holds the year (--keep): not refilled")
        return
    with httpx.Client(timeout=120) as client:
        for base in range(0, n, CHUNK // 2):
            body = "\n".join(to_line(Point("goe_status", {"serial": "012345"}, charger_fields(k),
                                           T0 + k * STEP_NS)) for k in range(base, min(base + CHUNK // 2, n)))
            client.post(f"{url}/write", params={"db": db, "precision": "ns"}, content=body).raise_for_status()


# VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork and exec, so a child would report
# this (large, after filling) process's peak instead of its own.
_CHILD = ("import sys\nfrom collector.cli import main\nrc = main(sys.argv[1:])\n"
          "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
          "print('peak_rss_kb', hwm, file=sys.stderr)\nsys.exit(rc)")


def run_cli(args: list[str]) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of one ev-collector command in its own process."""
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD, *args], cwd=ROOT, check=True,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - t
    peak_kb = int(proc.stderr.split("peak_rss_kb")[-1].split()[0])
    return seconds, peak_kb / 1024


def run_export(args: list[str], out: Path) -> tuple[float, float]:
    return run_cli(["export", "daily", "--from", "2026-01-01", "--to", "2027-01-01", "--tz", "Europe/Berlin",
                    "--quiet", "--out", str(out), *args])


def demo_year(work: Path, days: int) -> None:
    """A year of the demo's world, its sessions derived, and the demo's config beside it."""
    from datetime import datetime, timedelta, timezone

    from collector.config import load_config
    from collector.demo import demo_config
    from collector.sources import demo_hooks
    from collector.history import generate_history
    from collector.sim.world import build_simulators
    from collector.sessions.job import SessionDeriver
    from collector.store import Store

    db, config = work / "demo-year.db", work / "demo-year.toml"
    unused = "http://127.0.0.1:9"
    text = demo_config(dict.fromkeys(demo_hooks(), unused), build_simulators())
    config.write_text(text.replace('path = "ev-collector.db"', f'path = "{db}"'))
    if db.exists():
        print(f"demo year: {db} exists (--keep): not rebuilt")
        return
    end = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    store = Store(db, synchronous="normal")
    t = time.perf_counter()
    counts = generate_history(store, end - timedelta(days=days), end, progress=sys.stderr.isatty())
    print(f"demo year: {sum(counts.values()):,} points in {time.perf_counter() - t:.0f} s "
          f"(go-e {counts['goe_status']:,})")
    t = time.perf_counter()
    sessions, _ = SessionDeriver(load_config(config).sessions, store, None).derive(int(end.timestamp()) * 10**9)
    store.append(sessions)
    print(f"demo year: {len(sessions)} sessions derived in {time.perf_counter() - t:.1f} s "
          "(the sessions job's first run over the whole store)")
    store.close()


def bench_demo(work: Path, days: int) -> dict[str, tuple[float, float]]:
    from datetime import datetime, timedelta, timezone

    demo_year(work, days)
    config = str(work / "demo-year.toml")
    end = datetime.now(timezone.utc)
    start = end - timedelta(days=days)
    report = run_cli(["report", "--config", config, "--from", start.strftime("%Y-%m-%d"),
                      "--to", (end + timedelta(days=1)).strftime("%Y-%m-%d"), "--html", str(work / "report.html")])
    print(f"report over {days} days (+ --html): {report[0]:.1f} s, peak RSS {report[1]:.0f} MB")
    month = (end.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    statement = run_cli(["statement", "--month", month, "--config", config, "--out", str(work / "statements")])
    print(f"statement {month} (CSV, HTML, PDF): {statement[0]:.1f} s, peak RSS {statement[1]:.0f} MB")
    return {"report": report, "statement": statement}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--only", choices=["store", "influx", "demo"])
    parser.add_argument("--keep", type=Path, help="work directory to keep (default: a temp dir)")
    args = parser.parse_args()
    n = args.days * 8640
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-export-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"{n:,} points ({args.days} days of 10 s go-e status), work dir {work}")
    results = {}
    if args.only == "demo":
        bench_demo(work, args.days)
        return 0
    if args.only in (None, "store"):
        db = work / "store.db"
        if not db.exists():
            t = time.perf_counter()
            fill_store(db, n)
            print(f"store filled in {time.perf_counter() - t:.1f} s ({db.stat().st_size / 1e6:.0f} MB)")
        results["store"] = run_export(["--store", str(db)], work / "daily-store.csv")
        print(f"store:  {results['store'][0]:.1f} s, peak RSS {results['store'][1]:.0f} MB")
    if args.only in (None, "influx"):
        from tests.servers import influx_server

        (work / "influxd").mkdir(exist_ok=True)
        with influx_server(work / "influxd") as server:
            t = time.perf_counter()
            fill_influx(server.url, "bench", n)
            print(f"influxdb filled in {time.perf_counter() - t:.1f} s")
            config = work / "influx.toml"
            config.write_text(f'[store]\npath = "{work / "unused.db"}"\n[influxdb]\napi = "v1"\n'
                              f'url = "{server.url}"\ndatabase = "bench"\n')
            results["influx"] = run_export(["--config", str(config)], work / "daily-influx.csv")
            print(f"influx: {results['influx'][0]:.1f} s, peak RSS {results['influx'][1]:.0f} MB")
    if len(results) == 2:
        same = (work / "daily-store.csv").read_bytes() == (work / "daily-influx.csv").read_bytes()
        print(f"same CSV from both: {same}")
    if args.only is None:
        bench_demo(work, args.days)
    return 0


if __name__ == "__main__":
    sys.exit(main())
