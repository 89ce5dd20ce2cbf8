"""Bookmarks: where a stream left off, declared once per stream.

A source commits its cursors with its points (one transaction, `PointWriter.write`) and reads
them back at start through a `CursorReader` (the store, lent narrowly). Each stream declares its
`Bookmark` once, in its source package: the key (a format with the stream's identity, e.g.
`"goe:{serial}:last_modified"`) and how a value is written and read. The source's jobs and the
demo's history generator both use that declaration, so a history leaves the bookmarks a
collector continues from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")


class CursorReader(Protocol):
    """What a source may read of the store: committed cursors, by key."""

    def cursor(self, key: str) -> str | None: ...


@dataclass(frozen=True)
class Bookmark(Generic[T]):
    """One stream's cursor: its key, and its value's text form both ways."""

    key_format: str                       # e.g. "ovms:{vehicle}:history:{record_type}"
    encode: Callable[[T], str]
    decode: Callable[[str], T | None]     # None: the stored text is unreadable

    def key(self, **identity: str) -> str:
        return self.key_format.format(**identity)

    def entry(self, value: T, **identity: str) -> dict[str, str]:
        """`{key: text}`, for the cursors committed with a stream's points."""
        return {self.key(**identity): self.encode(value)}

    def read(self, cursors: CursorReader, **identity: str) -> T | None:
        """The stored value; None when there is none or it is unreadable."""
        text = cursors.cursor(self.key(**identity))
        return None if text is None else self.decode(text)


def text_bookmark(key_format: str) -> Bookmark[str]:
    """A bookmark whose value is the text itself (a server's own time stamp, a unit)."""
    return Bookmark(key_format, str, str)


def int_or_none(text: str) -> int | None:
    return int(text) if text.isdigit() else None


__all__ = ["Bookmark", "CursorReader", "int_or_none", "text_bookmark"]
