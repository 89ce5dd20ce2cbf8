"""How a source's data sums up over time: the declarations the rollups and the export read.

A source declares, per measurement, the tag that identifies the device and which field is a
meter, which a power to integrate, which a reading to keep, or which points are events to
count (`Device`, `Events`, `Parked`, for `collector/rollups/`), and which fields are energy
counters for the export's daily and monthly sums (`CounterSpec`). Nothing here does I/O or
names a source; each source's declarations live in its package (`counters.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Tags = Mapping[str, str]
Fields = Mapping[str, Any]

# The longest step between two samples still integrated (power) or held (a price): longer
# steps are holes in the data.
MAX_GAP_S = 900.0


@dataclass(frozen=True)
class Device:
    """A device sampled over time: meters, powers, levels and readings, per period."""

    measurement: str
    kind: str                                         # charger, loadpoint, site, vehicle
    identity: Callable[[Tags], str | None]            # source identity, e.g. goe:012345
    meters: Mapping[str, str] = field(default_factory=dict)        # output -> counter field
    integrals: Mapping[str, tuple[str, Literal["all", "positive", "negative"]]] = \
        field(default_factory=dict)                                # output -> (power field, part)
    means: Mapping[str, str] = field(default_factory=dict)         # output -> level field
    latest: Mapping[str, str] = field(default_factory=dict)        # output -> reading field
    # Lifetime meters only: read just the samples either side of each midnight, so a run costs
    # the same whatever the polling rate (a charger polled every second has 86,400 a day).
    sparse: bool = False

    @property
    def fields(self) -> tuple[str, ...]:
        names = [*self.meters.values(), *(p for p, _ in self.integrals.values()),
                 *self.means.values(), *self.latest.values()]
        return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class Events:
    """One point per event (a session, a trip), counted and summed in the period of its time.

    `identity` may read fields too (a session's vehicle is a field); `named` says it already
    returns the name the rollups use (the sessions job named it), not a source identity.
    """

    measurement: str
    kind: str
    identity: Callable[[Tags, Fields], str | None]
    fields: tuple[str, ...]
    count: str | None = None
    sums: Mapping[str, Callable[[Fields], float | None]] = field(default_factory=dict)
    latest: Mapping[str, str] = field(default_factory=dict)       # output -> string field
    where: Callable[[Fields], bool] | None = None
    named: bool = False


@dataclass(frozen=True)
class Parked:
    """Vampire drain: state of charge (and range) lost between readings while the vehicle is
    neither driving nor charging, as `activity` fields say."""

    kind: str
    identity: Callable[[Tags], str | None]
    level: tuple[str, str]                            # (measurement, state-of-charge field)
    range: tuple[str, str] | None                     # (measurement, range field)
    activity: tuple[tuple[str, str], ...]             # (measurement, field): true/charging = active
    active_states: frozenset[str] = frozenset()       # string values of an activity field that count


def num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    return float(value) if isinstance(value, (int, float)) else None


def field_value(name: str) -> Callable[[Fields], float | None]:
    return lambda fields: num(fields.get(name))


def share(energy: str, pct: str) -> Callable[[Fields], float | None]:
    def value(fields: Fields) -> float | None:
        e, p = num(fields.get(energy)), num(fields.get(pct))
        return e * p / 100.0 if e is not None and p is not None else None
    return value


Spec = Device | Events | Parked


@dataclass(frozen=True)
class CounterSpec:
    """A source's energy counters for the export: which field gives which energy column."""

    measurement: str
    identity: Callable[[dict[str, str]], str]
    counters: tuple[tuple[str, str], ...]   # (field, output column)
