"""One line per kind of problem, then a reminder with a count; freezegun drives the clock."""

from __future__ import annotations

import logging

from freezegun import freeze_time

from collector.log_throttle import LogThrottle

log = logging.getLogger("tests.throttle")


def test_a_problem_is_logged_once_then_reminded_with_its_count(caplog) -> None:
    throttle = LogThrottle(log, every=300.0)
    with freeze_time("2026-11-21 09:00:00") as frozen, caplog.at_level(logging.INFO):
        written = [throttle.log("offline", logging.ERROR, "charger %s offline", "000001")
                   for _ in range(10)]
        throttle.log("other", logging.WARNING, "another kind")
        frozen.tick(301)
        throttle.log("offline", logging.ERROR, "charger %s offline", "000001")
    assert written == [True] + [False] * 9
    assert [r.getMessage() for r in caplog.records] == [
        "charger 000001 offline", "another kind",
        "charger 000001 offline (repeated 10 times since the last report)"]


def test_forget_ends_a_problem_and_returns_how_often_it_happened() -> None:
    throttle = LogThrottle(log)
    for _ in range(3):
        throttle.log(("job", "timeout"), logging.WARNING, "timed out")
    throttle.log(("other job", "timeout"), logging.WARNING, "timed out")
    assert throttle.forget(lambda key: key[0] == "job") == [(("job", "timeout"), 3)]
    assert throttle.log(("job", "timeout"), logging.WARNING, "timed out")   # a new episode
    assert not throttle.log(("other job", "timeout"), logging.WARNING, "timed out")
