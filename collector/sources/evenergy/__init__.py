"""ev.energy API v2: EVSE status logs and command logs, within the client's hourly quota.

`[sources.evenergy]` in the TOML configuration; see README.md beside this file.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, field_validator

from collector.config_types import Duration, Model, SecretValue, instance_name
from collector.measurement import register
from collector.sources.base import DemoHook, ElsewhereSource, SourceContext, SourcePackage
from collector.sources.evenergy import counters, sessions
from collector.sources.evenergy.parse import COMMAND, MEASUREMENTS, NAME, STATUS
from collector.sources.evenergy.source import EvEnergySource, build_source

register(*MEASUREMENTS)

MIN_INTERVAL = 60.0
_EVSE_ID = re.compile(r"^evse[0-9A-Za-z]{26}$")


class Config(Model):
    """`[sources.evenergy]`: one OAuth application (client) acting for one ev.energy user."""

    # Names this client in logs and jobs; each [[sources.evenergy]] needs its own. Points are
    # tagged by `evse`, an id ev.energy gives each EVSE, unique across clients.
    name: str = "evenergy"
    client_id: str = Field(min_length=1)
    client_secret: SecretValue
    # The ev.energy user this client acts for: sent as `EvEnergy-User` with every request.
    user: str = Field(min_length=1)
    base_url: str = "https://api.ev.energy/v2"
    # Default: `/o/token/` on the API's host.
    token_url: str | None = None
    # EVSE ids to collect; empty: every EVSE `GET /evses` lists (rediscovered periodically).
    evses: tuple[str, ...] = ()
    status_interval: Duration = 300.0
    command_interval: Duration = 900.0
    discovery_interval: Duration = 6 * 3600.0
    # How far back the first sync of a stream reaches.
    backfill: Duration = Field(default=7 * 86400.0, ge=0.0, le=90 * 86400.0)
    # Re-ask this much before the watermark: logs reach ev.energy a while after sampling.
    lookback: Duration = Field(default=600.0, ge=0.0, le=86400.0)
    page_size: int = Field(default=100, ge=1, le=100)
    # Pages one stream of one EVSE may fetch per run, so a long backfill cannot take the whole
    # quota from the other EVSEs; the rest follows next run (the pending range is durable).
    max_pages_per_run: int = Field(default=20, ge=1, le=1000)
    # Requests per rolling hour; the x-ratelimit-limit header corrects it at the first answer.
    quota_limit: int = Field(default=1000, ge=1)
    reserve: float = Field(default=0.1, ge=0.0, le=0.9)
    timeout: Duration = Field(default=30.0, gt=0.0)

    @field_validator("status_interval", "command_interval", "discovery_interval")
    @classmethod
    def _not_too_often(cls, value: float) -> float:
        if value < MIN_INTERVAL:
            raise ValueError(f"must be at least {MIN_INTERVAL:.0f} s: ev.energy logs are sampled "
                             f"minutes apart and the whole client shares a quota of about 1000 "
                             f"requests per hour")
        return value

    @field_validator("name")
    @classmethod
    def _name_plain(cls, value: str) -> str:
        return instance_name(value)

    @field_validator("evses")
    @classmethod
    def _evse_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for evse in value:
            if not _EVSE_ID.match(evse):
                raise ValueError(f"{evse!r} is not an ev.energy EVSE id (`evse` and 26 letters "
                                 f"or digits, as `GET /evses` lists them)")
        if len(set(value)) != len(value):
            raise ValueError("an EVSE is listed twice")
        return value

    @field_validator("base_url", "token_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError(f"expected an http(s) URL, got {value!r}")
        return value

    def resolved_token_url(self) -> str:
        if self.token_url:
            return self.token_url
        parts = urlsplit(self.base_url)
        return urlunsplit((parts.scheme, parts.netloc, "/o/token/", "", ""))


def build(config: Config, ctx: SourceContext) -> EvEnergySource | ElsewhereSource:
    return build_source(config, ctx)



def _demo() -> DemoHook:
    from collector.sources.evenergy.demo import DEMO

    return DEMO


SOURCE = SourcePackage(name=NAME, config=Config, measurements=tuple(MEASUREMENTS), build=build,
                       preference=1, rollups=counters.ROLLUPS, export_counters=counters.EXPORT,
                       sessions=sessions.EXTRACTOR, demo=_demo)


__all__ = ["SOURCE", "Config", "MEASUREMENTS", "STATUS", "COMMAND", "NAME", "build"]
