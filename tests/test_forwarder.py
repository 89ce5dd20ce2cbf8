"""The forwarder against a real InfluxDB 1.x (v1 API) and a recording endpoint (v2 API)."""

import asyncio
import gzip
import ipaddress
import socket
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from collector.config_types import InfluxV1, InfluxV2, Secret
from collector.health import Health
from collector.influx import Forwarder, V1Target, V2Target, WriteError
from collector.points import Point
from collector.sim.base import SimResponse, SimServer
from collector.store import Store
from tests.servers import free_port


def points(n, start=1_700_000_000_000_000_000, dev="a"):
    return [Point("charge", {"dev": dev}, {"power_w": float(k), "n": k}, start + k * 10**9)
            for k in range(n)]


def v1(url, db, **kw):
    return V1Target(InfluxV1(api="v1", url=url, database=db, **kw))


def drain(forwarder):
    return asyncio.run(forwarder.flush(time.monotonic() + 30))


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "s.db")
    yield s
    s.close()


def test_points_wait_out_an_outage_and_arrive_once_influx_is_back(tmp_path, store):
    port = free_port()
    target = v1(f"http://127.0.0.1:{port}", "ev")
    forwarder = Forwarder(store, target, Health(), batch_size=7)
    store.append(points(50))
    with pytest.raises(WriteError, match="cannot connect to 127.0.0.1:.*: Connection refused"):
        asyncio.run(forwarder.ship_once())
    assert store.pending_count() == 50
    from tests.servers import InfluxServer
    server = InfluxServer(url=f"http://127.0.0.1:{port}", port=port, workdir=tmp_path)
    server.start()
    try:
        server.create_database("ev")
        assert drain(forwarder)
        assert server.count("ev", "charge", "power_w") == 50
        assert store.pending_count() == 0
    finally:
        server.stop()
        target.close()


def test_the_same_sample_written_twice_leaves_one_point(influxdb, influx_db, store):
    target = v1(influxdb.url, influx_db)
    forwarder = Forwarder(store, target, Health())
    store.append(points(10))
    batch = store.next_batch(100)
    target.write([i.line for i in batch])      # shipped, then a crash before mark_shipped
    assert drain(forwarder)                    # the restart ships the same batch again
    store.append(points(10))                   # and the source re-collects the same samples
    assert drain(forwarder)
    assert influxdb.count(influx_db, "charge", "power_w") == 10
    target.close()


def test_shipping_goes_on_while_a_commit_holds_the_store(influxdb, influx_db, store):
    """Marking a batch shipped needs the store's write lock, which a large commit of the
    collector holds for a while: the next batches must ship meanwhile, and the marks land
    once the lock is free."""
    store.append(points(30))
    real = v1(influxdb.url, influx_db)
    writes: list[int] = []
    three = threading.Event()

    class Recording:
        description = real.description

        def write(self, lines):
            real.write(lines)
            writes.append(len(lines))
            if len(writes) == 3:
                three.set()

    committing = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
    committing.execute("BEGIN IMMEDIATE")      # the collector, in the middle of a commit
    seen: list[int] = []

    def end_the_commit():
        three.wait(timeout=4)                  # below the store's 5 s wait for the lock
        seen.append(len(writes))
        committing.execute("COMMIT")

    ender = threading.Thread(target=end_the_commit)
    ender.start()
    try:
        shipped = asyncio.run(Forwarder(store, Recording(), Health(), batch_size=10)
                              .ship_backlog())
    finally:
        ender.join()
        committing.close()
        real.close()
    assert seen == [3]                         # all three batches went while the lock was held
    assert shipped == 30
    assert store.pending_count() == 0          # and every mark landed before ship_backlog returned
    assert influxdb.count(influx_db, "charge", "power_w") == 30


def test_refused_lines_become_dead_letters_and_the_rest_ships(influxdb, influx_db, store):
    target = v1(influxdb.url, influx_db)
    # `odd` now exists as a float in this shard (InfluxDB 1.x keeps field types per shard)
    target.write(["charge,dev=z odd=1.5 1700000000000000005"])
    health = Health()
    forwarder = Forwarder(store, target, health)
    good = points(20)
    bad = Point("charge", {"dev": "b"}, {"odd": 7}, 1_700_000_000_000_000_000)  # integer: conflict
    store.append(good[:10] + [bad] + good[10:])
    drain(forwarder)
    [(line, reason)] = store.dead_letters()
    assert line == "charge,dev=b odd=7i 1700000000000000000"
    assert "conflict" in reason and "HTTP 400" in reason
    assert influxdb.count(influx_db, "charge", "power_w") == 20
    assert store.pending_count() == 0
    target.close()


class RecordingInflux2:
    """Answers like InfluxDB 2.x's write endpoint and keeps what influxdb-client sent."""

    def __init__(self, status=204, headers=None, body=b""):
        self.requests = []
        self.status, self.headers, self.body = status, headers or {}, body

    def handle(self, request):
        self.requests.append(request)
        return SimResponse(self.status, self.body, dict(self.headers))


def v2(url, **kw):
    return V2Target(InfluxV2(api="v2", url=url, org="home", bucket="ev",
                             token=Secret("tok-123", "test"), **kw))


