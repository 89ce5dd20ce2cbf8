"""Simulators answering with faults: the collector keeps running, logs one clear line per
kind, counts each in collector_health, and writes nothing wrong."""

from __future__ import annotations

import asyncio
import logging
import math
import time

import pytest

from freezegun import freeze_time

from collector.schedule import JobRunner
from collector.measurement import FieldType
from collector.schema import all_measurements
from collector.sim.base import SimServer, mock_transport
from collector.sources import ovms
from collector.sim.faults import FaultySim
from collector.sim.goe import GoeSimulator
from tests.faults.harness import (CollectorProcess, assert_no_secrets, goe_config, last_health,
                                  problem_lines, read_store, wait_until)
from tests.sources.ovms.helpers import make_config, make_context, make_sim

TOKEN = "tok-goe-faults-SECRET-9b1d"

# fault -> (health counter it must raise, words its log line must contain)
GOE_FAULTS = {
    "truncated_json": ("errors_payload", "not JSON"),
    "html_200": ("errors_payload", "not JSON"),
    "wrong_types": ("errors_payload", None),
    "missing_keys": (None, None),             # an older firmware: fewer fields, not an error
    "extra_keys": (None, None),               # unknown keys are ignored: nothing to report
    "huge_numbers": ("errors_payload", None),
    "nan": ("errors_payload", "not JSON"),
    "empty_body": ("errors_payload", "not JSON"),
    "slow": ("errors_transient", "timed out"),
    "reset": ("errors_transient", None),
    "status_500": ("errors_transient", "HTTP 500"),
    "status_502": ("errors_transient", "HTTP 502"),
    "status_503": ("errors_transient", "HTTP 503"),
    "status_429_retry_after": ("errors_rate_limited", "HTTP 429"),
    "expired_auth": ("errors_config", "HTTP 401"),
}


def check_types(stored: dict) -> None:
    """Every stored value has its field's declared type, and no value is NaN or infinite."""
    declared = {m.name: {f.name: f.type for f in m.fields} for m in all_measurements()}
    python = {FieldType.FLOAT: float, FieldType.INT: int, FieldType.BOOL: bool, FieldType.STRING: str}
    for (measurement, tags, time_ns), fields in stored.items():
        for name, value in fields.items():
            expected = python[declared[measurement][name]]
            assert type(value) is expected, (measurement, tags, time_ns, name, value)
            if type(value) is float:
                assert math.isfinite(value), (measurement, name, value)
            if type(value) is int:
                assert -(2**63) <= value < 2**63, (measurement, name, value)


