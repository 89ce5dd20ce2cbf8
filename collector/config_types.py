"""The building blocks every configuration section is made of, and the collector's own sections.

Imported by everyone (sources, sessions, rollups, the forwarder); imports nothing of the
collector. The root model that gathers the sections from the source registry is `config.py`.
Secrets are never required inline: `token = { env = "NAME" }` or `token = { file = "/run/secrets/x" }`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator


class Model(BaseModel):
    """Base for every config section: frozen, and an unknown key is an error, not a surprise."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*$")
_UNIT_SECONDS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string like "500ms", "10s", "5m", "1h", "7d"."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 10, \"10s\", \"5m\", \"1h\" or \"7d\"")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    raise ValueError(f"expected a duration such as 10, \"10s\", \"5m\", \"1h\" or \"7d\", got {value!r}")


Duration = Annotated[float, BeforeValidator(parse_duration)]

# Write on change: a sample stamped with the poll time whose fields equal its series' last
# stored point is stored again only this long after it (per source: `heartbeat`; 0 stores
# every sample). Dashboards bridge the gaps with last() / fill(previous).
DEFAULT_HEARTBEAT = 15 * 60.0


class Secret:
    """A resolved secret whose text never reaches a repr, a log line or an error message."""

    __slots__ = ("_value", "origin")

    def __init__(self, value: str, origin: str) -> None:
        self._value = value
        self.origin = origin

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret(from {self.origin})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _resolve_secret(value: Any) -> Secret:
    if isinstance(value, Secret):
        return value
    if isinstance(value, str):
        if not value:
            raise ValueError("is empty")
        return Secret(value, "inline value")
    if isinstance(value, dict) and len(value) == 1:
        (kind, ref), = value.items()
        if kind == "env" and isinstance(ref, str):
            text = os.environ.get(ref)
            if not text:
                raise ValueError(f"environment variable {ref} is not set or empty")
            return Secret(text, f"env {ref}")
        if kind == "file" and isinstance(ref, str):
            try:
                text = Path(ref).expanduser().read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(f"cannot read secret file {ref}: {exc.strerror}") from None
            if not text:
                raise ValueError(f"secret file {ref} is empty")
            return Secret(text, f"file {ref}")
    raise ValueError('expected { env = "NAME" }, { file = "PATH" } or a string')


SecretValue = Annotated[Secret, BeforeValidator(_resolve_secret)]


class CollectorSection(Model):
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    health_interval: Duration = Field(default=60.0, ge=1.0)
    # Share of each interval over which a fleet's polls are spread, so that it does not poll in
    # lock-step: each device runs at a fixed offset into its interval, derived from its id
    # (0: every device at the start of each interval). Not random: a grid cannot drift.
    jitter: float = Field(default=1.0, ge=0.0, le=1.0)
    # On SIGTERM/SIGINT: how long polls in flight may take to finish and commit, and then how
    # long the forwarder may take to ship what is committed.
    stop_grace: Duration = Field(default=10.0, ge=0.0, le=600.0)
    # For fleets too large for one process: `shards` processes share one configuration, and
    # each collects the units (go-e charger, ev.energy client, OVMS account, evcc site) whose
    # owner is its `shard` (collector/shards.py). `--shard N` or EV_COLLECTOR_SHARD override
    # `shard`, so every process can read the same file.
    shard: int = Field(default=0, ge=0)
    shards: int = Field(default=1, ge=1)
    # Names this collector in `collector_health` (the `collector` tag, beside `shard`): every
    # shard of one fleet shares it; collectors writing into one database need their own.
    name: str = "default"

    @model_validator(mode="after")
    def _shard_in_range(self) -> CollectorSection:
        if self.shard >= self.shards:
            raise ValueError(f"shard must be below shards ({self.shards})")
        return self

    @field_validator("name")
    @classmethod
    def _name_plain(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()


class StoreSection(Model):
    path: Path = Path("ev-collector.db")
    synchronous: Literal["full", "normal"] = "full"
    # With InfluxDB configured, shipped points stay this long (for local export and safety).
    retention: Duration = Field(default=7 * 86400.0, ge=0.0)
    # Bound on the store's used size. Over it: shipped points go first, then the oldest
    # unshipped ones, counted and logged. None: unbounded.
    max_size_mb: float | None = Field(default=None, gt=0)
    # The shortest time between two commits while points keep arriving: larger groups, fewer
    # fsyncs; a point waits at most this long to be durable. 0: commit as soon as possible.
    commit_interval: Duration = Field(default=0.1, ge=0.0, le=5.0)


class InfluxV1(Model):
    api: Literal["v1"]
    url: str
    database: str
    retention_policy: str | None = None
    username: str | None = None
    password: SecretValue | None = None
    batch_size: int = Field(default=5000, ge=1, le=100_000)
    timeout: Duration = 10.0
    verify_tls: bool = True


class InfluxV2(Model):
    api: Literal["v2"]
    url: str
    org: str
    bucket: str
    token: SecretValue
    batch_size: int = Field(default=5000, ge=1, le=100_000)
    timeout: Duration = 10.0
    verify_tls: bool = True


InfluxSection = Annotated[InfluxV1 | InfluxV2, Field(discriminator="api")]


def instance_name(value: str) -> str:
    """A source instance's `name`: it tags points, names jobs and log lines."""
    value = value.strip()
    if not value or ":" in value:
        raise ValueError("must be a non-empty name without ':'")
    return value


__all__ = ["DEFAULT_HEARTBEAT", "CollectorSection", "Duration", "InfluxSection", "InfluxV1", "InfluxV2",
           "Model", "Secret",
           "SecretValue", "StoreSection", "instance_name", "parse_duration"]
