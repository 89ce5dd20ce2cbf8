"""Expired tokens and sessions on the sources that log in: the
collector logs in again by itself, counts nothing as a configuration error, keeps collecting,
and never logs a secret, token or session cookie."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from collector.sim.base import SimServer
from collector.sim.evenergy import EvEnergySim
from collector.sim.faults import FaultySim
from collector.sim.ovms import OvmsSim
from tests.faults.harness import (CollectorProcess, assert_no_secrets, last_health, problem_lines,
                                  read_store, wait_until)

SECRET = "ee-secret-AUTH-1123"
OVMS_PASSWORD = "ovms-pass-AUTH-5813"


def config(path: Path, store: Path, evenergy_url: str, ovms_url: str) -> Path:
    path.write_text(f"""
[collector]
health_interval = 1
[store]
path = "{store}"
[sources.evenergy]
client_id = "demo-client"
client_secret = "{SECRET}"
user = "user01HSIMULATEDUSER0000000000"
base_url = "{evenergy_url}/v2"
backfill = "1d"
[sources.ovms]
url = "{ovms_url}"
username = "demo"
password = "{OVMS_PASSWORD}"
interval = "10s"
history = false
""")
    return path


@pytest.mark.slow
def test_expired_tokens_and_sessions_log_in_again_quietly(tmp_path):
    evenergy = EvEnergySim(evses=1, seed=9, client_secret=SECRET)
    faulty = FaultySim(evenergy)
    # the first status page finds its token expired
    faulty.arm("expired_auth", times=1, match="/status_logs")
    ovms = OvmsSim(seed=4, users={"demo": OVMS_PASSWORD})
    store = tmp_path / "store.db"
    sessions: set[str] = set()
    with SimServer(faulty) as ee_server, SimServer(ovms) as ovms_server:
        cfg = config(tmp_path / "c.toml", store, ee_server.url, ovms_server.url)
        with CollectorProcess(cfg, tmp_path / "collector.log") as collector:
            wait_until(lambda: ovms.logins >= 1 and faulty.pending == 0, what="first polls",
                       proc=collector.proc, log=collector.log)
            wait_until(lambda: any(k[0] == "evenergy_status" for k in read_store(store)),
                       what="ev.energy status logs after the expired token",
                       proc=collector.proc, log=collector.log)
            time.sleep(1.0)
            sessions |= set(ovms.sessions)
            ovms.sessions.clear()                  # the server forgets every session
            polled = len(ovms.requests)
            wait_until(lambda: ovms.logins >= 2 and len(ovms.requests) > polled + 2, timeout=25,
                       what="an OVMS poll after the session expired", proc=collector.proc,
                       log=collector.log)
            time.sleep(1.5)
            sessions |= set(ovms.sessions)
            assert collector.stop() == 0

    assert evenergy.stats["token_requests"] == 2   # the first, and one after the 401
    lines = collector.lines()
    assert_no_secrets([SECRET, OVMS_PASSWORD, *evenergy._tokens, *sessions], collector.log, store)
    assert not problem_lines(lines), "\n".join(problem_lines(lines))
    for source in ("evenergy", "ovms"):
        health = last_health(store, source)
        assert health.get("errors_config", 0) == 0, (source, health)
    stored = read_store(store)
    assert any(k[0] == "evenergy_status" for k in stored)
    assert any(k[0].startswith("ovms_") for k in stored)