def test_v2_write_sends_org_bucket_precision_token_and_gzip(tmp_path):
    sim = RecordingInflux2()
    with SimServer(sim) as server:
        target = v2(server.url)
        target.write(["m,dev=a v=1.0 1", "m,dev=a v=2.0 2"])
        target.close()
    [req] = sim.requests
    assert req.method == "POST" and req.path == "/api/v2/write"
    assert req.query["org"] == "home" and req.query["bucket"] == "ev"
    assert req.query["precision"] == "ns"
    assert req.headers["Authorization"] == "Token tok-123"
    assert req.headers["Content-Encoding"] == "gzip"
    body = gzip.decompress(req.body) if req.body[:2] == b"\x1f\x8b" else req.body  # aiohttp may inflate
    assert body == b"m,dev=a v=1.0 1\nm,dev=a v=2.0 2"


def _own_address() -> str | None:
    """An address of this machine other than loopback, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))    # a route is chosen; nothing is sent
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if ipaddress.ip_address(address).is_loopback else address


@pytest.mark.parametrize("where", ["this machine", "the network"])
def test_v1_compresses_for_the_network_but_not_for_this_machine(where):
    host = "127.0.0.1" if where == "this machine" else _own_address()
    if host is None:
        pytest.skip("this machine has no address but loopback")
    lines = ["m,dev=a v=1.0 1", "m,dev=a v=2.0 2"]
    sim = RecordingInflux2()
    with SimServer(sim, host=host) as server:
        target = v1(server.url, "ev")
        target.write(lines)
        target.close()
    [req] = sim.requests
    assert req.path == "/write" and req.query["db"] == "ev"
    assert req.headers.get("Content-Encoding") == ("gzip" if where == "the network" else None)
    body = gzip.decompress(req.body) if req.body[:2] == b"\x1f\x8b" else req.body  # aiohttp may inflate
    assert body.decode().split("\n") == lines


@pytest.mark.parametrize("status,headers,expect", [
    (401, {}, {"config": True}),
    (403, {}, {"config": True}),
    (400, {}, {"rejected": True}),
    (413, {}, {"rejected": True}),
    (405, {}, {"rejected": False, "config": False}),     # a write is never dropped on a guess
    (429, {"Retry-After": "17"}, {"retry_after": 17.0}),
    (503, {}, {"rejected": False, "config": False}),
])
def test_v2_errors_map_to_one_action_each(status, headers, expect):
    body = b'{"code":"invalid","message":"failure writing points"}'
    with SimServer(RecordingInflux2(status, headers, body)) as server:
        target = v2(server.url)
        with pytest.raises(WriteError) as err:
            target.write(["m v=1.0 1"])
        target.close()
    for attribute, value in expect.items():
        assert getattr(err.value, attribute) == value
    assert "tok-123" not in str(err.value)


def test_forwarder_keeps_the_backlog_through_auth_errors_and_retries(store):
    sim = RecordingInflux2(status=401, body=b'{"code":"unauthorized","message":"unauthorized access"}')
    with SimServer(sim) as server:
        target = v2(server.url)
        forwarder = Forwarder(store, target, Health(), config_retry=0.01)
        store.append(points(5))
        with pytest.raises(WriteError) as err:
            asyncio.run(forwarder.ship_once())
        assert err.value.config and store.pending_count() == 5
        sim.status = 204                       # the user fixed the token
        assert drain(forwarder)
        target.close()
    assert store.pending_count() == 0


def test_the_forwarder_process_ships_relays_its_health_and_flushes_when_stopped(
        tmp_path, influxdb, influx_db):
    from collector.forwarder_process import ForwarderProcess
    from collector.health import COLLECTOR

    store = Store(tmp_path / "s.db")
    store.append(points(3000))
    health = Health()
    config = InfluxV1(api="v1", url=influxdb.url, database=influx_db)
    shipper = ForwarderProcess(store.path, "full", config, 500, health, grace=10.0)

    async def scenario():
        shipper.start()
        deadline = time.monotonic() + 30
        while health.get(COLLECTOR, "shipped") < 3000:      # relayed from the child
            assert time.monotonic() < deadline, "no health from the forwarder process"
            await asyncio.sleep(0.05)
        store.append(points(500, start=1_800_000_000_000_000_000))
        await shipper.stop()                                 # ships those before it exits

    asyncio.run(scenario())
    assert not shipper.alive
    assert store.pending_count() == 0
    assert influxdb.count(influx_db, "charge", "power_w") == 3500
    assert health.gauges[COLLECTOR]["influx_ok"] is True
    store.close()


def test_the_forwarder_process_exits_when_the_collector_is_killed(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    script = tmp_path / "parent.py"
    script.write_text(f"""
import asyncio, sys, time
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
from collector.config_types import InfluxV1
from collector.forwarder_process import ForwarderProcess
from collector.health import Health
from collector.store import Store

Store({str(tmp_path / "s.db")!r}).close()
shipper = ForwarderProcess({str(tmp_path / "s.db")!r}, "full",
                           InfluxV1(api="v1", url="http://127.0.0.1:9", database="x"), 100, Health())
async def main():
    shipper.start()
    print(shipper._proc.pid, flush=True)
    await asyncio.sleep(60)
asyncio.run(main())
""")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        os.kill(child, 0)                                    # running
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.kill(child, signal.SIGKILL)
            raise AssertionError("the forwarder process outlived the collector by 15 s")
    finally:
        parent.kill()
        parent.wait()
