"""24 simulated hours, 20 EVSEs, one client: the hourly quota holds and every EVSE's data arrives."""

from __future__ import annotations

import bisect
import time

from freezegun import freeze_time

from collector.schedule import JobRunner
from collector.sim.evenergy import EvEnergySim
from collector.sources.evenergy.parse import parse_time_ns
from tests.sources.evenergy.conftest import run_schedule
from tests.virtual_time import run_frozen

DAY = 86400.0


def test_a_day_of_twenty_evses_stays_inside_the_quota_and_loses_nothing(make_rig):
    with freeze_time("2024-05-01 00:00:00") as clock:
        sim = EvEnergySim(evses=20, quota=1000, token_ttl=10 * 3600)
        # No EVSE list: discovery included. 20 x (20 + 4) polls per hour plus a 7-day backfill
        # of ~430 pages: more than the 900 usable requests in the first hour.
        rig = make_rig(sim, status_interval="3m", command_interval="15m", backfill="7d")
        start = time.time()
        requests_at: list[float] = []
        handle = sim.handle

        def counting(request):
            if request.path.startswith("/v2/"):
                requests_at.append(time.time())
            return handle(request)

        sim.handle = counting  # type: ignore[method-assign]

        async def day() -> int:
            await rig.source.start()
            runner = JobRunner(rig.health)
            return await run_schedule(list(rig.source.jobs()), runner, DAY)

        runs = run_frozen(day(), clock)
        end = time.time()

        assert sim.stats["429"] == 0
        # No rolling hour ever carried more than the usable 90% of the quota.
        busiest = max(bisect.bisect_left(requests_at, s + 3600) - n for n, s in enumerate(requests_at))
        assert busiest <= 900
        assert rig.health.get("evenergy", "polls_failed") == 0
        # Every EVSE's data arrived: all of the backfill window up to the last hour. (The window
        # reaches 7 days back from a stream's first granted request, which the budget may have
        # delayed by a few minutes at the start: its first hour is not asserted.)
        lo, hi = (start - 7 * DAY + 3600) * 1e9, (end - 3600) * 1e9
        for evse in sim.evses:
            stored = set(rig.stored("evenergy_status", evse.id))
            truth = {parse_time_ns(i["sampled_at"]) for i in sim.status_logs(evse.id, start - 7 * DAY)}
            assert {t for t in truth if lo <= t <= hi} <= stored <= truth, evse.id
            commands = set(rig.stored("evenergy_command", evse.id))
            truth = {parse_time_ns(i["logged_at"]) for i in sim.command_logs(evse.id, start - 7 * DAY)}
            assert {t for t in truth if lo <= t <= hi} <= commands <= truth, evse.id
        # ...and the tokens were renewed before they expired.
        assert sim.stats["401"] == 0 and rig.source.client.token_fetches >= 3
        print(f"\n{runs} job runs, {len(requests_at)} requests in 24 h, busiest hour {busiest}")
