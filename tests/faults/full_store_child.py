"""The collector with a store that can run out of space, for test_full_store.

`python -m tests.faults.full_store_child MAX_PAGES collector-cli-args...`: the store's SQLite
connection gets `PRAGMA max_page_count = MAX_PAGES` (SQLite then fails writes with "database
or disk is full", as on a full filesystem); SIGUSR1 gives the space back. A size-limited
tmpfs would need privileges this test must not assume.
"""

from __future__ import annotations

import signal
import sys

from collector import store as store_module
from collector.cli import main

_stores: list[store_module.Store] = []
_original_init = store_module.Store.__init__
MAX_PAGES = int(sys.argv[1])


def _init(self: store_module.Store, *args: object, **kwargs: object) -> None:
    _original_init(self, *args, **kwargs)
    with self._lock:
        self._db.execute(f"PRAGMA max_page_count = {MAX_PAGES}")
    _stores.append(self)


def _space_returns(*_: object) -> None:
    for store in _stores:
        with store._lock:
            store._db.execute("PRAGMA max_page_count = 1073741823")


if __name__ == "__main__":
    store_module.Store.__init__ = _init  # type: ignore[method-assign]
    signal.signal(signal.SIGUSR1, _space_returns)
    sys.exit(main(sys.argv[2:]))
