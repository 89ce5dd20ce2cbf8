"""Line-protocol escaping of measurement names, tag and field keys, tag values and strings.

Its own module because both ends of a line use it: the point (`points.to_line`, the series
prefix) and the field layout (`layout.Layout`, which compiles a layout's keys into its template).
"""

from __future__ import annotations

from collections.abc import Mapping

_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n"})
_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n"})
# A newline inside a quoted string field is legal line protocol and stored as it is.
_STRING_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"'})


def escape_measurement(name: str) -> str:
    return name.translate(_MEASUREMENT_ESCAPES)


def escape_key(text: str) -> str:
    """Escape a tag key, tag value or field key."""
    return text.translate(_KEY_ESCAPES)


def escape_string(text: str) -> str:
    """The inside of a quoted string field value."""
    return text.translate(_STRING_ESCAPES)


def series_prefix(measurement: str, tags: Mapping[str, str]) -> str:
    """`measurement,tag=value,...` with tags sorted, as InfluxDB prefers them."""
    parts = [escape_measurement(measurement)]
    for key in sorted(tags):
        value = tags[key]
        if value == "":
            continue  # line protocol has no empty tag values; an absent tag means the same
        parts.append(f"{escape_key(key)}={escape_key(value)}")
    return ",".join(parts)
