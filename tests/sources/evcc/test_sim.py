"""The simulator on its own: deterministic, growing sessions, and runnable as a process."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from collector.sim.evcc import EvccSim
from tests.servers import free_port
from tests.sources.evcc.harness import T0

ROOT = Path(__file__).resolve().parents[3]


def test_same_seed_and_time_give_the_same_answers() -> None:
    a, b = EvccSim(seed=7, clock=lambda: T0), EvccSim(seed=7, clock=lambda: T0)
    assert a.state() == b.state() and a.session_rows() == b.session_rows()
    assert EvccSim(seed=8, clock=lambda: T0).session_rows() != a.session_rows()


def test_sessions_grow_and_keep_their_ids() -> None:
    sim = EvccSim(clock=lambda: T0)
    earlier = {r["id"]: r["created"] for r in sim.session_rows(T0)}
    later = {r["id"]: r["created"] for r in sim.session_rows(T0 + 2 * 86400)}
    assert len(later) > len(earlier)
    assert all(later[i] == created for i, created in earlier.items())


def test_pv_follows_the_day() -> None:
    sim = EvccSim(clock=lambda: T0)
    night = sim.state(T0 - 15 * 3600 + 2 * 3600)   # 03:00 local
    noon = sim.state(T0 - 15 * 3600 + 11 * 3600)   # 12:00 local
    assert night["pvPower"] == 0 and noon["pvPower"] > 3000


def test_meters_advance_only_with_the_energy_that_flows() -> None:
    sim = EvccSim(clock=lambda: T0)
    start = sim.start + 3600.0
    times = [start + k * 300.0 for k in range(int(2 * 86400 / 300))]
    states = [sim.state(t) for t in times]
    for lp in (0, 1):
        meter = [s["loadpoints"][lp]["chargeTotalImport"] for s in states]
        for (a, b), before, after in zip(zip(meter, meter[1:]), states, states[1:]):
            idle = not before["loadpoints"][lp]["charging"] and not after["loadpoints"][lp]["charging"]
            if idle:
                assert b == a                       # nothing charges: the meter stands
            assert b >= a
        charged = sum(r["chargedEnergy"] for r in sim.session_rows(times[-1])
                      if r["loadpoint"] == sim.loadpoints[lp].title and r["finished"]
                      and times[0] <= datetime.fromisoformat(r["created"]).timestamp()
                      and datetime.fromisoformat(r["finished"]).timestamp() <= times[-1])
        assert meter[-1] - meter[0] >= charged - 0.01  # at least every finished session's energy
    garage = [s["loadpoints"][0]["chargeTotalImport"] for s in states]
    heat_pump = [s["loadpoints"][1]["chargeTotalImport"] for s in states]
    assert garage[-1] - garage[0] != heat_pump[-1] - heat_pump[0]
    # a session's meter readings are the loadpoint's meter when it was created and its energy on top
    row = next(r for r in sim.session_rows(times[-1]) if r["meterStart"] is not None and r["finished"])
    created = datetime.fromisoformat(row["created"]).timestamp()
    assert row["meterStart"] == sim.state(created)["loadpoints"][0]["chargeTotalImport"]
    assert row["meterStop"] - row["meterStart"] == pytest.approx(row["chargedEnergy"], abs=0.002)
    pv = [s["pvEnergy"] for s in states]
    night = [(a, b) for (a, b), s in zip(zip(pv, pv[1:]), states) if s["pvPower"] == 0]
    assert night and all(a == b for a, b in night)    # no sun, no PV energy


def test_runs_as_a_process(tmp_path) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "collector.sim.evcc", "--port", str(port),
                             "--version", "0.206"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/api/state", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "simulator did not start"
                time.sleep(0.1)
        assert response.status_code == 200 and "result" in response.json()
        assert httpx.get(f"http://127.0.0.1:{port}/api/tariff/planner", timeout=2).status_code == 404
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def retained(host: str, port: int, root: str, wait: float = 0.5) -> dict[str, str]:
    """Every retained message under `root` as a fresh subscriber receives it."""
    import paho.mqtt.client as mqtt

    seen: dict[str, str] = {}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, m: seen.__setitem__(m.topic, m.payload.decode())
    client.connect(host, port)
    client.subscribe(f"{root}/#")
    client.loop_start()
    time.sleep(wait)
    client.disconnect()
    client.loop_stop()
    return seen


def test_mqtt_as_a_process_publishes_like_evcc_and_cleans_up_on_sigterm(mosquitto) -> None:
    root = "proc/evcc"
    proc = subprocess.Popen([sys.executable, "-m", "collector.sim.evcc", "--port", str(free_port()),
                             "--version", "0.300.6", "--mqtt-host", mosquitto.host,
                             "--mqtt-port", str(mosquitto.port), "--mqtt-root", root],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        topics: dict[str, str] = {}
        while f"{root}/updated" not in topics:
            assert proc.poll() is None and time.monotonic() < deadline, "no cycle published"
            topics = retained(mosquitto.host, mosquitto.port, root)
        assert topics[f"{root}/status"] == "online"
        assert topics[f"{root}/site/version"] == "0.300.6"
        # about 12,040 kWh: "%.5g" leaves five digits and no decimals
        assert len(topics[f"{root}/site/grid/energy"]) == 5 and topics[f"{root}/site/grid/energy"].isdigit()
        proc.terminate()                          # SIGTERM: evcc's shutdown cleanup
        assert proc.wait(timeout=15) == 0
        assert retained(mosquitto.host, mosquitto.port, root) == {f"{root}/status": "offline"}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
