"""A SourceContext around a temporary store, with HTTP routed to an in-process simulator."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from collector.config import parse_config
from collector.health import Health
from collector.limits import Limits
from collector.sim.base import mock_transport
from collector.sim.ovms import OvmsSim
from collector.sources import ovms
from collector.sources.base import SourceContext
from collector.store import Store
from collector.writer import PointWriter

PASSWORD = "s3cret-Pässwörd&x=1"


def make_config(**overrides: Any) -> Any:
    section = {"url": "http://ovms.test:6868", "username": "demo", "password": PASSWORD}
    section.update(overrides)
    return parse_config({"sources": {"ovms": section}}).sources.ovms


def make_sim(**kwargs: Any) -> OvmsSim:
    kwargs.setdefault("users", {"demo": PASSWORD})
    return OvmsSim(**kwargs)


def make_context(store_path: Path, transport: Any) -> SourceContext:
    store = Store(store_path)
    health = Health()
    return SourceContext(cursors=store, writer=PointWriter(store, health), limits=Limits(clock=lambda: time.time()),  # freezegun drives it
                         health=health, http_transport=transport)


def make_source(store_path: Path, sim: OvmsSim, **overrides: Any) -> tuple[Any, SourceContext]:
    ctx = make_context(store_path, mock_transport(sim))
    return ovms.build(make_config(**overrides), ctx), ctx


def rows(ctx: SourceContext, measurement: str, **tags: str) -> list:
    return [p for chunk in ctx.writer.store.query(measurement, tags=tags or None) for p in chunk]
