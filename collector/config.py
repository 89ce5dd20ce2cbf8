"""TOML configuration -> typed, frozen config.

pydantic does the typing and validation (strict about unknown keys); this module turns its
errors into one message that names the file, the key path and what is wrong. Secrets are
never required inline: `token = { env = "NAME" }` or `token = { file = "/run/secrets/x" }`.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Discriminator, Field,
                      ValidationError, create_model, field_validator, model_validator)
from pydantic import Tag as PydanticTag

from collector.errors import CollectorError
from collector.shards import SHARD_ENV, shard_from_environment


class ConfigError(CollectorError, ValueError):
    """A configuration problem; the message names the file, the key and what is wrong."""


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
    def _shard_in_range(self) -> "CollectorSection":
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


InfluxSection = Annotated[Union[InfluxV1, InfluxV2], Field(discriminator="api")]


def instance_name(value: str) -> str:
    """A source instance's `name`: it tags points, names jobs and log lines."""
    value = value.strip()
    if not value or ":" in value:
        raise ValueError("must be a non-empty name without ':'")
    return value


def _table_or_tables(value: Any) -> str:
    return "tables" if isinstance(value, (list, tuple)) else "table"


class _SourcesBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="after")
    def _unique_instance_names(self) -> "_SourcesBase":
        for kind in type(self).model_fields:
            section = getattr(self, kind)
            if not isinstance(section, list):
                continue
            first_of: dict[str, int] = {}
            for n, instance in enumerate(section, start=1):
                if instance.name in first_of:
                    raise ValueError(
                        f"[[sources.{kind}]] number {first_of[instance.name]} and number {n} are "
                        f"both named {instance.name!r}: give each its own `name`")
                first_of[instance.name] = n
        return self


def _build_sources_model() -> type[BaseModel]:
    from collector.sources import load_all_sources

    fields: dict[str, Any] = {}
    for name, module in load_all_sources().items():
        if "name" in module.Config.model_fields:
            # Several instances ([[sources.evcc]]), each with its own `name`, or one table.
            one = Annotated[module.Config, PydanticTag("table")]  # type: ignore[name-defined]
            many = Annotated[list[module.Config], Field(min_length=1), PydanticTag("tables")]  # type: ignore[name-defined]
            section = Annotated[Union[one, many], Discriminator(_table_or_tables)]
            fields[name] = (section | None, None)
        else:
            fields[name] = (module.Config | None, None)
    return create_model("SourcesSection", __base__=_SourcesBase, **fields)  # type: ignore[call-overload]


_config_model: type[BaseModel] | None = None


def config_model() -> type[BaseModel]:
    """The top-level model, built once from the source registry."""
    global _config_model
    if _config_model is None:
        from collector.rollups.config import RollupsSection
        from collector.sessions.config import SessionsSection

        sources = _build_sources_model()
        _config_model = create_model(
            "Config",
            __base__=Model,
            collector=(CollectorSection, CollectorSection()),
            store=(StoreSection, StoreSection()),
            influxdb=(InfluxSection | None, None),
            sources=(sources, sources()),
            sessions=(SessionsSection, SessionsSection()),   # on by default; the section tunes
            rollups=(RollupsSection, RollupsSection()),
        )
    return _config_model


def _format_location(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("v1", "v2", "table", "tables") or (isinstance(part, str) and part.startswith("function-")):
            continue  # pydantic's discriminator and validator names are noise for a user
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _format_error(err: dict[str, Any]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "missing required key"
    message = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix):]
    return message


def format_validation_error(source: str, exc: ValidationError) -> str:
    lines = [f"{source}: invalid configuration:"]
    for err in exc.errors(include_url=False, include_input=False):
        lines.append(f"  {_format_location(err['loc'])}: {_format_error(err)}")
    return "\n".join(lines)


SHARD_PLACEHOLDER = "{shard}"


def parse_config(data: dict[str, Any], source: str = "<config>", shard: int | None = None,
                 shard_origin: str = "--shard") -> Any:
    """Validate a config; `shard` (from `shard_origin`) replaces `[collector] shard`, and
    `{shard}` in `[store] path` becomes the shard index, so shards can share one file."""
    try:
        config: Any = config_model().model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from None
    collector = config.collector
    if shard is not None and shard != collector.shard:
        if shard >= collector.shards:
            raise ConfigError(f"{source}: shard {shard} (from {shard_origin}) must be below "
                              f"[collector] shards = {collector.shards}")
        collector = collector.model_copy(update={"shard": shard})
        config = config.model_copy(update={"collector": collector})
    if SHARD_PLACEHOLDER in str(config.store.path):
        path = Path(str(config.store.path).replace(SHARD_PLACEHOLDER, str(collector.shard)))
        config = config.model_copy(update={"store": config.store.model_copy(update={"path": path})})
    return config


def load_config(path: str | Path, shard: int | None = None) -> Any:
    """Read, validate and freeze a TOML config; raises ConfigError with a clear message.

    The shard index is `shard` (the command line), else EV_COLLECTOR_SHARD, else the file's.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    origin = "--shard"
    if shard is None:
        try:
            shard = shard_from_environment()
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        origin = SHARD_ENV
    config = parse_config(data, str(path), shard, origin)
    if not config.store.path.is_absolute():
        # Relative store paths are relative to the config file, not to wherever we were started.
        store = config.store.model_copy(update={"path": (path.parent / config.store.path).resolve()})
        config = config.model_copy(update={"store": store})
    return config


__all__ = [
    "ConfigError", "Duration", "Model", "Secret", "SecretValue", "config_model", "field_validator",
    "instance_name",
    "load_config", "parse_config", "parse_duration",
]
