"""Rollup benchmark: a year panel over a year of 1 s go-e data, from the rollups and from raw.

Fills a local influxd (Debian 1.6) with a year of one go-eCharger polled every second (31.5M
points; `energy_total_wh`, `power_w` and `car_state` only: the fields the queries read, not
the ~50 a real status has), computes that year's `rollup_daily` and `rollup_monthly` points
with the collector's own rollup code (`collector.rollups.compute`, fed by a reader that
generates the same samples; like the store's, it hands out only the samples either side of
each midnight for a lifetime meter) and writes them too. Then it times, as Grafana would send them:

  year panel    the energy dashboard's "Charged per month" over the year (rollup_monthly)
  daily bars    "Charged per day" over the year (rollup_daily, 365 points)
  from raw      the same year per local day computed from the raw samples, as the dashboards
                did before the rollups: spread() of the meter GROUP BY time(1d) tz()

and prints the median of `--repeat` runs (target: the year panel under 1 s), the year's total
from both, and how long the collector's code took to compute the year's rollups. `--job` also
times one steady-state run of the rollup job on a local store holding three days of the same
1 s data (what every run costs such a collector).

Usage: python bench/rollups.py [--days 365] [--repeat 5] [--keep DIR] [--job]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collector.points import to_line  # noqa: E402
from collector.query.samples import Samples  # noqa: E402
from collector.rollups.compute import compute_days, compute_months  # noqa: E402
from collector.rollups.periods import days, months_of  # noqa: E402

NS = 10**9
DAY = 86400
T0 = int(datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp())   # first sample, UTC
SERIAL = "012345"
ZONE = "Europe/Berlin"
CHARGE_W, CHARGE_S = 11000.0, 3 * 3600
ETO0 = 1_000_000


# -- the charger: one 3-hour 11 kW charge a day, starting between 17:00 and 22:00 UTC, so some
# run past midnight (local and UTC); eto in closed form, so any window can be generated alone.

def _start(day: np.ndarray) -> np.ndarray:
    return day * DAY + (17 + day % 6) * 3600


def _charged(t: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Wh charged by day `day`'s session up to t (0 before it or for days before T0)."""
    done = np.clip(t - _start(day), 0, CHARGE_S) * (CHARGE_W / 3600.0)
    return np.where(day >= T0 // DAY, done, 0.0)


def samples(t: np.ndarray) -> dict[str, np.ndarray]:
    """The charger at seconds t (UTC): eto (Wh, integer as go-e sends it), power, car state."""
    day = t // DAY
    before = np.maximum(day - 1 - T0 // DAY, 0) * (CHARGE_W * CHARGE_S / 3600.0)
    eto = ETO0 + before + _charged(t, day - 1) + _charged(t, day)
    charging = ((t >= _start(day)) & (t < _start(day) + CHARGE_S)) | \
               ((t >= _start(day - 1)) & (t < _start(day - 1) + CHARGE_S))
    return {"energy_total_wh": np.floor(eto).astype(np.int64),
            "power_w": np.where(charging, CHARGE_W, 0.0), "car_state": np.where(charging, 2, 1)}


def reader(first_s: int, last_s: int):
    """A rollup reader over the generated year: samples in [start, end) plus the nearest
    sample either side, as `collector.query.samples.store_samples` gives them from the store."""

    def read(measurement: str, fields, start_ns: int, end_ns: int, at=None) -> list[Samples]:
        if measurement != "goe_status":
            return []
        if at is not None:                   # the nearest sample either side of each instant
            near = set()
            for instant in at:
                before, after = min(-(-instant // NS) - 1, last_s), max(-(-instant // NS), first_s)
                near |= {s for s in (before, after) if first_s <= s <= last_s}
            t = np.array(sorted(near), dtype=np.int64)
        else:
            lo = max(first_s, -(-start_ns // NS) - 1)
            hi = min(last_s, -(-end_ns // NS))
            t = np.arange(lo, hi + 1, dtype=np.int64)
        if len(t) == 0:
            return []
        values = samples(t)
        return [Samples({"serial": SERIAL}, t * NS, {f: values[f].tolist() for f in fields if f in values})]

    return read


# -- InfluxDB --------------------------------------------------------------------------------

def fill_raw(client, url: str, db: str, first_s: int, last_s: int) -> None:
    for day_start in range(first_s, last_s + 1, DAY):
        t = np.arange(day_start, min(day_start + DAY, last_s + 1), dtype=np.int64)
        v = samples(t)
        body = "\n".join(
            f"goe_status,serial={SERIAL} car_state={c}i,energy_total_wh={e}i,power_w={p} {s}000000000"
            for s, e, p, c in zip(t.tolist(), v["energy_total_wh"].tolist(), v["power_w"].tolist(),
                                  v["car_state"].tolist()))
        client.post(f"{url}/write", params={"db": db}, content=body).raise_for_status()


def query(client, url: str, db: str, text: str) -> tuple[float, list]:
    began = time.perf_counter()
    response = client.post(f"{url}/query", data={"q": text, "db": db, "epoch": "ns"})
    seconds = time.perf_counter() - began
    response.raise_for_status()
    result = response.json()["results"][0]
    if "error" in result:
        raise RuntimeError(f"{text}: {result['error']}")
    return seconds, result.get("series", [])


def timed(client, url: str, db: str, text: str, repeat: int) -> tuple[float, list]:
    query(client, url, db, text)                                      # warm the cache once
    runs = [query(client, url, db, text) for _ in range(repeat)]
    return statistics.median(s for s, _ in runs), runs[-1][1]


def dashboard_query(title: str, start_ms: int, end_ms: int) -> str:
    """The energy dashboard's panel as Grafana expands it for this range and charger."""
    import json

    dashboard = json.loads((ROOT / "dashboards" / "json" / "energy.json").read_text())
    [text] = [t["query"] for p in dashboard["panels"] if p.get("title") == title for t in p["targets"]]
    return (text.replace("$timeFilter", f"time >= {start_ms}ms and time <= {end_ms}ms")
            .replace("${rollup_charger:regex}", f"goe:{SERIAL}"))


def job_run(work: Path) -> tuple[float, int]:
    """One steady-state run of the rollup job over three days of 1 s data in a local store:
    the store already rolled up, then the last minute arrives."""
    from collector.points import Point
    from collector.rollups.config import RollupsSection
    from collector.rollups.job import RollupJob
    from collector.store import Store

    store = Store(work / "job.db", synchronous="normal")
    last = T0 + 3 * DAY
    for base in range(T0, last - 60, 50_000):
        t = np.arange(base, min(base + 50_000, last - 60), dtype=np.int64)
        v = samples(t)
        store.append([Point("goe_status", {"serial": SERIAL}, {k: v[k][i].item() for k in v}, int(s) * NS)
                      for i, s in enumerate(t.tolist())])
    job = RollupJob(RollupsSection(timezone=ZONE), store, None)
    job.run_now((last - 60) * NS)
    t = np.arange(last - 60, last, dtype=np.int64)
    v = samples(t)
    store.append([Point("goe_status", {"serial": SERIAL}, {k: v[k][i].item() for k in v}, int(s) * NS)
                  for i, s in enumerate(t.tolist())])
    began = time.perf_counter()
    points, _ = job.compute(last * NS)
    seconds = time.perf_counter() - began
    store.close()
    return seconds, len(points)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="work directory to keep and reuse (default: a temp dir)")
    parser.add_argument("--job", action="store_true", help="also time one run of the rollup job")
    args = parser.parse_args()
    import httpx

    from tests.servers import influx_server

    first_s, last_s = T0, T0 + args.days * DAY - 1
    zone = ZoneInfo(ZONE)
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-rollups-"))
    (work / "influxd").mkdir(parents=True, exist_ok=True)
    print(f"{last_s - first_s + 1:,} go-e samples at 1 s ({args.days} days), {ZONE} days, work dir {work}")

    began = time.perf_counter()
    wanted = days(first_s * NS, (last_s + 1) * NS, zone)
    read = reader(first_s, last_s)
    daily = [p for k in range(0, len(wanted), 7) for p in compute_days(read, wanted[k:k + 7])]
    monthly = compute_months(daily, months_of(wanted, zone))
    compute_s = time.perf_counter() - began
    print(f"rollups: {len(daily)} daily and {len(monthly)} monthly points computed by the collector's "
          f"code in {compute_s * 1000:.0f} ms")

    with influx_server(work / "influxd") as server, httpx.Client(timeout=600) as client:
        db = "bench"
        client.post(f"{server.url}/query", data={"q": f'CREATE DATABASE "{db}"'}).raise_for_status()
        _, counted = query(client, server.url, db, 'SELECT count("energy_total_wh") FROM "goe_status"')
        if counted and counted[0]["values"][0][1] == last_s - first_s + 1:
            print("influxdb already holds the raw data (--keep): not refilled")
        else:
            began = time.perf_counter()
            fill_raw(client, server.url, db, first_s, last_s)
            print(f"raw samples written in {time.perf_counter() - began:.0f} s")
        body = "\n".join(line for line in (to_line(p) for p in daily + monthly) if line)
        client.post(f"{server.url}/write", params={"db": db}, content=body).raise_for_status()

        start_ms, end_ms = wanted[0].start_ns // 10**6, wanted[-1].end_ns // 10**6
        year_s, year = timed(client, server.url, db, dashboard_query("Charged per month", start_ms, end_ms),
                             args.repeat)
        days_s, _ = timed(client, server.url, db,
                          f'SELECT "energy_wh" FROM "rollup_daily" WHERE time >= {start_ms}ms and '
                          f"time <= {end_ms}ms AND \"kind\" = 'charger' AND \"name\" =~ /^(goe:{SERIAL})$/ "
                          'GROUP BY "name"', args.repeat)
        raw_text = (f'SELECT spread("energy_total_wh") FROM "goe_status" WHERE time >= {start_ms}ms and '
                    f'time <= {end_ms}ms AND "serial" =~ /^({SERIAL})$/ GROUP BY time(1d), "serial" '
                    f"fill(none) tz('{ZONE}')")
        raw_s, raw = timed(client, server.url, db, raw_text, max(1, args.repeat // 2))

    from_rollups = sum(v[1] for s in year for v in s["values"])
    from_raw = sum(v[1] for s in raw for v in s["values"])
    end_value = samples(np.array([last_s]))["energy_total_wh"][0] - samples(np.array([first_s]))["energy_total_wh"][0]
    print(f"year panel (rollup_monthly, {len(monthly)} points):     {year_s * 1000:8.1f} ms  (median of {args.repeat})")
    print(f"daily bars (rollup_daily, {len(daily)} points):   {days_s * 1000:8.1f} ms")
    print(f"from raw (spread per local day, {last_s - first_s + 1:,} samples): {raw_s * 1000:8.1f} ms")
    print(f"year total: rollups {from_rollups / 1000:.3f} kWh, raw per-day spread {from_raw / 1000:.3f} kWh, "
          f"meter {end_value / 1000:.3f} kWh (spread loses what falls between two samples at midnight)")
    if args.job:
        seconds, count = job_run(work)
        print(f"rollup job, one steady-state run over 3 days of 1 s data in the store: {seconds:.2f} s "
              f"({count} points)")
    if args.keep is None:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
