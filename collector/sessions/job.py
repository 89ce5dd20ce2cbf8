"""The collector's periodic job: derive finished sessions from the local store.

Why the local store and not InfluxDB: every point passes through the store first, with or
without InfluxDB, and stays there for `store.retention` (7 days by default) after shipping, far
longer than the `lookback` a run needs. So derivation needs no query credentials, works when
InfluxDB is down, and behaves the same in both set-ups. Sessions ship to InfluxDB like any point.

Each run re-derives `[cursor - lookback, now]` in windows; sessions whose start or end lies
outside the data a window sees are left to the window that sees all of them. Re-deriving a
session writes the same point (same charger tag and start), which overwrites.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from zoneinfo import ZoneInfo

from collector.charges import ChargeExtractor, Interval
from collector.points import Point
from collector.sessions.config import SessionsSection
from collector.sessions.derive import Identities, derive_sessions
from collector.sessions.pricing import FixedTariff, Tariff, TouTariff
from collector.sources import by_preference, load_all_sources
from collector.store import Store, StoredPoint

log = logging.getLogger(__name__)

CURSOR = "sessions:derived_until"
WINDOW_NS = 7 * 86400 * 10**9

Reader = Callable[[str, int, int], Iterable[StoredPoint]]


def extractors() -> list[ChargeExtractor]:
    """Every registered source's charge extractor, the preferred source first."""
    return [source.sessions for source in by_preference() if source.sessions is not None]


def store_reader(store: Store) -> Reader:
    # The fields extractors read, extracted by SQLite instead of decoding each point's JSON:
    # a run over two days of 10 s go-e data stays cheap. Booleans come back as 0/1.
    needed = {m: wanted for extractor in extractors() for m, wanted in extractor.fields.items()}

    def read(measurement: str, start_ns: int, end_ns: int) -> Iterator[StoredPoint]:
        if measurement not in needed:
            for chunk in store.query(measurement, start_ns, end_ns):
                yield from chunk
            return
        names, booleans = needed[measurement]
        for tags, rows in store.query_rows(measurement, names, start_ns, end_ns):
            for sid, time_ns, *values in rows:
                fields = {n: (bool(v) if n in booleans else v)
                          for n, v in zip(names, values, strict=True) if v is not None}
                yield StoredPoint(measurement, tags[sid], time_ns, fields)
    return read


def identities(cfg: SessionsSection) -> Identities:
    return Identities(
        chargers={name: c.identities() for name, c in cfg.chargers.items()},
        charger_vehicles={name: list(c.vehicles) for name, c in cfg.chargers.items()},
        vehicles={name: v.identities() for name, v in cfg.vehicles.items()},
        ignore=frozenset(cfg.ignore))


def build_tariff(cfg: SessionsSection, read: Reader, start_ns: int, end_ns: int) -> Tariff | None:
    if cfg.tariff in ("fixed", "flat") and cfg.price is not None:
        return FixedTariff(cfg.price, name=cfg.tariff)
    if cfg.tariff == "tou":
        return TouTariff(tuple(e.rule() for e in cfg.tou), ZoneInfo(cfg.timezone), cfg.price)
    source = load_all_sources().get(cfg.tariff)
    if source is not None and source.tariff is not None:
        return source.tariff(read, start_ns, end_ns, cfg.tariff_instance, cfg.price)
    return None


def intervals(read: Reader, start_ns: int, end_ns: int) -> tuple[list[Interval], list[Interval]]:
    """Every source's charges in [start_ns, end_ns): (wallbox side, vehicle side)."""
    wallbox: list[Interval] = []
    vehicle: list[Interval] = []
    for extractor in extractors():
        seen_wallbox, seen_vehicle = extractor.intervals(read, start_ns, end_ns)
        wallbox += seen_wallbox
        vehicle += seen_vehicle
    return wallbox, vehicle


def derive_range(cfg: SessionsSection, read: Reader, start_ns: int, now_ns: int) -> list[Point]:
    """Sessions in [start_ns, now_ns], in overlapping windows so memory stays bounded."""
    ids = identities(cfg)
    gap_ns, lookback_ns = int(cfg.gap * 1e9), int(cfg.lookback * 1e9)
    found: dict[tuple, Point] = {}
    window_start = start_ns
    while True:
        window_end = min(window_start + WINDOW_NS + lookback_ns, now_ns + 1)
        wallbox, vehicle = intervals(read, window_start, window_end)
        tariff = build_tariff(cfg, read, window_start, window_end)
        # a window that is not the last treats its end as "now": only sessions it saw finish
        until = now_ns if window_end > now_ns else window_end - 1
        for point in derive_sessions(wallbox, vehicle, ids, gap_ns, until, tariff, cfg.currency):
            found[point.key()] = point
        if window_end > now_ns:
            break
        window_start += WINDOW_NS
    return sorted(found.values(), key=lambda p: p.time_ns)


def earliest(store: Store) -> int | None:
    times = [store.first_time(m) for extractor in extractors() for m in extractor.measurements]
    known = [t for t in times if t is not None]
    return min(known) if known else None


class SessionDeriver:
    """Derives sessions that have ended, writes them with the cursor in one commit."""

    def __init__(self, cfg: SessionsSection, store: Store, writer) -> None:
        self.cfg = cfg
        self.store = store
        self.writer = writer

    def derive(self, now_ns: int) -> tuple[list[Point], int | None]:
        cursor = self.store.cursor(CURSOR)
        if cursor is not None:
            start = int(cursor) - int(self.cfg.lookback * 1e9)
        else:
            first = earliest(self.store)
            if first is None:
                return [], None
            start = first
        return derive_range(self.cfg, store_reader(self.store), start, now_ns), now_ns

    async def run(self, now_ns: int | None = None) -> None:
        points, until = await asyncio.to_thread(self.derive, now_ns or time.time_ns())
        if until is None:
            return
        written = await self.writer.write(points, {CURSOR: str(until)}, source="sessions")
        if written:
            log.info("sessions: %d charging sessions new or updated", written)
