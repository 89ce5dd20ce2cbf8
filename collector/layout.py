"""Field layouts: a point's field names and value kinds, kept once; its values, kept compact.

A layout is the ordered field names of a point with the kind of each value (float, integer,
boolean, string). The points of one parser share a handful of layouts, so the store keeps each
layout once and a row only its values, and the line-protocol field set of a layout is one
format template, compiled once, instead of work per field and point.

Values are packed (`pack`): the JSON text of the values (floats in their shortest round-trip
form), with `true`/`false` as `t`/`f`, `.0` dropped from whole floats (the layout says they are
floats) and the string values moved to a side column (joined by newlines). What is left is
digits and `. , - t f`: 15 symbols, two to a byte, so a row is half its JSON text and no field
name. Both directions are a few C-level calls (orjson, `bytes.translate`, `binascii`). A row
whose values do not fit (a float with an exponent, a string holding a quote, a backslash or a
control character) is kept as its JSON array instead, which round-trips any value.
"""

from __future__ import annotations

import binascii
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any

import orjson

from collector.escapes import escape_key, escape_string

FieldValue = float | int | bool | str

FLOAT, INT, BOOL, STRING = "f", "i", "b", "s"
KIND_OF: dict[type, str] = {float: FLOAT, int: INT, bool: BOOL, str: STRING}

_SYMBOLS, _NIBBLES = b"0123456789.,-tf", b"0123456789abcde"
# symbol -> hex digit; anything that does not pack -> "z", which no hex digit is
_PACK = bytes(_NIBBLES[_SYMBOLS.index(c)] if c in _SYMBOLS else ord("z") for c in range(256))
_UNPACK = bytes.maketrans(_NIBBLES, _SYMBOLS)
_PAD = b"f"                       # the one nibble no symbol uses: pads an odd count
_PADS = (b"", _PAD)               # by the parity of a row's nibble count
# as _PACK, with the brackets of a JSON array of rows as "y" (neither a nibble nor "z"): the
# rows' separator "],[" becomes b"yby", which no packed row holds
_PACK_ROWS = bytes(ord("y") if c in b"[]" else _PACK[c] for c in range(256))


class Layout:
    """The field names and kinds of a row, and what reading and writing it needs."""

    __slots__ = ("id", "names", "kinds", "template", "order", "strings", "_convert")

    def __init__(self, layout_id: int, names: Sequence[str], kinds: str) -> None:
        if len(names) != len(kinds) or not names:
            raise ValueError(f"a layout needs one kind per field: {names!r} {kinds!r}")
        self.id = layout_id
        self.names = tuple(names)
        self.kinds = kinds
        self.strings = tuple(k for k, kind in enumerate(kinds) if kind == STRING)
        # Fields sorted by name, as InfluxDB documents them: `order` picks the values in that
        # order (in C) for the %-template.
        positions = sorted(range(len(names)), key=lambda k: names[k])
        parts = []
        for index in positions:
            key = escape_key(names[index]).replace("%", "%%")
            kind = kinds[index]
            parts.append(f"{key}=%si" if kind == INT else f"{key}=%s")  # strings come quoted
        self.template = ",".join(parts)
        self.order: Callable[[Sequence[Any]], tuple] = (
            itemgetter(*positions) if len(positions) > 1 else lambda row: (row[0],))
        self._convert: tuple[Callable[[str], FieldValue], ...] = tuple(_CONVERT[k] for k in kinds)

    def __repr__(self) -> str:
        return f"Layout({self.id}, {self.names!r}, {self.kinds!r})"

    # -- line protocol -------------------------------------------------------------------------

    def field_set(self, values: Sequence[FieldValue]) -> str | None:
        """`k=v,...` of Python values in this layout; None if a float is not finite.

        orjson writes the values (floats in their shortest round-trip form, in C); its JSON
        tokens are line-protocol values already, quoted strings included unless they hold a
        quote, a backslash or a control character (JSON escapes those, line protocol
        differently).
        """
        try:
            text = orjson.dumps(values).decode()[1:-1]
        except TypeError:                       # an integer beyond 64 bits, a float subclass
            return self._format(values)
        if "null" in text:                      # NaN or infinity (or "null" in a string)
            if not all(math.isfinite(v) for v, kind in zip(values, self.kinds, strict=False)  # type: ignore[arg-type]
                       if kind == FLOAT):
                return None
        if self.strings:
            if "\\" in text:
                return self._format(values)
            if text.count(",") >= len(values):  # a comma inside a string, not only between values
                parts = text.split('"')
                tokens = "".join(parts[0::2]).split(",")
                for index, value in zip(self.strings, parts[1::2], strict=False):
                    tokens[index] = f'"{value}"'
                return self.template % self.order(tokens)
        return self.template % self.order(text.split(","))

    def _format(self, values: Sequence[FieldValue]) -> str:
        out: list[object] = list(values)
        for k, kind in enumerate(self.kinds):
            if kind == STRING:
                out[k] = '"' + escape_string(values[k]) + '"'  # type: ignore[arg-type]
            elif kind == BOOL:
                out[k] = "true" if values[k] else "false"
        return self.template % self.order(out)

    def text_field_set(self, text: str, strs: str | None) -> str:
        """`k=v,...` of a packed row unpacked to text (`unpack_many`): its tokens are
        line-protocol values already (booleans as `t`/`f`; a packed string holds no quote,
        backslash or control character)."""
        tokens = text.split(",")
        if strs is not None:
            for index, value in zip(self.strings, strs.split("\n"), strict=False):
                tokens[index] = f'"{value}"'
        return self.template % self.order(tokens)

    # -- reading -------------------------------------------------------------------------------

    def tokens(self, vals: bytes, strs: str | None) -> list[str]:
        """The values of a packed row as text: floats and integers as digits, booleans as
        `t`/`f`, strings as they are (a packed string holds no quote or backslash)."""
        tokens = _unpack(vals).split(",")
        if strs is not None:
            for index, value in zip(self.strings, strs.split("\n"), strict=False):
                tokens[index] = value
        return tokens

    def values(self, vals: bytes | str, strs: str | None) -> list[FieldValue]:
        """The values of a row, each of its declared kind."""
        if isinstance(vals, str):
            return orjson.loads(vals)
        return [convert(token)
                for convert, token in zip(self._convert, self.tokens(vals, strs), strict=False)]

    def fields(self, vals: bytes | str, strs: str | None) -> dict[str, FieldValue]:
        return dict(zip(self.names, self.values(vals, strs), strict=False))

    def picker(self, wanted: Sequence[str]) -> Callable[[bytes | str, str | None], list[Any]]:
        """A reader of only the `wanted` fields of a row (None where this layout lacks one)."""
        where = {name: k for k, name in enumerate(self.names)}
        index = [where.get(name) for name in wanted]
        convert = [self._convert[k] if k is not None else None for k in index]

        def pick(vals: bytes | str, strs: str | None) -> list[Any]:
            if isinstance(vals, str):
                row = orjson.loads(vals)
                return [row[k] if k is not None else None for k in index]
            tokens = self.tokens(vals, strs)
            return [c(tokens[k]) if k is not None else None  # type: ignore[misc]
                    for c, k in zip(convert, index, strict=False)]
        return pick


