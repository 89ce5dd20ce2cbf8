"""The aiohttp transport behind httpx: answers arrive whole, and failures keep honest names."""

from __future__ import annotations

import asyncio
import socket
import ssl

import httpx
import pytest

from collector.aiohttp_transport import FleetTransport, proxy_configured
from collector.http_outcomes import describe_exception

LIMITS = httpx.Limits(max_connections=4, max_keepalive_connections=4, keepalive_expiry=5.0)


async def serve(handler) -> tuple[asyncio.AbstractServer, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def fetch(url: str, timeout: float = 2.0) -> httpx.Response:
    transport = FleetTransport(ssl.create_default_context(), LIMITS)
    async with httpx.AsyncClient(transport=transport, timeout=timeout) as client:
        return await client.get(url + "/api/status", headers={"Authorization": "Bearer t"})


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    request = await reader.readuntil(b"\r\n\r\n")
    body = b'{"car": 2}' if b"authorization: bearer t" in request.lower() else b"{}"
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 b"Last-Modified: Sat, 21 Nov 2026 09:30:00 GMT\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    writer.close()


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.close()


async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    await asyncio.sleep(1.5)           # past the client's 0.3 s timeout
    writer.close()


def run(handler, timeout: float = 2.0):
    async def scenario():
        server, url = await serve(handler)
        try:
            return await fetch(url, timeout)
        finally:
            server.close()
            await server.wait_closed()
    return asyncio.run(scenario())


def test_a_status_arrives_with_its_headers_and_body() -> None:
    response = run(answer)
    assert response.status_code == 200
    assert response.json() == {"car": 2}               # the Authorization header was sent
    assert response.headers["last-modified"] == "Sat, 21 Nov 2026 09:30:00 GMT"


def test_a_hang_up_is_a_protocol_error_not_a_timeout() -> None:
    with pytest.raises(httpx.RemoteProtocolError) as caught:
        run(hang_up)
    assert "timed out" not in describe_exception(caught.value)


def test_a_refused_connection_is_a_connect_error_not_a_timeout() -> None:
    with socket.socket() as probe:                      # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(httpx.ConnectError) as caught:
        asyncio.run(fetch(f"http://127.0.0.1:{port}"))
    # worded by the OS's reason, not aiohttp's "Cannot connect to host ... ssl:default [...]"
    assert describe_exception(caught.value) == f"cannot connect to 127.0.0.1:{port}: Connection refused"


def test_a_server_that_does_not_answer_times_out() -> None:
    with pytest.raises(httpx.TimeoutException) as caught:
        run(stall, timeout=0.3)
    assert "timed out" in describe_exception(caught.value)


def test_a_proxy_in_the_environment_is_noticed_and_no_proxy_alone_is_not(monkeypatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
                 "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "localhost")
    assert not proxy_configured()
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert proxy_configured()
