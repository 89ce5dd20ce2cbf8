import time

from freezegun import freeze_time

from collector.limits import IntervalLimiter, Limits, QuotaBudget


def test_interval_limiter_never_grants_a_key_faster_than_its_interval():
    with freeze_time("2024-01-01 00:00:00") as clock:
        limiter = IntervalLimiter()
        limiter.set_interval("goe:1", 1.0)
        limiter.set_interval("goe:1", 0.2)  # a laxer job on the same charger does not loosen it
        grants = []
        for _ in range(100):                 # 10 s in steps of 0.1 s, five callers each step
            for _ in range(5):
                if limiter.try_acquire("goe:1") == 0.0:
                    grants.append(time.time())
            clock.tick(0.1)
        assert len(grants) == 10
        assert all(b - a >= 1.0 - 1e-9 for a, b in zip(grants, grants[1:]))


def test_interval_limiter_keys_are_independent():
    with freeze_time("2024-01-01"):
        limiter = IntervalLimiter()
        limiter.set_interval("a", 1.0)
        limiter.set_interval("b", 1.0)
        assert limiter.try_acquire("a") == 0.0
        assert limiter.try_acquire("b") == 0.0
        assert 0.99 < limiter.try_acquire("a") <= 1.0


def test_quota_budget_holds_over_a_rolling_hour_and_keeps_the_reserve():
    with freeze_time("2024-01-01 00:00:00") as clock:
        budget = QuotaBudget(limit=100, reserve=0.1)
        granted = []
        for _ in range(3 * 3600):           # three hours, a caller every second
            if budget.try_acquire() == 0.0:
                granted.append(time.time())
            clock.tick(1)
        # never more than the usable 90 in any rolling hour
        j = 0
        for k, t in enumerate(granted):
            while granted[j] <= t - 3600:
                j += 1
            assert k - j + 1 <= 90
        assert len(granted) >= 3 * 90 - 5   # and it does use what it may


def test_quota_budget_spreads_requests_instead_of_bursting():
    with freeze_time("2024-01-01 00:00:00") as clock:
        budget = QuotaBudget(limit=1000, reserve=0.1)
        granted_first_minute = 0
        for _ in range(600):
            if budget.try_acquire() == 0.0:
                granted_first_minute += 1
            clock.tick(0.1)
        # 900 usable per hour is 15 per minute, plus a burst of 5% (45)
        assert granted_first_minute <= 15 + 45 + 1


def test_quota_budget_believes_the_server_when_it_reports_less():
    with freeze_time("2024-01-01"):
        budget = QuotaBudget(limit=1000, reserve=0.1)
        budget.observe(limit=1000, remaining=100)   # another app of this client spent the rest
        assert budget.try_acquire() > 0
        budget.observe(limit=1000, remaining=500)
        assert budget.try_acquire() == 0.0
        assert budget.remaining() == 499


def test_retry_after_blocks_the_budget():
    with freeze_time("2024-01-01") as clock:
        budget = QuotaBudget(limit=1000)
        budget.block_for(30)
        assert 29 < budget.try_acquire() <= 30
        clock.tick(31)
        assert budget.try_acquire() == 0.0


def test_limits_share_one_budget_per_key():
    limits = Limits()
    assert limits.quota("evenergy:client", 1000) is limits.quota("evenergy:client", 1000)


def test_quota_budget_probes_a_stale_server_figure_instead_of_waiting_forever():
    # The server's figure is only refreshed by a response: if a low figure stopped every
    # request, the budget would never hear that the server's rolling hour has freed up.
    with freeze_time("2024-01-01") as clock:
        budget = QuotaBudget(limit=1000, reserve=0.1, probe_interval=300)
        budget.observe(limit=1000, remaining=50)      # another app spent the rest
        wait = budget.try_acquire()
        assert 0 < wait <= 300
        clock.tick(wait)
        assert budget.try_acquire() == 0.0             # one probe from the reserve
        assert budget.try_acquire() > 0                # not two before the answer
        budget.observe(limit=1000, remaining=800)      # the window has freed up
        assert budget.try_acquire() == 0.0


def test_quota_budget_never_probes_when_the_server_said_nothing_is_left():
    with freeze_time("2024-01-01") as clock:
        budget = QuotaBudget(limit=1000, reserve=0.1, probe_interval=300)
        budget.observe(limit=1000, remaining=0)
        clock.tick(600)
        assert budget.try_acquire() > 0
        clock.tick(3600)                               # the figure is older than the window
        assert budget.try_acquire() == 0.0
