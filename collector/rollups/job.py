"""The collector's rollup job: recompute the local days that got new data, and their months.

Like the sessions job it reads the local store, not InfluxDB: every point passes through the
store, with or without InfluxDB, so the job needs no query credentials and works while
InfluxDB is down; its points ship like any other. The store's row ids grow with every new row,
so each run asks which rows arrived since the last one and recomputes from the local day
before the earliest of them (a sample just after midnight moves the interpolation that ends
the day before) up to today. Late data (OVMS history, a backfill) therefore recomputes its
days; points of a recomputed day overwrite the earlier ones (same tags, same time). Months
are summed from the daily points in the store, which housekeeping keeps (`app.py`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import typing
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson

from collector.points import Point
from collector.query.samples import SampleReader, store_samples
from collector.rollups.compute import Names, compute_days, compute_months
from collector.rollups.config import RollupsSection
from collector.rollups.model import ROLLUP_DAILY
from collector.rollups.periods import Period, day, days, local_date, months_of
from collector.rollups.specs import all_specs, measurements
from collector.specs import Events
from collector.store import Store

log = logging.getLogger(__name__)

MARK = "rollups:mark"              # the newest store row id the last run had seen
ZONE = "rollups:timezone"          # the zone the stored rollups were computed in
EVENT_DAYS = "rollups:events"      # per local day of the last week, a digest of its events
WINDOW_DAYS = 7                    # days computed per read, so memory stays bounded
DAY_NS = 86400 * 10**9
EVENT_LOOKBACK_NS = 7 * DAY_NS     # how long after its day an event may still be rewritten
# a day is recomputed only if it starts this long after the store's pruning horizon:
# interpolating at its midnight needs the sample before it, which pruning must not have taken
HORIZON_MARGIN_NS = 6 * 3600 * 10**9


def inputs() -> frozenset[str]:
    """What the rollups are computed from: new rows of other measurements (health) change nothing."""
    return frozenset(m for spec in all_specs() for m in measurements(spec))


def events() -> frozenset[str]:
    """One point per session or trip: a source or the sessions job may rewrite it in place."""
    return frozenset(spec.measurement for spec in all_specs() if isinstance(spec, Events))


def names_from(sessions: object | None) -> Names:
    """The charger and vehicle names of `[sessions]`, so rollups and sessions agree."""
    if sessions is None:
        return Names()
    from collector.sessions.job import identities

    return Names(identities(sessions))  # type: ignore[arg-type]


def event_days(store: Store, zone: ZoneInfo, since_ns: int) -> dict[str, str]:
    """Local day -> digest of the event points (sessions, trips) of that day.

    A session the sessions job derives again with the vehicle's late data, or an evcc session
    evcc corrected, is rewritten in place: same row, so `changed_since` does not see it. Its
    day's digest changes instead. Events are few (a handful a day), so this is cheap.
    """
    digests: dict[str, typing.Any] = {}
    for measurement in sorted(events()):
        for chunk in store.query(measurement, since_ns):
            for p in chunk:
                digest = digests.setdefault(local_date(p.time_ns, zone).isoformat(),
                                            hashlib.blake2b(digest_size=8))
                digest.update(orjson.dumps([measurement, p.tags, p.time_ns, p.fields],
                                           option=orjson.OPT_SORT_KEYS))
    return {label: digest.hexdigest() for label, digest in digests.items()}


def _stored_daily(store: Store, months: Sequence[Period]) -> list[Point]:
    out = []
    for month in months:
        for chunk in store.query(ROLLUP_DAILY.name, month.start_ns, month.end_ns):
            out += [ROLLUP_DAILY.point(p.tags, p.fields, p.time_ns) for p in chunk]
    return [p for p in out if p is not None]


def recompute(store: Store, zone: ZoneInfo, names: Names, first_ns: int, now_ns: int,
              read: SampleReader | None = None, floor_ns: int | None = None) -> list[Point]:
    """Daily points for every local day from the one before `first_ns` to today (none that
    starts before `floor_ns`), and the monthly points of their months."""
    read = read or store_samples(store)
    start = day(local_date(min(first_ns, now_ns), zone) - timedelta(days=1), zone).start_ns
    wanted = [d for d in days(start, now_ns + 1, zone) if floor_ns is None or d.start_ns >= floor_ns]
    if not wanted:
        return []
    daily: list[Point] = []
    for k in range(0, len(wanted), WINDOW_DAYS):
        daily += compute_days(read, wanted[k:k + WINDOW_DAYS], names)
    months = months_of(wanted, zone)
    merged = {p.key(): p for p in _stored_daily(store, months)}
    merged.update((p.key(), p) for p in daily)       # this run's values replace the stored ones
    return daily + compute_months(merged.values(), months)


class RollupJob:
    """Runs `recompute` for what arrived since the last run; points and mark in one commit.

    Days that begin before the store's pruning horizon (`Store.pruned_before`, plus a margin)
    are never recomputed: with part of their samples gone they would come out too small.
    """

    def __init__(self, cfg: RollupsSection, store: Store, writer, names: Names | None = None) -> None:
        self.zone_name = cfg.zone_name()
        self.zone = ZoneInfo(self.zone_name)
        self.store = store
        self.writer = writer
        self.names = names or Names()

    def compute(self, now_ns: int) -> tuple[list[Point], dict[str, str]]:
        mark = int(self.store.cursor(MARK) or 0)
        previous = self.store.cursor(ZONE)
        if previous is not None and previous != self.zone_name:
            log.warning("rollups: the time zone changed from %s to %s; recomputing every day the "
                        "local store holds at the new midnights. Points written at %s's midnights "
                        "stay in InfluxDB: delete rollup_daily and rollup_monthly there before that "
                        "range if sums over it count days twice", previous, self.zone_name, previous)
            mark = 0
        pruned = self.store.pruned_before()
        floor = pruned + HORIZON_MARGIN_NS if pruned is not None else None
        first, newest = self.store.changed_since(mark, inputs())
        # whole local days only, so a day's digest does not change as the window moves on
        oldest = local_date(now_ns - EVENT_LOOKBACK_NS, self.zone)
        if floor is not None:
            oldest = max(oldest, local_date(floor, self.zone) + timedelta(days=1))
        events = event_days(self.store, self.zone, day(oldest, self.zone).start_ns)
        known = json.loads(self.store.cursor(EVENT_DAYS) or "{}") if mark else {}
        rewritten = sorted(label for label in events.keys() | known.keys()
                           if label >= oldest.isoformat() and events.get(label) != known.get(label))
        if rewritten:
            at = day(date.fromisoformat(rewritten[0]), self.zone).start_ns
            first = at if first is None else min(first, at)
        cursors = {MARK: str(newest), ZONE: self.zone_name, EVENT_DAYS: json.dumps(events, sort_keys=True)}
        if first is not None and floor is not None and first < floor:
            log.info("rollups: data from before %s arrived; the local store no longer holds every "
                     "sample of those days (store.retention), so their rollups stay as they are",
                     datetime.fromtimestamp(floor / 1e9, self.zone).isoformat(timespec="minutes"))
        if first is None or first > now_ns:
            return [], cursors
        return recompute(self.store, self.zone, self.names, first, now_ns, floor_ns=floor), cursors

    def run_now(self, now_ns: int | None = None) -> int:
        """Compute and commit at once, without the writer (the demo's history, before the
        collector starts); returns the number of points."""
        points, cursors = self.compute(now_ns or time.time_ns())
        self.store.append(points, cursors)
        return len(points)

    async def run(self, now_ns: int | None = None) -> None:
        began = time.monotonic()
        points, cursors = await asyncio.to_thread(self.compute, now_ns or time.time_ns())
        written = await self.writer.write(points, cursors, source="rollups")
        if written:
            log.info("rollups: %d daily and monthly points new or updated (%.1f s)", written,
                     time.monotonic() - began)
