"""One wording for a failed connection, whichever source, transport or library met it.

`check` (and the log lines, which carry the same SourceError and WriteError texts) says where
(host and port) and the operating system's reason, for every source, InfluxDB and MQTT:
`cannot connect to HOST:PORT: REASON`, or `no answer from HOST:PORT: timed out after N s`.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path
from typing import Iterator

import pytest

from collector.app import Collector
from collector.config import load_config
from tests.servers import free_port
from tests.sources.evcc.harness import Clock, make_context, make_source

UNRESOLVABLE = "nowhere.invalid"


@pytest.fixture
def no_dns(monkeypatch):
    """Names under .invalid do not resolve, answered here: tests never ask a real resolver."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if str(host).endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    server = socket.create_server(("127.0.0.1", 0), backlog=64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except (TimeoutError, OSError):
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for connection in accepted:
            connection.close()
        server.close()


def write_config(path: Path, host: str, port: int, influx_api: str) -> Path:
    url = f"http://{host}:{port}"
    influx = ('api = "v1"\ndatabase = "ev"' if influx_api == "v1" else
              'api = "v2"\norg = "home"\nbucket = "ev"\ntoken = "t"')
    path.write_text(f"""
[store]
path = "s.db"

[influxdb]
{influx}
url = "{url}"
timeout = "0.5s"

[sources.goe]
cloud_url = "{url}/{{serial}}"
timeout = "0.5s"
[[sources.goe.chargers]]
serial = "012345"
api = "local"
host = "{host}:{port}"
[[sources.goe.chargers]]
serial = "012346"
api = "cloud"
token = "t"

[sources.evcc]
name = "home"
url = "{url}"
tariffs = []
timeout = "0.5s"
[sources.evcc.mqtt]
host = "{host}"
port = {port}

[sources.evenergy]
client_id = "a"
client_secret = "b"
user = "user01HSH04KDEWF6Z4DB2J77J74K5"
base_url = "{url}/v2"
timeout = "0.5s"

[sources.ovms]
url = "{url}"
username = "u"
password = "p"
timeout = "0.5s"
""")
    return path


def check(config_path: Path):
    collector = Collector(load_config(config_path))

    async def run():
        try:
            return await collector.check()
        finally:
            collector.close()

    return asyncio.run(run())


def assert_every_target_says(results, ending: str) -> None:
    assert len(results) == 7       # InfluxDB, evcc REST and MQTT, ev.energy, 2 chargers, OVMS
    for result in results:
        assert not result.ok, result
        assert result.detail.endswith(ending), f"{result.target}: {result.detail}"
        assert "ssl:default" not in result.detail and "All connection attempts" not in result.detail


@pytest.mark.parametrize("influx_api", ["v1", "v2"])
def test_a_refused_connection_reads_the_same_for_every_target(tmp_path, influx_api):
    port = free_port()
    results = check(write_config(tmp_path / "c.toml", "127.0.0.1", port, influx_api))
    assert_every_target_says(results, f"cannot connect to 127.0.0.1:{port}: Connection refused")


@pytest.mark.parametrize("influx_api", ["v1", "v2"])
def test_a_name_that_does_not_resolve_reads_the_same_for_every_target(tmp_path, no_dns, influx_api):
    results = check(write_config(tmp_path / "c.toml", UNRESOLVABLE, 8080, influx_api))
    assert_every_target_says(results,
                             f"cannot connect to {UNRESOLVABLE}:8080: Name or service not known")


@pytest.mark.parametrize("influx_api", ["v1", "v2"])
def test_a_silent_host_reads_the_same_for_every_target(tmp_path, silent_port, monkeypatch, influx_api):
    monkeypatch.setattr("collector.sources.evcc.mqtt.CHECK_TIMEOUT", 0.5)
    results = check(write_config(tmp_path / "c.toml", "127.0.0.1", silent_port, influx_api))
    assert_every_target_says(results, f"no answer from 127.0.0.1:{silent_port}: timed out after 0.5 s")


def test_the_mqtt_source_logs_the_brokers_address_and_the_reason(tmp_path):
    """While running, a broker that refuses is named with the OS's reason, like everything else."""
    port = free_port()
    ctx = make_context(tmp_path, Clock())
    source = make_source(ctx, url=None, mqtt={"host": "127.0.0.1", "port": port, "root": "evcc"})

    async def scenario():
        await source.start()
        try:
            for _ in range(100):
                if "evcc:home" in ctx.health.last_error:      # the instance named home
                    break
                await asyncio.sleep(0.05)
        finally:
            await source.close()

    asyncio.run(scenario())
    assert ctx.health.last_error["evcc:home"].startswith(
        f"cannot connect to MQTT broker 127.0.0.1:{port}: Connection refused (1 attempt)")
