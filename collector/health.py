"""The collector's own health, counted in memory and written as points like any other data.

Counters are cumulative since the process started (a restart resets them to zero; dashboards
use non_negative_difference). Gauges (backlog, quota left) are the value at write time.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

from collector.http_outcomes import Action
from collector.points import Point
from collector.measurement import Measurement, Tag, b, i, register, s

COLLECTOR = "collector"

HEALTH = Measurement(
    name="collector_health",
    description="The collector's own health: one series per source, plus `source=collector` "
                "for the store and the forwarder. Counters are cumulative since the process "
                "started.",
    time="when the health sample was taken (wall clock)",
    tags=(Tag("source", "source name (as in `[sources.<name>]`), `sessions` for the derived "
                        "charging sessions, `rollups` for the daily and monthly rollups, or "
                        "`collector` for the pipeline"),),
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
        i("errors_transient", "count", "connection errors, timeouts, 5xx (counter)"),
        i("errors_config", "count", "401/403 and other configuration problems (counter)"),
        i("errors_payload", "count", "responses or values that could not be used (counter)"),
        i("errors_rate_limited", "count", "429 answers and quota waits (counter)"),
        i("quota_remaining", "requests", "requests left in the provider's hourly quota (gauge)"),
        s("last_error", "the most recent error message, secret-free"),
        i("backlog", "points", "points in the local store not yet shipped (gauge; collector only)"),
        i("shipped", "points", "points shipped to InfluxDB (counter; collector only)"),
        i("ship_failures", "count", "write requests to InfluxDB that failed (counter; collector only)"),
        i("dead_letters", "points", "lines InfluxDB refused, kept with their reason (gauge; collector only)"),
        i("store_bytes", "bytes", "used size of the local store (gauge; collector only)"),
        i("store_discarded", "points", "unshipped points discarded by the store's size bound (gauge; collector only)"),
        i("store_errors", "count", "commits the local store refused, e.g. disk full (counter; collector only)"),
        i("held_points", "points", "points held in memory until the store accepts writes again "
          "(gauge; collector only)"),
        i("held_dropped", "points", "held points dropped over the in-memory bound while the "
          "store refused writes (counter; collector only)"),
        i("nonfinite_dropped", "values", "NaN/infinite values dropped before storing (counter; collector only)"),
        b("influx_ok", "whether the last write to InfluxDB succeeded (collector only)"),
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
    counters: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    gauges: dict[str, dict[str, int | bool]] = field(default_factory=lambda: defaultdict(dict))
    last_error: dict[str, str] = field(default_factory=dict)

    def count(self, source: str, name: str, amount: int = 1) -> None:
        self.counters[source][name] += amount

    def gauge(self, source: str, name: str, value: int | bool) -> None:
        self.gauges[source][name] = value

    def error(self, source: str, message: str) -> None:
        self.last_error[source] = message

    def get(self, source: str, name: str) -> int:
        return self.counters.get(source, {}).get(name, 0)

    def points(self, now_ns: int | None = None) -> list[Point]:
        now_ns = now_ns if now_ns is not None else time.time_ns()
        out = []
        for source in sorted(set(self.counters) | set(self.gauges) | set(self.last_error)):
            values: dict[str, object] = dict(self.counters.get(source, {}))
            values.update(self.gauges.get(source, {}))
            if source in self.last_error:
                values["last_error"] = self.last_error[source]
            point = HEALTH.point({"source": source}, values, now_ns)
            if point is not None:
                out.append(point)
        return out
