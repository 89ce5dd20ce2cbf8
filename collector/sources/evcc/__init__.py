"""evcc: site, loadpoints, charging sessions and tariff forecasts, over REST and/or MQTT."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from collector.config_types import DEFAULT_HEARTBEAT, Duration, Model, SecretValue, instance_name
from collector.sources.base import DemoHook, SourceContext, SourcePackage
from collector.sources.evcc import counters, sessions
from collector.sources.evcc.parse import TARIFF_TYPES
from collector.sources.evcc.schema import MEASUREMENTS
from collector.sources.evcc.tariff import grid_tariff

NAME = "evcc"

TariffType = Literal["grid", "feedin", "co2", "planner", "solar"]

# evcc has no published rate limit; these floors keep a typo ("1ms") from hammering a small
# box (evcc runs on a Raspberry Pi) and match how often the data can change at all: evcc's
# own control loop runs every 30 s by default, forecasts change a few times an hour.
MIN_STATE_INTERVAL = 1.0
MIN_SESSIONS_INTERVAL = 10.0
MIN_TARIFF_INTERVAL = 60.0


class MqttConfig(Model):
    host: str
    port: int = Field(default=1883, ge=1, le=65535)
    root: str = "evcc"                   # evcc's `mqtt.topic`
    username: str | None = None
    password: SecretValue | None = None
    client_id: str | None = None         # default: a random id per start
    tls: bool = False
    keepalive: int = Field(default=60, ge=5, le=3600)
    # Quiet time after which one evcc update cycle (which begins with `<root>/updated`), or
    # the retained burst after a (re)connect, is taken as complete and turned into points.
    settle: Duration = Field(default=1.0, ge=0.0, le=10.0)
    reconnect_min: Duration = Field(default=1.0, ge=0.1)
    reconnect_max: Duration = Field(default=120.0, ge=1.0)

    @field_validator("root")
    @classmethod
    def _root_plain(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value or any(c in value for c in "#+"):
            raise ValueError("must be a plain topic such as \"evcc\" (no wildcards)")
        return value


class Config(Model):
    # The `site` tag of every point; each [[sources.evcc]] needs its own.
    name: str = "evcc"
    url: str | None = None               # e.g. "http://evcc.local:7070"; needed for sessions/tariffs
    username: str | None = None          # HTTP basic auth, when a reverse proxy asks for it
    password: SecretValue | None = None
    timeout: Duration = Field(default=10.0, gt=0)
    state_interval: Duration = 30.0
    # The state carries no time of its own (poll or MQTT cycle time): a series whose values
    # did not change is stored again only this often.
    heartbeat: Duration = Field(default=DEFAULT_HEARTBEAT, ge=0.0)
    sessions: bool = True
    sessions_interval: Duration = 300.0
    # Sessions created this long before the newest one we hold are fetched again on every
    # sync, so evcc's later corrections of recent sessions reach the store.
    session_lookback: Duration = Field(default=7 * 86400.0, ge=0.0)
    tariffs: tuple[TariffType, ...] = ("grid", "feedin", "co2")
    tariff_interval: Duration = 900.0
    # With an [mqtt] section the site and loadpoint state come from MQTT instead of polling
    # /api/state; sessions and tariffs (which evcc does not publish) still come over REST.
    mqtt: MqttConfig | None = None

    @field_validator("name")
    @classmethod
    def _name_plain(cls, value: str) -> str:
        return instance_name(value)

    @field_validator("url")
    @classmethod
    def _url_http(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        if "@" in urlsplit(value).netloc:
            # A URL is logged; credentials in it would be too.
            raise ValueError("must not contain credentials; use `username` and `password`")
        return value.rstrip("/")

    @field_validator("state_interval")
    @classmethod
    def _state_floor(cls, value: float) -> float:
        if value < MIN_STATE_INTERVAL:
            raise ValueError(f"must be at least {MIN_STATE_INTERVAL:g} s "
                             "(evcc updates every 30 s by default)")
        return value

    @field_validator("sessions_interval")
    @classmethod
    def _sessions_floor(cls, value: float) -> float:
        if value < MIN_SESSIONS_INTERVAL:
            raise ValueError(f"must be at least {MIN_SESSIONS_INTERVAL:g} s")
        return value

    @field_validator("tariff_interval")
    @classmethod
    def _tariff_floor(cls, value: float) -> float:
        if value < MIN_TARIFF_INTERVAL:
            raise ValueError(f"must be at least {MIN_TARIFF_INTERVAL:g} s "
                             "(forecasts change a few times an hour)")
        return value

    @model_validator(mode="after")
    def _reachable(self) -> Config:
        if self.url is None and self.mqtt is None:
            raise ValueError("set `url` (REST) or an [mqtt] section, or both")
        if self.password is not None and self.username is None:
            raise ValueError("`password` is set without `username`")
        return self


def shard_unit(config: Config) -> str:
    """What one process collects whole: the site (its REST client and MQTT subscription)."""
    return f"{NAME}:{config.name}"


def build(config: Config, ctx: SourceContext):
    from collector.sources.evcc.source import EvccSource

    unit = shard_unit(config)
    if not ctx.owns(unit):
        return ctx.collected_elsewhere(NAME, f"evcc {config.name}", unit)
    return EvccSource(config, ctx)



def _demo() -> DemoHook:
    from collector.sources.evcc.demo import DEMO

    return DEMO


SOURCE = SourcePackage(name=NAME, config=Config, measurements=tuple(MEASUREMENTS), build=build,
                       preference=2, rollups=counters.ROLLUPS, export_counters=counters.EXPORT,
                       sessions=sessions.EXTRACTOR, backfill=build, demo=_demo,
                       tariff=grid_tariff)


__all__ = ["SOURCE", "Config", "MEASUREMENTS", "NAME", "TARIFF_TYPES", "build"]
