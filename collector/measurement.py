"""Declared measurements: every field has one type and one unit.

InfluxDB refuses a field whose type changes between writes, and InfluxDB 3 fixes a measurement's
tag set on first write. So each source declares its measurements with these types once, the
parse layer builds points only through `Measurement.point`, which coerces every value to its
declared type, and `docs/schema.md` is rendered from the declarations by `schema.py`.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from collector.errors import CollectorError
from collector.layout import BOOL, FLOAT, INT, STRING, Layout
from collector.points import FieldValue, Point

log = logging.getLogger(__name__)


class FieldType(enum.Enum):
    FLOAT = "float"
    INT = "integer"
    BOOL = "boolean"
    STRING = "string"


class CoercionError(CollectorError, ValueError):
    """A value that does not fit its declared field type; the message says how."""


_TRUE_STRINGS = {"true", "1", "yes", "on"}
_FALSE_STRINGS = {"false", "0", "no", "off", "-1"}


def _to_float(value: Any) -> float:
    if type(value) is float:
        result = value
    elif type(value) is int:
        result = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise CoercionError("empty string")
        try:
            result = float(text)
        except ValueError:
            raise CoercionError(f"not a number: {value!r}") from None
    else:
        raise CoercionError(f"expected a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(result):
        raise CoercionError(f"not finite: {value!r}")
    return result


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _to_int(value: Any) -> int:
    """An integer field's value; InfluxDB and the store hold 64-bit integers, nothing wider."""
    result = _to_int_any(value)
    if not INT64_MIN <= result <= INT64_MAX:
        raise CoercionError(f"integer out of the 64-bit range: {value!r}")
    return result


def _to_int_any(value: Any) -> int:
    if type(value) is int:
        return value
    if type(value) is float:
        if not value.is_integer():
            # Counters arrive as 12.0 from some firmware; 12.5 for an integer field is a bug upstream.
            raise CoercionError(f"expected an integer, got {value!r}")
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            as_float = float(text)
        except ValueError:
            raise CoercionError(f"not an integer: {value!r}") from None
        if math.isfinite(as_float) and as_float.is_integer():
            return int(as_float)
        raise CoercionError(f"not an integer: {value!r}")
    raise CoercionError(f"expected an integer, got {type(value).__name__} {value!r}")


def _to_bool(value: Any) -> bool:
    if type(value) is bool:
        return value
    if type(value) in (int, float):
        if value in (0, 1):
            return bool(value)
        raise CoercionError(f"expected a boolean, got {value!r}")
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE_STRINGS:
            return True
        if text in _FALSE_STRINGS:
            return False
    raise CoercionError(f"expected a boolean, got {value!r}")


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if type(value) in (int, float, bool):
        return str(value)
    raise CoercionError(f"expected a string, got {type(value).__name__}")


_PYTHON_TYPE: dict[FieldType, type] = {
    FieldType.FLOAT: float, FieldType.INT: int, FieldType.BOOL: bool, FieldType.STRING: str}


def _getter(positions: list[int]) -> Callable[[tuple], tuple] | None:
    """A C-level picker of these positions that always returns a tuple."""
    if not positions:
        return None
    if len(positions) == 1:
        only = positions[0]
        return lambda row: (row[only],)
    return itemgetter(*positions)


_KIND: dict[FieldType, str] = {FieldType.FLOAT: FLOAT, FieldType.INT: INT, FieldType.BOOL: BOOL,
                               FieldType.STRING: STRING}

_COERCE: dict[FieldType, Callable[[Any], FieldValue]] = {
    FieldType.FLOAT: _to_float,
    FieldType.INT: _to_int,
    FieldType.BOOL: _to_bool,
    FieldType.STRING: _to_str,
}


@dataclass(frozen=True)
class Field:
    name: str
    type: FieldType
    unit: str
    description: str


@dataclass(frozen=True)
class Tag:
    name: str
    description: str


def f(name: str, unit: str, description: str) -> Field:
    """A float field."""
    return Field(name, FieldType.FLOAT, unit, description)


def i(name: str, unit: str, description: str) -> Field:
    """An integer field."""
    return Field(name, FieldType.INT, unit, description)


def b(name: str, description: str) -> Field:
    """A boolean field."""
    return Field(name, FieldType.BOOL, "", description)


def s(name: str, description: str) -> Field:
    """A string field."""
    return Field(name, FieldType.STRING, "", description)


@dataclass
class CoercionReport:
    """What a point builder had to leave out, so a source can count and log it."""

    rejected: list[tuple[str, str]] = field(default_factory=list)  # (field, reason)


