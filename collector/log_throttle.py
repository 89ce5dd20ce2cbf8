"""One log line per kind of problem, then a reminder every `every` seconds with a count.

A charger offline all night, or a field an integration always sends wrong, must not write a
line per poll: the first occurrence is logged, repeats only counted (health counters keep
the full tally) until `every` seconds have passed, when one line says how often it recurred.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

PAYLOAD_WARN_EVERY = 600.0   # seconds between reminders about the same payload problem


@dataclass
class _Seen:
    logged_at: float
    suppressed: int = 0


class LogThrottle:
    def __init__(self, logger: logging.Logger, every: float = 300.0) -> None:
        self.logger = logger
        self.every = every
        self._seen: dict[Hashable, _Seen] = {}

    def log(self, key: Hashable, level: int, message: str, *args: Any) -> bool:
        """Log `message` if `key` is new or its reminder is due; True when a line was written."""
        now = time.monotonic()
        seen = self._seen.get(key)
        if seen is None:
            self.logger.log(level, message, *args)
        elif now - seen.logged_at >= self.every:
            self.logger.log(level, message + " (repeated %d times since the last report)",
                            *args, seen.suppressed + 1)
        else:
            seen.suppressed += 1
            return False
        self._seen[key] = _Seen(now)
        return True

    def forget(self, match: Callable[[Hashable], bool]) -> list[tuple[Hashable, int]]:
        """Drop the keys `match` selects (the problem is over); returns each with its count."""
        gone = [key for key in self._seen if match(key)]
        return [(key, self._seen.pop(key).suppressed + 1) for key in gone]