def _bool(token: str) -> bool:
    return token == "t"


_CONVERT: dict[str, Callable[[str], FieldValue]] = {FLOAT: float, INT: int, BOOL: _bool,
                                                    STRING: str}


def kinds_of(values: Iterable[Any]) -> str:
    """One kind code per value; TypeError names a value no field may hold."""
    out = []
    for value in values:
        kind = KIND_OF.get(type(value))
        if kind is None:
            # subclasses (an IntEnum, a str subclass) count as their base kind
            kind = next((code for base, code in ((bool, BOOL), (int, INT), (float, FLOAT),
                                                 (str, STRING)) if isinstance(value, base)), None)
            if kind is None:
                raise TypeError(f"field values must be float, int, bool or str, "
                                f"not {type(value).__name__}: {value!r}"[:200])
        out.append(kind)
    return "".join(out)


def pack(values: Sequence[FieldValue]) -> tuple[bytes | str, str | None]:
    """(packed values, strings or None), or (JSON array text, None) when they do not pack."""
    text = orjson.dumps(values)
    strings = None
    if b'"' in text:
        if b"\\" in text:
            return text.decode(), None
        parts = text.split(b'"')
        text = b"".join(parts[0::2])          # each string leaves an empty value behind
        strings = "\n".join([part.decode() for part in parts[1::2]])
    body = text[1:-1]
    if b"e" in body:                          # true, false (or an exponent: caught below)
        body = body.replace(b"true", b"t").replace(b"false", b"f")
    body = body.replace(b".0,", b",")
    if body.endswith(b".0"):
        body = body[:-2]
    hexed = body.translate(_PACK)
    if b"z" in hexed:                         # an exponent, a null: keep the JSON
        return orjson.dumps(values).decode(), None
    if len(hexed) % 2:
        hexed += _PAD
    return binascii.unhexlify(hexed), strings


def pack_many(rows: Sequence[Sequence[FieldValue]]) -> list[tuple[bytes | str, str | None]]:
    """`pack` of each row, equal to it, in a few C-level calls for the whole list.

    A commit packs every point it stores: one orjson call, a few replacements and one
    translation over all rows, then one `unhexlify` per row, instead of all of `pack` per row.
    Rows holding a string, an exponent or a non-finite float are packed one by one by `pack`.
    """
    if not rows:
        return []
    try:
        text = orjson.dumps(rows)
    except TypeError:                         # an integer beyond 64 bits: `pack` says which
        return [pack(row) for row in rows]
    if b'"' in text:
        return [pack(row) for row in rows]
    body = text[2:-2]
    if b"e" in body:
        body = body.replace(b"true", b"t").replace(b"false", b"f")
    body = body.replace(b".0,", b",").replace(b".0]", b"]")
    if body.endswith(b".0"):
        body = body[:-2]
    hexed = body.translate(_PACK_ROWS)
    if b"z" in hexed:
        return [pack(row) for row in rows]
    unhexlify, pads = binascii.unhexlify, _PADS
    return [(unhexlify(row + pads[len(row) & 1]), None) for row in hexed.split(b"yby")]


def _unpack(vals: bytes) -> str:
    """The value text ("1.5,230,t") of one packed row."""
    return binascii.hexlify(vals).translate(_UNPACK, _PAD).decode("ascii")


def unpack_many(rows: Sequence[bytes]) -> list[str]:
    """The value text ("1.5,230,t") of each packed row, in a few C-level calls for them all:
    a batch read for shipping unpacks its rows at once, not one by one."""
    if not rows:
        return []
    # "|" is no hex digit: it survives the translation and marks where each row ends
    return (b"|".join(map(binascii.hexlify, rows)).translate(_UNPACK, _PAD).decode("ascii")
            .split("|"))


def merge(old: Mapping[str, FieldValue], new: Mapping[str, FieldValue]) -> dict[str, FieldValue]:
    """New values win, old fields stay: what InfluxDB does with two writes of one point."""
    merged = dict(old)
    merged.update(new)
    return merged


__all__ = ["BOOL", "FLOAT", "INT", "STRING", "FieldValue", "Layout", "kinds_of", "merge", "pack",
           "pack_many", "unpack_many"]