@dataclass(frozen=True)
class Measurement:
    name: str
    description: str
    time: str  # what the timestamp means, for the schema document
    tags: tuple[Tag, ...]
    fields: tuple[Field, ...]
    source: str = "collector"
    # Written on change (see `ON_CHANGE`): when, if not always; "" for every sample.
    on_change: str = ""

    def __post_init__(self) -> None:
        tag_names = {t.name for t in self.tags}
        field_names = [fl.name for fl in self.fields]
        if len(set(field_names)) != len(field_names):
            raise ValueError(f"{self.name}: duplicate field names")
        clash = tag_names & set(field_names)
        if clash:
            raise ValueError(f"{self.name}: names used as tag and field: {sorted(clash)}")
        object.__setattr__(self, "_coercers", {fl.name: _COERCE[fl.type] for fl in self.fields})
        object.__setattr__(self, "_tag_names", frozenset(tag_names))
        object.__setattr__(self, "_types", {fl.name: _PYTHON_TYPE[fl.type] for fl in self.fields})
        object.__setattr__(self, "_ready", {})
        object.__setattr__(self, "_layouts", {})
        object.__setattr__(self, "_kinds", {fl.name: _KIND[fl.type] for fl in self.fields})

    @property
    def field_names(self) -> frozenset[str]:
        return frozenset(self._coercers)  # type: ignore[attr-defined]

    def point(
        self,
        tags: Mapping[str, str | None],
        values: Mapping[str, Any],
        time_ns: int,
        report: CoercionReport | None = None,
    ) -> Point | None:
        """Build a point, coercing each value to its declared type.

        None leaves a field out. A value that cannot be coerced is left out and recorded in
        `report` (or logged at debug level). Returns None when no field is left.
        Undeclared tags or fields are programming errors and raise.
        """
        declared = self._as_declared(values)
        if declared is not None:
            out, layout = declared
            return Point(self.name, self._clean_tags(tags), out, time_ns, layout) if out else None
        coercers: dict[str, Callable[[Any], FieldValue]] = self._coercers  # type: ignore[attr-defined]
        out = {}
        for name, value in values.items():
            if value is None:
                continue
            try:
                coerce = coercers[name]
            except KeyError:
                raise KeyError(f"field {name!r} is not declared in measurement {self.name!r}") from None
            try:
                out[name] = coerce(value)
            except CoercionError as exc:
                if report is not None:
                    report.rejected.append((name, str(exc)))
                else:
                    log.debug("%s.%s left out: %s", self.name, name, exc)
        if not out:
            return None
        return Point(self.name, self._clean_tags(tags), out, time_ns, self._layout(tuple(out)))

    def _clean_tags(self, tags: Mapping[str, str | None]) -> dict[str, str]:
        clean_tags: dict[str, str] = {}
        for key, tag_value in tags.items():
            if key not in self._tag_names:  # type: ignore[attr-defined]
                raise KeyError(f"tag {key!r} is not declared in measurement {self.name!r}")
            if tag_value is not None and tag_value != "":
                clean_tags[key] = str(tag_value)
        return clean_tags

    def _layout(self, names: tuple[str, ...]) -> Layout | None:
        """The layout of declared fields `names` in this order (None past a bound on shapes)."""
        layouts: dict = self._layouts  # type: ignore[attr-defined]
        layout = layouts.get(names)
        if layout is None and len(layouts) < 256:
            kinds = self._kinds  # type: ignore[attr-defined]
            layout = layouts[names] = Layout(0, names, "".join(kinds[name] for name in names))
        return layout

    def _as_declared(self, values: Mapping[str, Any]
                     ) -> tuple[dict[str, FieldValue], Layout | None] | None:
        """`values` when each already has its declared type (an integer for a float field is
        made a float), floats finite and integers within 64 bits, with their layout: the
        common case, checked in bulk instead of field by field. None when some value needs
        the coercers."""
        row = tuple(values.values())
        names = tuple(values)
        types = tuple(map(type, row))
        # value types -> [(names, plan)]: types are cheap to hash, names compared on a hit
        ready: dict = self._ready  # type: ignore[attr-defined]
        for known, plan in ready.get(types, ()):  # noqa: B007  (the match is used after the loop)
            if known == names:
                break
        else:
            plan = self._plan(names, types)
            if len(ready) < 256:   # a parser has a few shapes; anything else stays slow
                ready.setdefault(types, []).append((names, plan))
        if plan is False:
            return None
        floats, ints, widen, layout = plan
        try:
            if floats:
                total = sum(floats(row))
                if total - total != 0.0:        # NaN or infinity among them (or an overflow:
                    return None                 # then the coercers decide, value by value)
            if ints:
                chosen = ints(row)
                if min(chosen) < INT64_MIN or max(chosen) > INT64_MAX:
                    return None
            out = dict(values)
            for name in widen:
                out[name] = float(out[name])
        except (OverflowError, ValueError):
            return None
        return out, layout

    def _plan(self, names: tuple[str, ...], types: tuple[type, ...]) -> tuple | bool:
        """For a key order and value types: False if they need coercion, else getters of the
        values whose range needs a look (floats, integers), the integers to make floats and
        the layout of the result."""
        declared = self._types  # type: ignore[attr-defined]
        widen = []
        for name, kind in zip(names, types, strict=False):
            want = declared.get(name)
            if want is float and kind is int:
                widen.append(name)
            elif want is not kind:
                return False
        floats = [k for k, kind in enumerate(types) if kind is float or names[k] in widen]
        ints = [k for k, kind in enumerate(types) if kind is int and names[k] not in widen]
        return (_getter(floats), _getter(ints), tuple(widen), self._layout(names) if names else None)


# What "written on change" means, for the schema document.
ON_CHANGE = ("the time of these points is the poll time, so a value that did not change would "
             "be written again at every poll. A point whose fields all equal its series' last "
             "stored point is therefore not stored (nor sent to InfluxDB) until the source's "
             "`heartbeat` (default 15 min; 0 stores every sample) has passed since that point: "
             "an unchanged value still appears at least once per heartbeat. When the series "
             "changes, the last sample left out is stored with the change (and at a stop; it "
             "is kept in the store meanwhile, so a crash does not lose it), so a value ends "
             "where it was last seen: between points the last value holds, "
             "exactly. Graph with `last()` / `fill(previous)`, and do not count points to "
             "measure time")

_REGISTRY: dict[str, Measurement] = {}


def register(*measurements: Measurement) -> None:
    for m in measurements:
        existing = _REGISTRY.get(m.name)
        if existing is not None and existing != m:
            raise ValueError(f"measurement {m.name!r} declared twice with different contents")
        _REGISTRY[m.name] = m
