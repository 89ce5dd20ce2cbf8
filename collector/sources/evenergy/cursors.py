"""ev.energy's bookmarks: each log stream's watermark and unfinished range, the EVSE list."""

from __future__ import annotations

import json
from typing import Any

from collector.bookmarks import Bookmark
from collector.sources.evenergy.parse import format_time, parse_time_ns


def _ids(text: str) -> list[str] | None:
    try:
        found = json.loads(text)
    except ValueError:
        return None
    return [e for e in found if isinstance(e, str)] if isinstance(found, list) else None


def _encode_pending(state: dict[str, Any] | None) -> str:
    return json.dumps(state) if state else ""     # "": no range pending


def _decode_pending(text: str) -> dict[str, Any] | None:
    try:
        state = json.loads(text) if text else None
    except ValueError:
        return None
    if isinstance(state, dict) and isinstance(state.get("gte"), int) and isinstance(state.get("lte"), int):
        return state
    return None


# EVSEs the client discovered, kept for the next start
EVSES = Bookmark("evenergy:{client}:evses", json.dumps, _ids)
# per EVSE and stream (`status_logs`, `command_logs`): the newest log time committed, in ns
WATERMARK = Bookmark("evenergy:{evse}:{stream}", format_time, parse_time_ns)
# the range a sync has paged half through ({"gte", "lte", "hi"}), resumed first next run
PENDING: Bookmark[dict[str, Any] | None] = Bookmark("evenergy:{evse}:{stream}:pending",
                                                    _encode_pending, _decode_pending)
