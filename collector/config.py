"""TOML configuration -> the typed, frozen root `Config`, assembled from the source registry.

pydantic does the typing and validation (strict about unknown keys); this module turns its
errors into one message that names the file, the key path and what is wrong. The building
blocks (`Model`, `Duration`, `SecretValue`) and the collector's own sections are in
`config_types.py`, which every section imports; this module imports the sections.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    ValidationError,
    create_model,
    model_validator,
)
from pydantic import Tag as PydanticTag
from pydantic_core import ErrorDetails

from collector.config_types import CollectorSection, InfluxSection, Model, StoreSection
from collector.errors import CollectorError
from collector.rollups.config import RollupsSection
from collector.sessions.config import SessionsSection
from collector.shards import SHARD_ENV, shard_from_environment
from collector.sources import load_all_sources


class ConfigError(CollectorError, ValueError):
    """A configuration problem; the message names the file, the key and what is wrong."""


def _table_or_tables(value: Any) -> str:
    return "tables" if isinstance(value, (list, tuple)) else "table"


class SourcesSection(BaseModel):
    """`[sources]`: one optional field per registered source (added by `config_model`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="after")
    def _unique_instance_names(self) -> SourcesSection:
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


class Config(Model):
    """The whole configuration. `sources` holds what the registry's sources declare."""

    collector: CollectorSection = CollectorSection()
    store: StoreSection = StoreSection()
    influxdb: InfluxSection | None = None
    sources: SourcesSection = SourcesSection()
    sessions: SessionsSection = SessionsSection()     # on by default; the section tunes
    rollups: RollupsSection = RollupsSection()


def _build_sources_model() -> type[SourcesSection]:
    fields: dict[str, Any] = {}
    for name, package in load_all_sources().items():
        config = package.config
        if "name" in config.model_fields:
            # Several instances ([[sources.evcc]]), each with its own `name`, or one table.
            one = Annotated[config, PydanticTag("table")]  # type: ignore[valid-type]
            many = Annotated[list[config],  # type: ignore[valid-type]
                             Field(min_length=1), PydanticTag("tables")]
            section = Annotated[one | many, Discriminator(_table_or_tables)]
            fields[name] = (section | None, None)
        else:
            fields[name] = (config | None, None)
    return create_model("SourcesSection", __base__=SourcesSection, **fields)


_config_model: tuple[tuple[tuple[str, type[Model]], ...], type[Config]] | None = None


def config_model() -> type[Config]:
    """The root model with the registered sources' sections; rebuilt when the registry changes."""
    global _config_model
    sections = tuple((name, source.config) for name, source in load_all_sources().items())
    if _config_model is None or _config_model[0] != sections:
        sources = _build_sources_model()
        model = create_model("Config", __base__=Config, sources=(sources, sources()))
        _config_model = (sections, model)
    return _config_model[1]


def _format_location(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif (part in ("v1", "v2", "table", "tables")
              or (isinstance(part, str) and part.startswith("function-"))):
            continue  # pydantic's discriminator and validator names are noise for a user
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _format_error(err: ErrorDetails) -> str:
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
                 shard_origin: str = "--shard") -> Config:
    """Validate a config; `shard` (from `shard_origin`) replaces `[collector] shard`, and
    `{shard}` in `[store] path` becomes the shard index, so shards can share one file."""
    try:
        config = config_model().model_validate(data)
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


def load_config(path: str | Path, shard: int | None = None) -> Config:
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


__all__ = ["Config", "ConfigError", "SourcesSection", "config_model", "load_config", "parse_config"]
