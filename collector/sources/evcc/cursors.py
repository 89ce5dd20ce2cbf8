"""evcc's bookmark: where the session sync continues."""

from __future__ import annotations

from collector.bookmarks import Bookmark
from collector.sources.evcc.parse import format_time_ns, parse_time_ns

# the `created` of the newest finished session (or of the oldest running one), in ns
SESSIONS = Bookmark("evcc:{site}:sessions", format_time_ns, parse_time_ns)
