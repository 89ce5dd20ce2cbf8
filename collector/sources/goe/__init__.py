"""go-eCharger: status of each charger from the Cloud API or the local HTTP API v2.

`[sources.goe]` in the TOML configuration; see README.md beside this file.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from collector.config_types import DEFAULT_HEARTBEAT, Duration, Model, SecretValue
from collector.measurement import register
from collector.sources.base import DemoHook, SourceContext, SourcePackage
from collector.sources.goe import counters, sessions
from collector.sources.goe.client import DEFAULT_CLOUD_URL
from collector.sources.goe.parse import MEASUREMENTS, STATUS_KEYS
from collector.sources.goe.source import MIN_INTERVAL, MIN_INTERVAL_V1, GoeSource

NAME = "goe"

_SERIAL = re.compile(r"^[0-9]{6,12}$")
_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _check_interval(value: float | None) -> float | None:
    if value is not None and value < MIN_INTERVAL:
        raise ValueError(f"must be at least 1s: a go-eCharger cannot deliver data faster than "
                         f"once per second, and we never ask more often (got {value:g} s)")
    return value


class ChargerConfig(Model):
    serial: str
    api: Literal["cloud", "local", "local_v1"] = "cloud"   # local_v1: old API v1 `/status`
    token: SecretValue | None = None   # cloud: the Cloud API key shown in the app
    host: str | None = None            # local: "192.168.1.50", "charger.lan:80" or a base URL
    interval: Duration | None = None   # overrides [sources.goe] interval for this charger

    @field_validator("serial", mode="before")
    @classmethod
    def _serial_is_text(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            raise ValueError(f'write the serial as a quoted string with its leading zeros, '
                             f'e.g. serial = "{value:06d}"')
        return value

    @field_validator("serial")
    @classmethod
    def _serial_digits(cls, value: str) -> str:
        if not _SERIAL.match(value):
            hint = f' (did you mean "{value.zfill(6)}"?)' if value.isdigit() and len(value) < 6 else ""
            raise ValueError(f"a go-eCharger serial is 6 digits with leading zeros, got {value!r}{hint}")
        return value

    @field_validator("interval")
    @classmethod
    def _interval_floor(cls, value: float | None) -> float | None:
        return _check_interval(value)

    @model_validator(mode="after")
    def _api_needs(self) -> ChargerConfig:
        if self.api == "cloud":
            if self.token is None:
                raise ValueError(f"charger {self.serial}: the cloud API needs token "
                                 '(e.g. token = { env = "GOE_TOKEN" })')
            if self.host is not None:
                raise ValueError(f"charger {self.serial}: host is for api = \"local\"; the cloud "
                                 "URL comes from cloud_url")
        else:
            if not self.host or not self.host.strip():
                raise ValueError(f"charger {self.serial}: api = \"{self.api}\" needs host "
                                 '(e.g. host = "192.168.1.50")')
            if self.token is not None:
                raise ValueError(f"charger {self.serial}: token is for the cloud API; the local "
                                 "HTTP API takes none")
        return self


class Config(Model):
    interval: Duration = 5.0
    # Template of the cloud base URL. With "{serial}" it is filled in per charger; without it
    # (a proxy, the simulator on a loopback port) requests carry the Host header
    # "<serial>.api.v3.go-e.io" for routing.
    cloud_url: str = DEFAULT_CLOUD_URL
    # Status keys to ask for (comma-separated in the request). Default: what we store.
    # An empty list asks for the full status object (much larger).
    filter: list[str] = Field(default_factory=lambda: list(STATUS_KEYS))
    # Cloud only: how old a status may be before the cloud answers 404 (its default is 30 s).
    age: Duration | None = None
    timeout: Duration = 5.0
    # Local API (time = poll time): an unchanged status is stored again only this often.
    heartbeat: Duration = Field(default=DEFAULT_HEARTBEAT, ge=0.0)
    # How often to read each charger's RFID card list (names for the sessions' `card`);
    # 0 turns it off.
    cards_interval: Duration = Field(default=3600.0, ge=0.0)
    chargers: list[ChargerConfig] = Field(min_length=1)

    @field_validator("interval")
    @classmethod
    def _interval_floor(cls, value: float) -> float:
        return _check_interval(value)  # type: ignore[return-value]

    @field_validator("cards_interval")
    @classmethod
    def _cards_interval(cls, value: float) -> float:
        if 0 < value < 60:
            raise ValueError("must be 0 (off) or at least 60 s: the card list is configuration, "
                             "it rarely changes")
        return value

    @field_validator("filter", mode="before")
    @classmethod
    def _filter_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("filter")
    @classmethod
    def _filter_keys(cls, value: list[str]) -> list[str]:
        bad = [key for key in value if not _KEY.match(key)]
        if bad:
            raise ValueError(f"not status keys: {bad}")
        return list(dict.fromkeys(value))

    @field_validator("age")
    @classmethod
    def _age_positive(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError("must be positive, e.g. age = \"10s\"")
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout_range(cls, value: float) -> float:
        if not 0 < value <= 120:
            raise ValueError("must be between 0 and 120 seconds")
        return value

    @field_validator("cloud_url")
    @classmethod
    def _cloud_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with https:// (or http:// for a local proxy)")
        if "token=" in value:
            raise ValueError("must not carry the token: set token per charger, it is sent in the "
                             "Authorization header")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _v1_floor(self) -> Config:
        for charger in self.chargers:
            interval = charger.interval or self.interval
            if charger.api == "local_v1" and interval < MIN_INTERVAL_V1:
                raise ValueError(
                    f'charger {charger.serial}: api = "local_v1" is polled at most every '
                    f"{MIN_INTERVAL_V1:g} s (go-e's API v1 documentation asks for at least "
                    f"{MIN_INTERVAL_V1:g} s between requests), got {interval:g} s; set "
                    f'interval = "{MIN_INTERVAL_V1:g}s" or more on this charger')
        return self

    @model_validator(mode="after")
    def _unique_serials(self) -> Config:
        seen: set[str] = set()
        for charger in self.chargers:
            if charger.serial in seen:
                raise ValueError(f"charger {charger.serial} is listed twice")
            seen.add(charger.serial)
        return self


register(*MEASUREMENTS)


def build(config: Config, ctx: SourceContext) -> GoeSource:
    return GoeSource(config, ctx)



def _demo() -> DemoHook:
    from collector.sources.goe.demo import DEMO

    return DEMO


SOURCE = SourcePackage(name=NAME, config=Config, measurements=tuple(MEASUREMENTS), build=build,
                       preference=0, rollups=counters.ROLLUPS, export_counters=counters.EXPORT,
                       sessions=sessions.EXTRACTOR, demo=_demo)


__all__ = ["SOURCE", "Config", "MEASUREMENTS", "build", "NAME"]
