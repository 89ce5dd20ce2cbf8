"""`[sessions]`: how charging sessions are derived and priced, and who they are stated for.

Sessions are derived whether or not the section exists; it only tunes them: names for
chargers, vehicles and cards, a tariff, and the holder details a monthly statement shows.
"""

from __future__ import annotations

import re
from datetime import time
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from collector.config_types import Duration, Model

_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_HHMM = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")


def _parse_hhmm(text: str) -> time:
    match = _HHMM.match(text)
    if not match:
        raise ValueError(f"expected a time as HH:MM, got {text!r}")
    hour, minute = int(match.group(1)), int(match.group(2))
    if hour == 24:
        if minute:
            raise ValueError(f"expected a time as HH:MM, got {text!r}")
        return time(0, 0)
    return time(hour, minute)


class TouEntry(Model):
    start: str                   # "07:00"
    end: str                     # "22:00"; end <= start wraps past midnight
    price: float = Field(ge=0)
    days: list[str] = Field(default_factory=lambda: list(_DAYS))

    @field_validator("start", "end")
    @classmethod
    def _time(cls, value: str) -> str:
        _parse_hhmm(value)
        return value

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        bad = [d for d in value if d.lower() not in _DAYS]
        if bad:
            raise ValueError(f"unknown day(s) {bad}: use {', '.join(_DAYS)}")
        return [d.lower() for d in value]

    def rule(self):
        from collector.sessions.pricing import TouRule

        return TouRule(_parse_hhmm(self.start), _parse_hhmm(self.end), self.price,
                       frozenset(_DAYS.index(d) for d in self.days))


class ChargerEntry(Model):
    goe: str | None = None        # serial
    evcc: str | None = None       # "<site>/<loadpoint title>"
    evenergy: str | None = None   # EVSE id
    vehicles: list[str] = Field(default_factory=list)  # the cars that charge here

    def identities(self) -> list[str]:
        return [f"{kind}:{value}" for kind, value in
                (("goe", self.goe), ("evcc", self.evcc), ("evenergy", self.evenergy)) if value]


class Holder(Model):
    """Who a statement is for: free text, printed as given."""

    holder: str | None = None     # the driver's or tenant's name
    plate: str | None = None      # licence plate
    employer: str | None = None   # who reimburses, with an address or personnel number if wanted


class VehicleEntry(Holder):
    ovms: str | None = None       # OVMS vehicle id
    evcc: str | None = None       # vehicle title in evcc sessions

    def identities(self) -> list[str]:
        return [f"{kind}:{value}" for kind, value in (("ovms", self.ovms), ("evcc", self.evcc)) if value]


class CardEntry(Holder):
    """`[sessions.cards."<card>"]`: holder details for a card, named as the `card` column shows
    it (the go-e card's name, or evcc's identifier)."""


class SessionsSection(Model):
    enabled: bool = True
    interval: Duration = Field(default=300.0, ge=10.0)
    gap: Duration = Field(default=900.0, ge=0.0)
    # How far back each run re-derives, so late vehicle data (OVMS history) still joins.
    # Must exceed the longest session; the store must keep at least this much (store.retention).
    lookback: Duration = Field(default=2 * 86400.0, ge=3600.0)
    tariff: Literal["none", "fixed", "tou", "evcc", "flat"] = "none"
    price: float | None = Field(default=None, ge=0)   # fixed/flat price, and fallback for tou / evcc
    currency: str = "EUR"
    timezone: str = "UTC"          # for the time-of-use table
    tou: list[TouEntry] = Field(default_factory=list)
    evcc_site: str | None = None   # whose grid tariff; default: the only evcc site collected
    chargers: dict[str, ChargerEntry] = Field(default_factory=dict)
    vehicles: dict[str, VehicleEntry] = Field(default_factory=dict)
    cards: dict[str, CardEntry] = Field(default_factory=dict)
    # Source identities that are not EV chargers (an evcc loadpoint driving a heat pump,
    # "evcc:home/Heat pump"): no sessions are derived from them.
    ignore: list[str] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name like Europe/Berlin)") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SessionsSection:
        if self.tariff in ("fixed", "flat") and self.price is None:
            raise ValueError(f'tariff = "{self.tariff}" needs price')
        if self.tariff == "tou" and not self.tou:
            raise ValueError('tariff = "tou" needs a [[sessions.tou]] table')
        for name, charger in self.chargers.items():
            unknown = [v for v in charger.vehicles if v not in self.vehicles]
            if unknown:
                raise ValueError(f"chargers.{name}.vehicles names {unknown}, not in [sessions.vehicles]")
        bad = [i for i in self.ignore
               if i.split(":", 1)[0] not in ("goe", "evcc", "evenergy") or ":" not in i]
        if bad:
            raise ValueError(f"ignore: {bad} are not source identities like \"evcc:home/Heat pump\", "
                             "\"goe:012345\" or \"evenergy:<evse>\"")
        return self

    @property
    def tariff_instance(self) -> str | None:
        """Which instance of the tariff's source publishes the rates (None: the only one)."""
        return self.evcc_site if self.tariff == "evcc" else None

    def holder(self, vehicle: str | None = None, card: str | None = None) -> Holder:
        """The holder details configured for a vehicle or a card (empty when none are)."""
        if vehicle is not None and vehicle in self.vehicles:
            return self.vehicles[vehicle]
        if card is not None and card in self.cards:
            return self.cards[card]
        return Holder()
