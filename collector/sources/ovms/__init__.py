"""OVMS server v3 source: vehicle status, charge, location, TPMS and historical records.

See README.md in this folder for what is collected, every configuration key and the limits.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from collector.config_types import Duration, Model, SecretValue, instance_name
from collector.measurement import register
from collector.sources.base import DemoHook, ElsewhereSource, SourceContext, SourcePackage
from collector.sources.ovms import counters, sessions

from .parse import MEASUREMENTS, NAME
from .source import MIN_SAMPLE_INTERVAL, STREAMS, OvmsSource, Stream, claim_vehicles, shard_unit

MIN_HISTORY_INTERVAL = 60.0


class Config(Model):
    """`[sources.ovms]`."""

    # Names this account in logs and jobs; each [[sources.ovms]] needs its own. Points are
    # tagged by `vehicle`; two instances may not collect the same vehicle id.
    name: str = "ovms"
    # Server base URL: the public server answers https on 6869 and http on 6868.
    url: str = "https://api.openvehicles.com:6869"
    username: str = Field(min_length=1)
    # The account password, or an API token created with POST /api/token (preferred).
    password: SecretValue
    # Vehicle ids; empty: every vehicle of the account (GET /api/vehicles).
    vehicles: list[str] | None = None
    streams: tuple[Stream, ...] = STREAMS
    interval: Duration = 60.0
    # Connect as a peer (GET /api/vehicle/<id>) so the module reports at its shorter
    # "connected" interval. Costs the car's mobile data and 12 V battery: off by default.
    connect_peer: bool = False
    history: bool = True
    history_interval: Duration = 900.0
    # Record types to sync, exactly as the server names them ("*-LOG-Trip"); None: all.
    history_types: list[str] | None = None
    # Re-read this much before each type's cursor (late records, same-second records).
    history_overlap: Duration = Field(default=3600.0, ge=1.0)
    # Distance units of the module for raw D/L historical records; "auto" learns them from
    # the S message.
    units: Literal["auto", "K", "M"] = "auto"
    timeout: Duration = Field(default=20.0, gt=0)
    verify_tls: bool = True

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        if "?" in value or "@" in value.split("//", 1)[1]:
            raise ValueError("must not contain credentials or a query; use username/password")
        return value.rstrip("/")

    @field_validator("name")
    @classmethod
    def _name_plain(cls, value: str) -> str:
        return instance_name(value)

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: float) -> float:
        if value < MIN_SAMPLE_INTERVAL:
            raise ValueError(f"must be at least {MIN_SAMPLE_INTERVAL:.0f} s: the server's record "
                             "changes only when the module reports, and the public server is shared")
        return value

    @field_validator("history_interval")
    @classmethod
    def _history_interval(cls, value: float) -> float:
        if value < MIN_HISTORY_INTERVAL:
            raise ValueError(f"must be at least {MIN_HISTORY_INTERVAL:.0f} s: historical records "
                             "arrive a few times a day")
        return value

    @field_validator("vehicles", "history_types")
    @classmethod
    def _non_empty_items(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not item.strip() for item in value):
            raise ValueError("entries must not be empty")
        if value is not None and len(set(value)) != len(value):
            raise ValueError("entries must not repeat")
        return value or None

    @model_validator(mode="after")
    def _something_to_do(self) -> Config:
        if not self.streams and not self.history:
            raise ValueError("nothing to collect: set streams or history = true")
        return self


register(*MEASUREMENTS)


def build(config: Config, ctx: SourceContext) -> OvmsSource | ElsewhereSource:
    unit = shard_unit(config)
    if not ctx.owns(unit):
        if config.vehicles:
            claim_vehicles(ctx, config.name, config.vehicles)
        return ctx.collected_elsewhere(NAME, f"ovms {config.url} (account {config.username})", unit)
    return OvmsSource(config, ctx)


def _demo() -> DemoHook:
    from collector.sources.ovms.demo import DEMO

    return DEMO


SOURCE = SourcePackage(name=NAME, config=Config, measurements=tuple(MEASUREMENTS), build=build,
                       preference=3, rollups=counters.ROLLUPS, export_counters=counters.EXPORT,
                       sessions=sessions.EXTRACTOR, backfill=build, demo=_demo)


__all__ = ["SOURCE", "Config", "MEASUREMENTS", "build", "OvmsSource"]
