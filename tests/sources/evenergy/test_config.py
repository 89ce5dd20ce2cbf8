"""The [sources.evenergy] section: validation, and the warning when the quota cannot fit."""

from __future__ import annotations

import asyncio
import logging

import pytest

from collector.config import ConfigError, parse_config
from collector.health import Health
from collector.limits import Limits
from collector.sources.base import SourceContext
from collector.sources.evenergy import Config, build
from collector.sources.evenergy.source import quota_plan
from collector.store import Store
from collector.writer import PointWriter

EVSES = [f"evse01HSH04KDEWF6Z4DB2J77J7{n:03d}" for n in range(20)]
BASE = {"client_id": "c", "client_secret": "s", "user": "user01"}


def test_defaults_and_token_url():
    config = Config(**BASE)
    assert config.status_interval == 300 and config.command_interval == 900
    assert config.backfill == 7 * 86400 and config.reserve == 0.1 and config.page_size == 100
    assert config.resolved_token_url() == "https://api.ev.energy/o/token/"
    assert Config(**BASE, token_url="https://auth.example/token").resolved_token_url() == "https://auth.example/token"


@pytest.mark.parametrize("key, value, message", [
    ("status_interval", "30s", "at least 60 s"),
    ("command_interval", 10, "at least 60 s"),
    ("page_size", 101, "less than or equal to 100"),
    ("page_size", 0, "greater than or equal to 1"),
    ("evses", ["charger-1"], "not an ev.energy EVSE id"),
    ("reserve", 1.5, "less than or equal to 0.9"),
    ("base_url", "api.ev.energy/v2", "http(s) URL"),
])
def test_invalid_values_are_refused_with_a_clear_message(key, value, message):
    with pytest.raises(ConfigError) as info:
        parse_config({"sources": {"evenergy": {**BASE, key: value}}}, "test.toml")
    assert f"sources.evenergy.{key}" in str(info.value) and message in str(info.value)


def test_the_secret_never_shows_in_the_config_repr():
    assert "s3cret" not in repr(Config(client_id="c", client_secret="s3cret", user="u"))


def test_quota_plan_says_which_interval_would_fit():
    assert quota_plan(20, 300, 900, 1000, 0.1) is None          # 320 requests per hour
    warning = quota_plan(20, 60, 900, 1000, 0.1)                 # 1280 > 720 planned
    assert "1280 requests per hour" in warning and "720 planned for: 900 usable" in warning
    assert "status_interval >= 113 s with command_interval unchanged" in warning
    # 20 x (3600/113 + 4) = 717: rounding up really fits
    assert quota_plan(20, 113, 900, 1000, 0.1) is None
    both = quota_plan(200, 60, 60, 1000, 0.1)
    assert "status_interval >= 2000 s and command_interval >= 2000 s" in both
    assert quota_plan(200, 2000, 2000, 1000, 0.1) is None


def test_building_with_too_many_evses_for_the_quota_logs_a_warning(tmp_path, caplog):
    store = Store(tmp_path / "s.db")
    health = Health()
    ctx = SourceContext(cursors=store, writer=PointWriter(store, health), limits=Limits(), health=health)
    try:
        with caplog.at_level(logging.WARNING, logger="collector.sources.evenergy"):
            source = build(Config(**BASE, evses=tuple(EVSES), status_interval="1m"), ctx)
            asyncio.run(source.close())
        assert "would fit" in caplog.text
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="collector.sources.evenergy"):
            source = build(Config(**BASE, evses=tuple(EVSES)), ctx)
            asyncio.run(source.close())
        assert caplog.text == ""
    finally:
        store.close()
