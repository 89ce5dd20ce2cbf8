"""The cookie session against the simulator: login, expiry, re-login, errors, logout, secrecy."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from freezegun import freeze_time

from collector.http_outcomes import Action, SourceError
from collector.sim.base import mock_transport
from collector.sources.ovms.client import OvmsClient
from collector.config_types import Secret

from .helpers import PASSWORD, make_sim

START = "2026-11-20 18:45:00"


def client_for(sim, password: str = PASSWORD) -> OvmsClient:
    http = httpx.AsyncClient(base_url="http://ovms.test:6868", transport=mock_transport(sim))
    return OvmsClient(http, "demo", Secret(password, "test"))


def test_login_once_then_cookie_then_logout():
    async def scenario():
        sim = make_sim(clock=lambda: 1795200000.0)
        client = client_for(sim)
        assert await client.vehicles()
        assert (await client.sample("status", "DEMO1"))["units"] == "K"
        await client.aclose()
        return sim

    sim = asyncio.run(scenario())
    assert sim.logins == 1 and sim.logouts == 1
    assert sim.sessions == {}


def test_expired_session_logs_in_again_once():
    with freeze_time(START) as frozen:
        sim = make_sim(idle_timeout=60)       # a server stricter than the default 120 s

        async def scenario():
            client = client_for(sim)
            await client.sample("status", "DEMO1")
            frozen.tick(50)
            await client.sample("status", "DEMO1")      # still alive: used 50 s ago
            assert sim.logins == 1
            frozen.tick(61)
            await client.sample("status", "DEMO1")      # idle 61 s: server answers 401
            assert sim.logins == 2
            await client.aclose()

        asyncio.run(scenario())
    statuses = [path for method, path in sim.requests if path == "/api/status/DEMO1"]
    assert len(statuses) == 4   # three calls, one repeated after the re-login


def test_a_session_surely_expired_is_renewed_before_the_call():
    with freeze_time(START) as frozen:
        sim = make_sim(idle_timeout=120)

        async def scenario():
            client = client_for(sim)
            await client.sample("status", "DEMO1")
            frozen.tick(300)                             # a 5-minute poll interval
            await client.sample("status", "DEMO1")
            await client.aclose()

        asyncio.run(scenario())
    assert sim.logins == 2
    statuses = [path for method, path in sim.requests if path == "/api/status/DEMO1"]
    assert len(statuses) == 2   # no request wasted on a 401


def test_concurrent_calls_after_expiry_log_in_once():
    with freeze_time(START) as frozen:
        sim = make_sim(idle_timeout=120)

        async def scenario():
            client = client_for(sim)
            await client.sample("status", "DEMO1")
            frozen.tick(600)
            await asyncio.gather(*(client.sample(s, "DEMO1") for s in ("status", "charge", "location", "tpms")))
            await client.aclose()

        asyncio.run(scenario())
    assert sim.logins == 2


def test_wrong_password_is_a_config_error_without_the_password():
    sim = make_sim(clock=lambda: 1795200000.0)

    async def scenario():
        client = client_for(sim, password="wrong-" + PASSWORD)
        try:
            await client.vehicles()
        finally:
            await client.aclose()

    with pytest.raises(SourceError) as info:
        asyncio.run(scenario())
    assert info.value.action is Action.CONFIG
    assert "Authentication failed" in str(info.value)
    assert PASSWORD not in str(info.value) and "wrong-" not in str(info.value)


@pytest.mark.parametrize("path,action,text", [
    ("/api/status/NOT-MINE", Action.CONFIG, "Forbidden"),
    ("/api/nonsense/DEMO1", Action.CONFIG, "Unrecognised API call"),
])
def test_text_plain_errors_map_to_actions(path, action, text):
    sim = make_sim(clock=lambda: 1795200000.0)

    async def scenario():
        client = client_for(sim)
        try:
            await client.get_json(path)
        finally:
            await client.aclose()

    with pytest.raises(SourceError) as info:
        asyncio.run(scenario())
    assert info.value.action is action and text in str(info.value)


def test_server_down_is_transient_and_secret_free():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"connection refused for {request.url}")

    async def scenario():
        http = httpx.AsyncClient(base_url="http://ovms.test:6868", transport=httpx.MockTransport(refuse))
        client = OvmsClient(http, "demo", Secret(PASSWORD, "test"))
        try:
            await client.vehicles()
        finally:
            await client.aclose()

    with pytest.raises(SourceError) as info:
        asyncio.run(scenario())
    assert info.value.action is Action.RETRY
    assert PASSWORD not in str(info.value) and "s3cret" not in str(info.value)


def test_password_never_reaches_a_log_line(caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "collector"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    with freeze_time(START) as frozen:
        sim = make_sim(idle_timeout=120)

        async def scenario():
            client = client_for(sim)
            await client.sample("status", "DEMO1")
            frozen.tick(300)
            await client.sample("charge", "DEMO1")
            await client.aclose()
            bad = client_for(sim, password="nope")
            with pytest.raises(SourceError):
                await bad.vehicles()
            await bad.aclose()

        asyncio.run(scenario())
    assert sim.logins == 2
    assert "/api/cookie" in caplog.text            # httpx did log the login request...
    url_encoded = str(httpx.QueryParams({"p": PASSWORD}))[2:]
    for secret in (PASSWORD, url_encoded, "s3cret", "nope"):
        assert secret not in caplog.text             # ...but never the password, in any form


def test_peer_connect_once_per_session():
    with freeze_time(START) as frozen:
        sim = make_sim(idle_timeout=120)

        async def scenario():
            client = client_for(sim)
            assert await client.connect_peer("DEMO1") is True
            assert await client.connect_peer("DEMO1") is False
            frozen.tick(300)
            await client.sample("status", "DEMO1")            # re-login: peers are gone
            assert await client.connect_peer("DEMO1") is True
            await client.aclose()

        asyncio.run(scenario())
    assert [p for _, p in sim.requests].count("/api/vehicle/DEMO1") == 2


def test_refused_credentials_are_not_retried_at_every_poll():
    with freeze_time(START) as frozen:
        sim = make_sim()

        async def scenario():
            client = client_for(sim, password="wrong")
            for _ in range(3):
                with pytest.raises(SourceError) as info:
                    await client.sample("status", "DEMO1")
                assert info.value.action is Action.CONFIG
            frozen.tick(301)
            with pytest.raises(SourceError):
                await client.sample("status", "DEMO1")
            await client.aclose()

        asyncio.run(scenario())
    assert [p for _, p in sim.requests].count("/api/cookie") == 2


def test_session_cookie_is_read_from_the_header_whatever_its_attributes():
    seen: list[str] = []

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/cookie":
            # A domain attribute the cookie jar's policy refuses for this host.
            return httpx.Response(200, text="Login ok\n", headers={
                "Set-Cookie": 'ovmsapisession="abc-123"; Domain=elsewhere.example; Path=/api/'})
        seen.append(request.headers.get("cookie", ""))
        return httpx.Response(200, json=[])

    async def scenario():
        http = httpx.AsyncClient(base_url="http://ovms.test:6868", transport=httpx.MockTransport(server))
        client = OvmsClient(http, "demo", Secret(PASSWORD, "test"))
        assert await client.vehicles() == []
        await client.aclose()

    asyncio.run(scenario())
    assert seen[0] == "ovmsapisession=abc-123"
