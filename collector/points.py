"""Point, the unit every source produces, and its InfluxDB line-protocol form.

A point's identity is (measurement, tags, time): writing the same identity twice overwrites in
InfluxDB and upserts in the local store, which is what makes re-collection harmless.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Union

FieldValue = Union[float, int, bool, str]


@dataclass(frozen=True, slots=True)
class Point:
    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, FieldValue]
    time_ns: int

    def key(self) -> tuple[str, tuple[tuple[str, str], ...], int]:
        """The identity InfluxDB overwrites on."""
        return (self.measurement, tuple(sorted(self.tags.items())), self.time_ns)


_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n"})
_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n"})
_STRING_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})


def escape_measurement(name: str) -> str:
    return name.translate(_MEASUREMENT_ESCAPES)


def escape_key(text: str) -> str:
    """Escape a tag key, tag value or field key."""
    return text.translate(_KEY_ESCAPES)


def series_prefix(measurement: str, tags: Mapping[str, str]) -> str:
    """`measurement,tag=value,...` with tags sorted, as InfluxDB prefers them."""
    parts = [escape_measurement(measurement)]
    for key in sorted(tags):
        value = tags[key]
        if value == "":
            continue  # line protocol has no empty tag values; an absent tag means the same
        parts.append(f"{escape_key(key)}={escape_key(value)}")
    return ",".join(parts)


class NonFiniteField(ValueError):
    """NaN and infinity cannot be written to InfluxDB; callers drop them and count them."""


def format_field_value(value: FieldValue) -> str:
    # bool before int: bool is a subclass of int.
    if value is True:
        return "true"
    if value is False:
        return "false"
    kind = type(value)
    if kind is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise NonFiniteField(repr(value))
        return repr(value)
    if kind is int:
        return f"{value}i"
    if kind is str:
        return f'"{value.translate(_STRING_ESCAPES)}"'  # type: ignore[union-attr]
    raise TypeError(f"unsupported field value type {kind.__name__}: {value!r}")


_ESCAPED_FIELD_KEYS: dict[str, str] = {}  # field names come from declared schemas: few


def field_set(fields: Mapping[str, FieldValue]) -> tuple[str, int]:
    """The `k=v,...` part and the number of non-finite values dropped from it."""
    parts = []
    dropped = 0
    escaped = _ESCAPED_FIELD_KEYS
    isfinite = math.isfinite
    for key in sorted(fields):
        ekey = escaped.get(key)
        if ekey is None:
            ekey = escape_key(key)
            if len(escaped) < 10_000:
                escaped[key] = ekey
        value = fields[key]
        kind = type(value)
        # float and int inline: the hot path for a fleet's worth of points
        if kind is float:
            if isfinite(value):  # type: ignore[arg-type]
                parts.append(f"{ekey}={value!r}")
            else:
                dropped += 1
        elif kind is int:
            parts.append(f"{ekey}={value}i")
        else:
            try:
                parts.append(f"{ekey}={format_field_value(value)}")
            except NonFiniteField:
                dropped += 1
    return ",".join(parts), dropped


def to_line(point: Point) -> str | None:
    """One line of line protocol, or None when no writable field is left."""
    fields, _ = field_set(point.fields)
    if not fields:
        return None
    return f"{series_prefix(point.measurement, point.tags)} {fields} {point.time_ns}"
