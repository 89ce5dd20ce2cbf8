"""SIGKILL at random moments, twenty times, then one more run: the store ends up with exactly
what one undisturbed run collects (no gap, no duplicate) and with the same cursors.

Deterministic by construction: the ev.energy and OVMS simulators run with a frozen clock, so
their histories (status and command logs, historical records) are fixed, and "what an
undisturbed run collects" is well defined. Random kill moments come from a seeded generator.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from collector.sim.base import SimServer
from collector.sim.evenergy import EvEnergySim
from collector.sim.ovms import OvmsSim
from tests.faults.harness import CollectorProcess, read_cursors, read_store, wait_until

KILLS = 20
FROZEN = float(int(time.time()) // 3600 * 3600 - 1800)   # a fixed half past the hour, for both sims
SECRET = "ee-secret-KILL-4711"
OVMS_PASSWORD = "ovms-pass-KILL-0815"


def config(path: Path, store: Path, evenergy_url: str, ovms_url: str) -> Path:
    path.write_text(f"""
[collector]
health_interval = 1
jitter = 0
[store]
path = "{store}"
[sessions]
enabled = false   # derived data carries the time of its run: this test compares what was collected
[sources.evenergy]
client_id = "demo-client"
client_secret = "{SECRET}"
user = "user01HSIMULATEDUSER0000000000"
base_url = "{evenergy_url}/v2"
page_size = 10
max_pages_per_run = 1000
status_interval = "60s"
command_interval = "60s"
backfill = "7d"
[sources.ovms]
url = "{ovms_url}"
username = "demo"
password = "{OVMS_PASSWORD}"
interval = "10s"
history_interval = "60s"
""")
    return path


# Health and the rollups say when the process ran (a rollup computed while a sync was half
# done holds half a day until its next run), not what was collected.
DERIVED = ("collector_health", "rollup_daily", "rollup_monthly")


def collected(store: Path) -> dict:
    return {k: v for k, v in read_store(store).items() if k[0] not in DERIVED}


def cursors(store: Path) -> dict[str, str]:
    # a finished pagination leaves its pending range as "" (or never wrote one)
    return {k: v for k, v in read_cursors(store).items() if v and not k.startswith("rollups:")}


def settled(store: Path, evses: list[str], vehicles: list[str]) -> bool:
    """Every stream has its watermark, no pagination is pending, history cursors exist."""
    if not store.exists():
        return False
    keys = read_cursors(store)
    for evse in evses:
        for stream in ("status_logs", "command_logs"):
            if f"evenergy:{evse}:{stream}" not in keys or keys.get(f"evenergy:{evse}:{stream}:pending"):
                return False
    return all(any(k.startswith(f"ovms:{v}:history:") for k in keys) for v in vehicles)


def run_to_completion(proc: CollectorProcess, store: Path, evses: list[str], vehicles: list[str]) -> None:
    with proc:
        wait_until(lambda: settled(store, evses, vehicles), timeout=60, what="complete sync",
                   proc=proc.proc, log=proc.log)
        # nothing more to come: the count holds still for a while
        before = len(collected(store))
        time.sleep(2.0)
        assert len(collected(store)) == before
        assert proc.stop() == 0


@pytest.mark.slow
def test_twenty_kill_9_then_the_same_contents_as_an_undisturbed_run(tmp_path):
    evenergy = EvEnergySim(evses=2, seed=3, clock=lambda: FROZEN, quota=10**6, history_days=1,
                           status_period=600, client_secret=SECRET)
    ovms = OvmsSim(seed=2, clock=lambda: FROZEN, history_days=3,
                   users={"demo": OVMS_PASSWORD}, idle_timeout=10**9)
    evses = [e.id for e in evenergy.evses]
    vehicles = ["DEMO1", "DEMO2"]
    rng = random.Random(20260101)
    with SimServer(evenergy) as ee_server, SimServer(ovms) as ovms_server:
        calm = tmp_path / "calm.db"
        run_to_completion(CollectorProcess(config(tmp_path / "calm.toml", calm, ee_server.url,
                                                  ovms_server.url), tmp_path / "calm.log"),
                          calm, evses, vehicles)

        store = tmp_path / "killed.db"
        cfg = config(tmp_path / "killed.toml", store, ee_server.url, ovms_server.url)
        log = tmp_path / "killed.log"
        after_kill = []
        for _ in range(KILLS):
            proc = CollectorProcess(cfg, log).start()
            # From just after the imports to past the last first run (jobs start spread over
            # up to 5 s), so kills land before, inside and after every stream's sync.
            time.sleep(rng.uniform(0.6, 5.5))
            assert proc.alive, log.read_text()[-2000:]
            proc.kill()
            after_kill.append(len(collected(store)) if store.exists() else 0)
        run_to_completion(CollectorProcess(cfg, log), store, evses, vehicles)

    expected = collected(calm)
    got = collected(store)
    assert len(expected) > 200
    interrupted = [n for n in after_kill if 0 < n < len(expected)]
    assert interrupted, f"no kill landed inside a sync: the test proves nothing ({after_kill})"
    missing = expected.keys() - got.keys()
    extra = got.keys() - expected.keys()
    assert not missing, sorted(missing)[:5]
    assert not extra, sorted(extra)[:5]
    changed = [k for k in expected if expected[k] != got[k]]
    assert not changed, [(k, expected[k], got[k]) for k in changed[:3]]
    assert cursors(store) == cursors(calm)
    for text in (log.read_text(), (tmp_path / "calm.log").read_text()):
        assert SECRET not in text and OVMS_PASSWORD not in text
