"""The go-eCharger's bookmark: the time of the newest status committed per charger."""

from __future__ import annotations

from collector.bookmarks import Bookmark, int_or_none

# the status's own time stamp (ns), so a restart does not write the same status again
STATUS_TIME = Bookmark("goe:{serial}:last_modified", str, int_or_none)
