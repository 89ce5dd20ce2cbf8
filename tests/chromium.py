"""Open a page in headless Chromium and read what a user would see, and what the console said.

Through the DevTools protocol over its websocket (aiohttp, already a dependency): console
messages, uncaught exceptions and log entries (a resource that failed to load) arrive as
structured events, and the page's text is read from the live DOM after the load event. The
browser is Debian's `chromium`; it runs with a profile of its own and is always stopped.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--remote-debugging-port=0")


def chromium_binary() -> str | None:
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class Loaded:
    text: str                                        # document.body.innerText
    problems: list[str] = field(default_factory=list)   # console errors, exceptions, failed loads
    counts: dict[str, int] = field(default_factory=dict)   # selector -> elements found


def _problem(event: dict) -> str | None:
    method, params = event.get("method"), event.get("params", {})
    if method == "Runtime.exceptionThrown":
        details = params.get("exceptionDetails", {})
        return f"exception: {details.get('text')} {details.get('exception', {}).get('description', '')}"
    if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning", "assert"):
        return "console." + params["type"] + ": " + " ".join(str(a.get("value", a.get("description")))
                                                             for a in params.get("args", []))
    if method == "Log.entryAdded" and params.get("entry", {}).get("level") in ("error", "warning"):
        entry = params["entry"]
        return f"log {entry.get('level')}: {entry.get('text')} {entry.get('url', '')}".strip()
    return None


async def _load(ws_url: str, url: str, selectors: tuple[str, ...], timeout: float) -> Loaded:
    problems: list[str] = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(ws_url, max_msg_size=0) as ws:
            ids = iter(range(1, 10_000))
            pending: dict[int, asyncio.Future] = {}
            loaded = asyncio.get_running_loop().create_future()

            async def reader() -> None:
                async for message in ws:
                    data = json.loads(message.data)
                    if "id" in data and data["id"] in pending:
                        pending.pop(data["id"]).set_result(data)
                        continue
                    problem = _problem(data)
                    if problem:
                        problems.append(problem)
                    if data.get("method") == "Page.loadEventFired" and not loaded.done():
                        loaded.set_result(True)

            async def call(method: str, **params) -> dict:
                number = next(ids)
                pending[number] = asyncio.get_running_loop().create_future()
                await ws.send_str(json.dumps({"id": number, "method": method, "params": params}))
                answer = await asyncio.wait_for(pending[number], timeout)
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})

            task = asyncio.create_task(reader())
            try:
                for domain in ("Runtime", "Log", "Page"):
                    await call(f"{domain}.enable")
                await call("Page.navigate", url=url)
                await asyncio.wait_for(loaded, timeout)
                await asyncio.sleep(0.3)          # late console messages after load
                text = await call("Runtime.evaluate", expression="document.body.innerText", returnByValue=True)
                counts = {}
                for selector in selectors:
                    found = await call("Runtime.evaluate", returnByValue=True,
                                       expression=f"document.querySelectorAll({json.dumps(selector)}).length")
                    counts[selector] = int(found["result"]["value"])
                return Loaded(text["result"]["value"], problems, counts)
            finally:
                task.cancel()


def open_page(path: Path, selectors: tuple[str, ...] = (), timeout: float = 60.0) -> Loaded:
    """Load `path` in a fresh headless Chromium; return its text and any console problems."""
    binary = chromium_binary()
    if binary is None:
        raise FileNotFoundError("chromium is not installed")
    profile = tempfile.mkdtemp(prefix="h-chromium-")
    proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {proc.returncode} before listening")
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not open its DevTools port")
            time.sleep(0.05)
        port = int(port_file.read_text().splitlines()[0])

        async def run() -> Loaded:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                    targets = await response.json()
            page = next(t for t in targets if t.get("type") == "page")
            return await _load(page["webSocketDebuggerUrl"], path.resolve().as_uri(), selectors, timeout)
        return asyncio.run(run())
    finally:
        _stop_group(proc)
        shutil.rmtree(profile, ignore_errors=True)


def _stop_group(proc: subprocess.Popen) -> None:
    """Chromium and the helpers it started (its own process group)."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        try:
            os.killpg(proc.pid, 0)           # helpers of the group still there?
        except ProcessLookupError:
            break
