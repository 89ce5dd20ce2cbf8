"""History generator benchmark: N days of every source into a fresh store, timed.

Target: 30 days (one go-e charger at 10 s plus evcc, ev.energy and OVMS) in under 60 s.
Prints the wall time, points per measurement (per day for the evcc statistics, written on
change: target <= 500), points/s, and the store's size per point (target <= 150 bytes).
Usage: python bench/history.py [--days 30] [--seed 1] [--store PATH] [--no-progress]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collector.history import generate_history  # noqa: E402
from collector.store import Store  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--store", help="store path (default: a temporary file)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    end = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=args.days)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(args.store or Path(tmp) / "bench.db")
        began = time.perf_counter()
        counts = generate_history(store, start, end, seed=args.seed, progress=not args.no_progress)
        elapsed = time.perf_counter() - began
        size = store.used_bytes()
        store.close()
    total = sum(counts.values())
    for name, count in counts.items():
        print(f"  {name:<20} {count:>10,}")
    print(f"evcc_statistics: {counts.get('evcc_statistics', 0) / args.days:,.0f} points per day "
          "(written on change; target <= 500)")
    print(f"history: {args.days:g} days, {total:,} points in {elapsed:.1f} s "
          f"({total / elapsed:,.0f} points/s), store {size / 1e6:.1f} MB = {size / total:.0f} "
          f"bytes per point (target <= 150), peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
          f"{'  (over the 60 s target)' if elapsed >= 60 and args.days == 30 else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