@pytest.mark.slow
def test_goe_faults_are_logged_counted_and_never_stored(tmp_path):
    sim = GoeSimulator.fleet(2, seed=5, token=TOKEN)
    faulty = FaultySim(sim)
    store = tmp_path / "store.db"
    with SimServer(faulty) as server:
        config = goe_config(tmp_path / "c.toml", store, server.url, TOKEN, collector="jitter = 0",
                            goe='timeout = "2s"')
        with CollectorProcess(config, tmp_path / "collector.log") as collector:
            wait_until(lambda: sim.count("000001") >= 2 and sim.count("000002") >= 2,
                       what="first polls", proc=collector.proc, log=collector.log)
            for kind in GOE_FAULTS:
                # twice in a row (the second must not log again); a 429 blocks the charger for
                # its Retry-After, and a 401 is asked again only after 10 s: once
                once = kind.startswith("status_429") or kind == "expired_auth"
                faulty.arm(kind, times=1 if once else 2, match="/000001/")
                wait_until(lambda: faulty.pending == 0, what=f"{kind} served", proc=collector.proc,
                           log=collector.log)
                # a good answer in between, so every kind starts a new failure episode
                served = sim.count("000001")
                wait_until(lambda: sim.count("000001") >= served + 1, timeout=20,
                           what=f"a good poll after {kind}", proc=collector.proc, log=collector.log)
            # 429 without Retry-After on the second charger: it waits, the first goes on
            faulty.arm("status_429", times=1, match="/000002/")
            wait_until(lambda: faulty.pending == 0, what="429 served", proc=collector.proc,
                       log=collector.log)
            after = sim.count("000001")
            wait_until(lambda: sim.count("000001") >= after + 2, what="polls after the faults",
                       proc=collector.proc, log=collector.log)
            time.sleep(1.5)                 # one more health sample
            assert collector.alive
            assert collector.stop() == 0

    lines = collector.lines()
    text = "\n".join(lines)
    assert_no_secrets([TOKEN], collector.log, store)
    assert "Traceback" not in text

    # one line per kind of problem, and no more: two faults in a row make one line, not two
    # (429 is logged at INFO: waiting as told is not a malfunction)
    reported = [kind for kind, (counter, _) in GOE_FAULTS.items() if counter]
    about_charger = [line for line in lines if "000001" in line and "recovered" not in line
                     and " DEBUG " not in line]
    # (two lines of slack: on a loaded CI machine a good answer can time out too)
    assert len(reported) <= len(about_charger) <= len(reported) + 2, "\n".join(about_charger)
    assert len(problem_lines(about_charger)) <= len(reported) + 1, "\n".join(about_charger)
    for kind, (_, words) in GOE_FAULTS.items():
        if words:
            assert any(words in line for line in about_charger), f"{kind}: no line with {words!r}"
    assert any("000002" in line and "HTTP 429" in line for line in lines)

    health = last_health(store, "goe")
    counts = {kind: 0 for kind in ("errors_payload", "errors_transient", "errors_rate_limited",
                                   "errors_config")}
    for kind, (counter, _) in GOE_FAULTS.items():
        if counter:
            # a reset on a kept-alive connection is retried once by the transport, as
            # browsers do: two armed resets may make one failed poll
            counts[counter] += 1 if kind.startswith("status_429") or kind in ("reset", "expired_auth") else 2
    counts["errors_rate_limited"] += 1
    for counter, minimum in counts.items():
        # a payload fault may be counted per field as well as per response
        assert health.get(counter, 0) >= minimum, (counter, health)
    assert health["polls"] > 2 * len(GOE_FAULTS)
    assert health.get("polls_late", 0) >= 1          # the slow answers outlasted the interval

    stored = read_store(store)
    check_types(stored)
    # what was stored is what the chargers said: compared with the simulator's truth
    goe = {k: v for k, v in stored.items() if k[0] == "goe_status"}
    assert len(goe) > 10
    for (_, tags, time_ns), fields in goe.items():
        charger = sim.chargers[dict(tags)["serial"]]
        second = time_ns // 1_000_000_000
        truth = charger.state(int(second - sim.epoch), second)
        if "energy_total_wh" in fields:
            assert fields["energy_total_wh"] == truth["eto"]
        if "car_state" in fields:
            assert fields["car_state"] == truth["car"]
        # a number where a string was expected is kept as its text (the schema's string rule)
        assert fields.get("firmware_version", charger.firmware) in (charger.firmware, "12345")


def test_an_ovms_poll_the_limiter_refuses_in_an_outage_is_not_a_recovery(tmp_path, caplog):
    # The OVMS server fails every status request. A run the limiter refuses (a second run
    # within its 10 s floor) sends nothing: it must not log "recovered", or the next
    # failure is logged again as a new one, over and over.
    faulty = FaultySim(make_sim())
    faulty.arm("status_503", times=1000, match="/api/status/")
    ctx = make_context(tmp_path / "s.db", mock_transport(faulty))
    source = ovms.build(make_config(vehicles=["DEMO1"], streams=["status"], history=False), ctx)
    job = source.jobs()[0]

    async def outage() -> None:
        runner = JobRunner(ctx.health)
        with freeze_time("2026-11-20 12:00:00") as frozen:
            for _ in range(6):
                await runner.run(job)          # fails (503)
                frozen.tick(2)
                await runner.run(job)          # refused by the limiter: skipped
                frozen.tick(10)
        await source.close()

    with caplog.at_level(logging.INFO):
        asyncio.run(outage())
    assert ctx.health.get("ovms", "errors_transient") == 6
    assert ctx.health.get("ovms", "polls_skipped") == 6
    assert "recovered" not in caplog.text
    assert len([r for r in caplog.records if "HTTP 503" in r.getMessage()]) == 1
