"""SIGTERM and SIGINT while a poll is in flight: it finishes and commits, the forwarder ships
it, the exit code is 0, and nothing like a traceback is printed."""

from __future__ import annotations

import signal
import time

import pytest

import dataclasses

from collector.sim.base import SimRequest, SimResponse, SimServer
from collector.sim.goe import GoeSimulator
from tests.faults.harness import CollectorProcess, goe_config, last_health, read_store, wait_until

TOKEN = "tok-stop-SECRET-1618"


class SlowOnce:
    """The simulator, with one answer `delay` seconds late once `arm()` is called."""

    def __init__(self, sim: GoeSimulator, delay: float) -> None:
        self.sim = sim
        self.delay = delay
        self.armed = False
        self.served_at: float | None = None

    def arm(self) -> None:
        self.armed = True

    def handle(self, request: SimRequest) -> SimResponse:
        response = self.sim.handle(request)
        if self.armed:
            self.armed = False
            self.served_at = time.time()
            return dataclasses.replace(response, delay=self.delay)
        return response


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_lets_the_poll_in_flight_finish_commit_and_ship(tmp_path, influxdb, influx_db, sig):
    sim = GoeSimulator.fleet(1, seed=3, token=TOKEN)
    slow = SlowOnce(sim, delay=2.5)
    store = tmp_path / "store.db"
    with SimServer(slow) as server:
        cfg = goe_config(tmp_path / "c.toml", store, server.url, TOKEN, chargers=1,
                         influx_url=influxdb.url, database=influx_db,
                         goe='timeout = "5s"\ncards_interval = 0')   # status polls only
        with CollectorProcess(cfg, tmp_path / "collector.log") as collector:
            wait_until(lambda: sim.count("000001") >= 3, what="first polls", proc=collector.proc,
                       log=collector.log)
            slow.arm()                            # the next answer takes 2.5 s
            wait_until(lambda: slow.served_at is not None, what="the slow request to arrive",
                       proc=collector.proc, log=collector.log)
            in_flight = sim.request_times["000001"][-1]
            time.sleep(0.5)
            collector.proc.send_signal(sig)       # while the answer is still on its way
            stopped_at = time.time()
            code = collector.proc.wait(timeout=30)
    lines = collector.lines()
    text = "\n".join(lines)
    assert code == 0, text[-3000:]
    assert "Traceback" not in text and "CancelledError" not in text, text[-3000:]
    assert time.time() - stopped_at < 15
    # the slow answer's status was committed and shipped before the process ended
    second = int(in_flight)
    stored = {k[2] // 1_000_000_000 for k in read_store(store, ("goe_status",))}
    assert second in stored
    assert influxdb.count(influx_db, "goe_status", "energy_total_wh") == len(stored)
    # the last health sample is taken at the stop: it counts the slow answer's point too
    assert last_health(store, "goe")["points"] == len(stored)
    assert any("stopping" in line for line in lines)
