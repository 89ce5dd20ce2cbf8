"""kill -9 in the middle of a pagination: the next process resumes with no loss, no duplicates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from collector.sim.base import SimServer
from collector.sim.evenergy import EvEnergySim
from collector.sources.evenergy.parse import parse_time_ns
from collector.store import Store

ROOT = Path(__file__).resolve().parents[3]


class Gate:
    """Holds the `stop_at`-th status page request until released, and says when it got there."""

    def __init__(self, sim: EvEnergySim, stop_at: int) -> None:
        self.sim = sim
        self.stop_at = stop_at
        self.seen = 0
        self.reached = threading.Event()
        self.release = threading.Event()

    def handle(self, request):
        if request.path.endswith("/status_logs") and not self.release.is_set():
            self.seen += 1
            if self.seen == self.stop_at:
                self.reached.set()
                self.release.wait(timeout=30)
        return self.sim.handle(request)


def _child(store: Path, url: str, sim: EvEnergySim) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.sources.evenergy.sync_child", str(store), f"{url}/v2", sim.user,
         *(e.id for e in sim.evses)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.slow
def test_kill_9_in_the_middle_of_a_pagination_loses_and_duplicates_nothing(tmp_path):
    sim = EvEnergySim(evses=1, seed=7)
    evse = sim.evses[0].id
    gate = Gate(sim, stop_at=12)
    store_path = tmp_path / "store.db"
    with SimServer(gate) as server:
        child = _child(store_path, server.url, sim)
        try:
            assert gate.reached.wait(timeout=30), child.communicate(timeout=5)
            child.send_signal(signal.SIGKILL)          # the 12th page is in flight
            child.wait(timeout=10)
        finally:
            gate.release.set()
            if child.poll() is None:
                child.kill()
                child.wait()
        assert child.returncode == -signal.SIGKILL

        store = Store(store_path)
        pending = json.loads(store.cursor(f"evenergy:{evse}:status_logs:pending"))
        assert store.cursor(f"evenergy:{evse}:status_logs") is None     # the watermark waits
        before = {p.time_ns for chunk in store.query("evenergy_status") for p in chunk}
        assert len(before) == 11 * 20                                     # 11 pages committed
        assert min(before) == pending["lte"]
        store.close()

        requests_before = sim.stats["requests"]
        child = _child(store_path, server.url, sim)
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err.decode()[-2000:]
        second_run_requests = sim.stats["requests"] - requests_before

    store = Store(store_path)
    try:
        watermark = parse_time_ns(store.cursor(f"evenergy:{evse}:status_logs"))
        assert store.cursor(f"evenergy:{evse}:status_logs:pending") == ""
        stored = [p.time_ns for chunk in store.query("evenergy_status") for p in chunk]
        # The simulator takes float seconds at microsecond resolution; half a microsecond of
        # margin keeps the boundary logs in whatever way the float rounds.
        truth = {parse_time_ns(i["sampled_at"])
                 for i in sim.status_logs(evse, pending["gte"] / 1e9 - 5e-7, watermark / 1e9 + 5e-7)}
        assert len(stored) == len(set(stored))                            # no duplicates
        assert set(stored) == truth                                       # no loss, nothing extra
        assert len(truth) > 500                                           # two days of logs
        # It resumed below the 11 committed pages instead of starting over (+1 for commands).
        assert second_run_requests <= -(-len(truth) // 20) - 11 + 2 + 1
        commands = {p.time_ns for chunk in store.query("evenergy_command") for p in chunk}
        assert commands == {parse_time_ns(i["logged_at"]) for i in sim.command_logs(evse, pending["gte"] / 1e9 - 5e-7)}
    finally:
        store.close()
