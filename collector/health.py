"""The collector's own health, counted in memory and written as points like any other data.

Counters are cumulative since the process started (a restart resets them to zero; dashboards
use non_negative_difference). Gauges (backlog, quota left) are the value at write time.

Health is counted per *origin*: a source type (`goe`), one named instance of it (`evcc:home`,
see `origin`), `sessions` or `collector` (the pipeline). Every point carries the process's
identity too: the `collector` name and the `shard` index, so the shards of a fleet, and
collectors of different sites writing into one database, each keep series of their own.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from collector.http_outcomes import Action
from collector.measurement import Measurement, Tag, b, i, register, s
from collector.points import Point

COLLECTOR = "collector"


def origin(source: str, instance: str) -> str:
    """The key a source instance's health is counted under: the source type for its default
    instance (named like the type), else `<source>:<instance>`."""
    return source if instance == source else f"{source}:{instance}"


HEALTH = Measurement(
    name="collector_health",
    description="The collector's own health: one series per source instance, plus "
                "`source=collector` for the store and the forwarder, per collector process "
                "(`collector` and `shard`). Counters are cumulative since the process started.",
    time="when the health sample was taken (wall clock)",
    tags=(Tag("source", "source name (as in `[sources.<name>]`), `sessions` for the derived "
                        "charging sessions, `rollups` for the daily and monthly rollups, or "
                        "`collector` for the pipeline"),
          Tag("instance", "the source instance's `name` (`[[sources.evcc]] name = \"home\"`); "
                          "the source name itself for a single instance, `sessions`, `rollups` "
                          "and `collector`"),
          Tag("collector", "`[collector] name` (default `default`): shared by every shard of "
                           "one fleet, different for collectors of different sites writing "
                           "into one database"),
          Tag("shard", "the process's shard index, `0` to `shards - 1` (`0` for a single "
                       "process)")),
    fields=(
        i("polls", "count", "jobs run (counter)"),
        i("polls_failed", "count", "jobs that ended with an error (counter)"),
        i("polls_skipped", "count", "requests skipped because a provider limit said wait (counter)"),
        i("polls_late", "count", "scheduled runs that did not happen on time: the previous run "
          "was still going, or the process was too busy (counter)"),
        i("no_data", "count", "polls that found nothing fresh, e.g. go-e 404 or unchanged time (counter)"),
        i("data_outdated", "count", "go-e cloud answers 404 \"Data is outdated\": the charger has "
          "not reported within `age` (counter)"),
        i("points", "count", "points committed to the local store (counter)"),
        i("points_unchanged", "count", "points not stored because their fields equal their "
          "series' last stored point, within the source's `heartbeat` (counter)"),
        i("errors_transient", "count", "connection errors, timeouts, 5xx (counter)"),
        i("errors_config", "count", "401/403 and other configuration problems (counter)"),
        i("errors_payload", "count", "responses or values that could not be used (counter)"),
        i("errors_rate_limited", "count", "429 answers and quota waits (counter)"),
        i("quota_remaining", "requests", "requests left in the provider's hourly quota, shared by "
          "the instances of one OAuth client (gauge)"),
        s("last_error", "the most recent error message, secret-free"),
        i("backlog", "points", "points in the local store not yet shipped (gauge; collector only)"),
        i("shipped", "points", "points shipped to InfluxDB (counter; collector only)"),
        i("ship_failures", "count", "write requests to InfluxDB that failed (counter; collector only)"),
        i("dead_letters", "points", "lines InfluxDB refused, kept with their reason (gauge; collector only)"),
        i("store_bytes", "bytes", "used size of the local store (gauge; collector only)"),
        i("store_discarded", "points",
          "unshipped points discarded by the store's size bound (gauge; collector only)"),
        i("store_errors", "count",
          "commits the local store refused, e.g. disk full (counter; collector only)"),
        i("held_points", "points", "points held in memory until the store accepts writes again "
          "(gauge; collector only)"),
        i("held_dropped", "points", "held points dropped over the in-memory bound while the "
          "store refused writes (counter; collector only)"),
        i("nonfinite_dropped", "values",
          "NaN/infinite values dropped before storing (counter; collector only)"),
        b("influx_ok", "whether the last write to InfluxDB succeeded (collector only)"),
        i("shards", "processes", "`[collector] shards`: how many processes the fleet is split "
          "into, to compare with the shards that report (gauge; collector only)"),
    ),
)
register(HEALTH)

# The health counter each failed outcome counts towards (NO_DATA is no failure: `no_data`).
ERROR_COUNTERS: dict[Action, str] = {
    Action.RETRY: "errors_transient",
    Action.WAIT: "errors_rate_limited",
    Action.CONFIG: "errors_config",
    Action.DROP: "errors_payload",
}


@dataclass
class Health:
    collector: str = "default"      # `[collector] name`
    shard: int = 0
    counters: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    gauges: dict[str, dict[str, int | bool]] = field(default_factory=lambda: defaultdict(dict))
    last_error: dict[str, str] = field(default_factory=dict)
    readers: dict[str, dict[str, Callable[[], int]]] = field(default_factory=lambda: defaultdict(dict))

    def count(self, origin: str, name: str, amount: int = 1) -> None:
        self.counters[origin][name] += amount

    def gauge(self, origin: str, name: str, value: int | bool) -> None:
        self.gauges[origin][name] = value

    def watch(self, origin: str, name: str, read: Callable[[], int]) -> None:
        """A gauge read when health is written (a quota's requests left)."""
        self.readers[origin][name] = read

    def error(self, origin: str, message: str) -> None:
        self.last_error[origin] = message

    def get(self, origin: str, name: str) -> int:
        """A counter of one origin (`evcc:home`), or of a source type over all its instances
        (`evcc`)."""
        if ":" in origin:
            return self.counters.get(origin, {}).get(name, 0)
        return sum(values.get(name, 0) for key, values in self.counters.items()
                   if key == origin or key.startswith(origin + ":"))

    def points(self, now_ns: int | None = None) -> list[Point]:
        now_ns = now_ns if now_ns is not None else time.time_ns()
        out = []
        keys = set(self.counters) | set(self.gauges) | set(self.last_error) | set(self.readers)
        for key in sorted(keys):
            values: dict[str, object] = dict(self.counters.get(key, {}))
            values.update(self.gauges.get(key, {}))
            values.update({name: read() for name, read in self.readers.get(key, {}).items()})
            if key in self.last_error:
                values["last_error"] = self.last_error[key]
            source, _, instance = key.partition(":")
            tags = {"source": source, "instance": instance or source,
                    "collector": self.collector, "shard": str(self.shard)}
            point = HEALTH.point(tags, values, now_ns)
            if point is not None:
                out.append(point)
        return out
