"""The root of ev-collector's own exceptions.

Every failure the project names derives from `CollectorError`, so a caller can tell "a
failure we know and word for people" from a bug with one `except`. The kinds:

- `ConfigError`      the configuration is wrong (collector.config)
- `SourceError`      a poll did not produce data, with an `Action` (collector.http_outcomes)
- `WriteError`       InfluxDB did not take a write, with an `Action` (collector.influx)
- `StoreError`       the local store cannot be written (collector.store)
- `QueryError`       stored data cannot answer a request (collector.query)
- `CoercionError`    a value does not fit its declared type (collector.measurement)
- `NonFiniteField`   NaN or infinity, which InfluxDB cannot hold (collector.points)
- `Stopping`         the collector is stopping; a waiting poll sends nothing (collector.limits)

Those that were `ValueError`s or `RuntimeError`s stay so as well, so code that catches the
standard kinds (pydantic validators catch `ValueError`) sees them as before.
"""


class CollectorError(Exception):
    """A failure ev-collector names; its message is safe to log (no secret)."""
