"""Run in a process of its own by test_crash: sync ev.energy streams until they are complete.

`python -m tests.sources.evenergy.sync_child STORE BASE_URL USER EVSE...`
"""

from __future__ import annotations

import asyncio
import logging
import sys

from collector.health import Health
from collector.limits import Limits
from collector.sources.base import SourceContext
from collector.sources.evenergy import Config, build
from collector.sources.evenergy.source import STREAMS
from collector.store import Store
from collector.writer import PointWriter


async def main(store_path: str, base_url: str, user: str, evses: list[str]) -> int:
    store = Store(store_path)
    health = Health()
    ctx = SourceContext(cursors=store, writer=PointWriter(store, health), limits=Limits(), health=health)
    config = Config(client_id="demo-client", client_secret="demo-secret", user=user,
                    base_url=base_url, evses=tuple(evses), page_size=20, backfill="2d",
                    max_pages_per_run=1000)
    source = build(config, ctx)
    try:
        for evse in evses:
            for stream in STREAMS:
                for _ in range(10):
                    if (await source.sync(evse, stream)).complete:
                        break
                else:
                    return 1
    finally:
        await source.close()
        store.close()
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])))
