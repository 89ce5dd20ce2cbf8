"""What every simulator shares: a pure request handler, served two ways.

A simulator is an object with `handle(SimRequest) -> SimResponse` and no I/O of its own. Tests
that freeze time with freezegun reach it in-process through `mock_transport` (httpx's
MockTransport: no sockets, no event-loop timers). The demo, the end-to-end tests and the
benchmarks reach it over real HTTP on a loopback port through `SimServer` (aiohttp, in a
background thread), or in a process of its own through each simulator's `main()`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from multidict import CIMultiDict


@dataclass
class SimRequest:
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]     # case-insensitive
    body: bytes = b""
    host: str = ""                 # the Host header, for per-host routing (go-e cloud)


@dataclass
class SimResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # Transport-level faults, for collector/sim/faults.py: answer only after `delay` seconds,
    # or drop the connection without answering (a reset). Served by SimServer; mock_transport
    # raises the httpx exception a client would see instead (it cannot wait under freezegun).
    delay: float = 0.0
    reset: bool = False

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: Mapping[str, str] | None = None,
             content_type: str = "application/json") -> SimResponse:
        out = {"Content-Type": content_type}
        out.update(headers or {})
        return cls(status, json.dumps(payload).encode("utf-8"), out)

    @classmethod
    def text(cls, text: str, status: int = 200, headers: Mapping[str, str] | None = None,
             content_type: str = "text/plain; charset=utf-8") -> SimResponse:
        out = {"Content-Type": content_type}
        out.update(headers or {})
        return cls(status, text.encode("utf-8"), out)


class Simulator(Protocol):
    def handle(self, request: SimRequest) -> SimResponse: ...


def mock_transport(sim: Simulator) -> httpx.MockTransport:
    """An httpx transport that calls the simulator in-process."""

    def handler(request: httpx.Request) -> httpx.Response:
        sim_request = SimRequest(
            method=request.method,
            path=request.url.path,
            query=dict(request.url.params.multi_items()),
            headers=CIMultiDict(request.headers.multi_items()),
            body=request.read(),
            host=request.url.host,
        )
        response = sim.handle(sim_request)
        if response.reset:
            raise httpx.ReadError("simulated connection reset", request=request)
        if response.delay > 0:
            raise httpx.ReadTimeout("simulated slow response", request=request)
        return httpx.Response(response.status, headers=response.headers, content=response.body)

    return httpx.MockTransport(handler)


class SimServer:
    """Serves a simulator on 127.0.0.1 in a background thread; `with SimServer(sim) as s:`."""

    def __init__(self, sim: Simulator, port: int = 0, host: str = "127.0.0.1") -> None:
        self.sim = sim
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _serve(self) -> None:
        from aiohttp import web

        async def handler(request: web.Request) -> web.Response:
            body = await request.read()
            sim_request = SimRequest(method=request.method, path=request.path,
                                     query=dict(request.query), headers=request.headers,
                                     body=body, host=request.host.split(":")[0])
            response = self.sim.handle(sim_request)
            if response.delay > 0:
                await asyncio.sleep(response.delay)
            if response.reset:
                if request.transport is not None:
                    request.transport.abort()     # RST/EOF with no answer at all
                raise asyncio.CancelledError()    # aiohttp drops the handler quietly
            headers = dict(response.headers)
            content_type = headers.pop("Content-Type", None)
            resp = web.Response(status=response.status, body=response.body, headers=headers)
            if content_type:
                resp.headers["Content-Type"] = content_type
            return resp

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        # Stop promptly even with a deliberately slow answer (faults.py) still in flight.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._stopped = asyncio.Event()
        self._ready.set()
        await self._stopped.wait()
        await runner.cleanup()

    def _thread_main(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start() below
            self._error = exc
            self._ready.set()
        finally:
            leftover = asyncio.all_tasks(self._loop)   # handlers past the shutdown timeout
            for task in leftover:
                task.cancel()
            if leftover:
                self._loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
            self._loop.close()

    def start(self) -> SimServer:
        self._thread = threading.Thread(target=self._thread_main, name=f"sim-{type(self.sim).__name__}",
                                        daemon=True)
        self._thread.start()
        self._ready.wait(timeout=10)
        if self._error is not None:
            raise RuntimeError(f"simulator {type(self.sim).__name__} failed to start: {self._error}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(timeout=10)

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def log_to_stdout() -> None:
    """Logging for a simulator run from the command line: plain lines on stdout.

    A parent process (a benchmark, a test) reads the first line to learn the URL, and a person
    reads the rest; every record is flushed as it is written.
    """
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout, force=True)
