"""OVMS's bookmarks: message times per stream, the module's units, the history per record type."""

from __future__ import annotations

from collector.bookmarks import Bookmark, text_bookmark

# the server's time of the newest message committed, per vehicle, stream and message kind
MSGTIME = text_bookmark("ovms:{vehicle}:msgtime:{stream}:{kind}")
# the distance units the vehicle's S message gave: "K" or "M"
UNITS = Bookmark("ovms:{vehicle}:units", str, lambda text: text if text in ("K", "M") else None)
# the newest `h_timestamp` committed, per vehicle and record type
HISTORY = text_bookmark("ovms:{vehicle}:history:{record_type}")
