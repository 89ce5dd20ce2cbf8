"""go-eCharger status object (API v2, local or cloud) -> points. Pure: no I/O, no clock.

The cloud and the local HTTP API v2 answer the same flat JSON object. Values are native JSON
types, but firmware differs: keys a model lacks are left out, `nrg` mixes ints and floats with
float32 noise (`232.8099976`), `car`/`acu`/`err` may be null, and old firmware sends numbers as
strings. Every value goes through `Measurement.point`, which coerces it to its declared type;
what cannot be coerced is left out and reported, never raised.
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from itertools import compress
from typing import Any

import orjson

from collector.http_outcomes import Action, SourceError
from collector.measurement import CoercionReport, Measurement, Tag, b, f, i, s
from collector.points import Point

NAME = "goe"

# `nrg`: 16 numbers, decoded by index (go-e API v2 key list).
NRG_FIELDS: tuple[tuple[int, str], ...] = (
    (0, "voltage_l1_v"), (1, "voltage_l2_v"), (2, "voltage_l3_v"), (3, "voltage_n_v"),
    (4, "current_l1_a"), (5, "current_l2_a"), (6, "current_l3_a"),
    (7, "power_l1_w"), (8, "power_l2_w"), (9, "power_l3_w"), (10, "power_n_w"), (11, "power_w"),
    (12, "power_factor_l1_pct"), (13, "power_factor_l2_pct"), (14, "power_factor_l3_pct"),
    (15, "power_factor_n_pct"),
)
TEMPERATURE_SENSORS = 6  # `tma` entries kept; go-e V3 sends 2, other models more

# Scalar keys copied as they come; Measurement.point coerces them to the declared type.
_DIRECT: tuple[tuple[str, str], ...] = (
    ("car", "car_state"),
    ("amp", "requested_current_a"),
    ("acu", "allowed_current_a"),
    ("alw", "charging_allowed"),
    ("eto", "energy_total_wh"),
    ("wh", "energy_session_wh"),
    ("whg", "energy_grid_wh"),
    ("whs", "energy_solar_wh"),
    ("whb", "energy_battery_wh"),
    ("err", "error_code"),
    ("frc", "force_state"),
    ("psm", "phase_switch_mode"),
    ("modelStatus", "model_status"),
    ("lmo", "logic_mode"),
    ("cbl", "cable_current_limit_a"),
    ("fwv", "firmware_version"),
    ("rssi", "rssi_dbm"),
    ("var", "variant_kw"),
    ("trx", "transaction_card"),
)

# The keys this parser reads: the default `filter`, so a poll transfers only what we store,
# and `sse`, the charger's own serial, checked against the configured one.
STATUS_KEYS: tuple[str, ...] = tuple(k for k, _ in _DIRECT) + ("nrg", "tma", "cdi", "pha", "rbt",
                                                              "sse")

CAR_STATES = {0: "unknown/error", 1: "idle (no car)", 2: "charging", 3: "waiting for car",
              4: "complete", 5: "error", 6: "initializing (newer firmware)"}

STATUS = Measurement(
    name="goe_status",
    description="One status object of a go-eCharger (HTTP API v2, local or Cloud API): "
                "electrical values from `nrg`, state, current limits, energy counters, "
                "temperatures. A field the charger did not send (null, key missing on this "
                "model or firmware) is absent.",
    time="Cloud API: the `last-modified` header (when the charger sent the data); local API "
         "and cloud answers without a usable `last-modified`: the poll time",
    on_change="when the time is the poll time (local API, a cloud answer without a usable "
              "`last-modified`); a cloud status is written whenever its `last-modified` moves",
    tags=(Tag("serial", "charger serial number (6 digits, leading zeros kept), from the config"),),
    fields=(
        f("voltage_l1_v", "V", "voltage L1 (`nrg[0]`)"),
        f("voltage_l2_v", "V", "voltage L2 (`nrg[1]`)"),
        f("voltage_l3_v", "V", "voltage L3 (`nrg[2]`)"),
        f("voltage_n_v", "V", "voltage N (`nrg[3]`)"),
        f("current_l1_a", "A", "current L1 (`nrg[4]`)"),
        f("current_l2_a", "A", "current L2 (`nrg[5]`)"),
        f("current_l3_a", "A", "current L3 (`nrg[6]`)"),
        f("power_l1_w", "W", "power L1 (`nrg[7]`)"),
        f("power_l2_w", "W", "power L2 (`nrg[8]`)"),
        f("power_l3_w", "W", "power L3 (`nrg[9]`)"),
        f("power_n_w", "W", "power N (`nrg[10]`)"),
        f("power_w", "W", "total charging power (`nrg[11]`)"),
        f("power_factor_l1_pct", "%", "power factor L1 (`nrg[12]`)"),
        f("power_factor_l2_pct", "%", "power factor L2 (`nrg[13]`)"),
        f("power_factor_l3_pct", "%", "power factor L3 (`nrg[14]`)"),
        f("power_factor_n_pct", "%", "power factor N (`nrg[15]`)"),
        i("car_state", "code", "`car`: 0 unknown/error, 1 idle (no car), 2 charging, "
                               "3 waiting for car, 4 complete, 5 error, 6 initializing"),
        i("requested_current_a", "A", "`amp`: requested current (the user's setting)"),
        i("allowed_current_a", "A", "`acu`: current the car may draw now"),
        b("charging_allowed", "`alw`: whether the car is allowed to charge now"),
        i("energy_total_wh", "Wh", "`eto`: energy charged over the charger's life (counter)"),
        f("energy_session_wh", "Wh", "`wh`: energy charged since the car connected"),
        f("energy_grid_wh", "Wh", "`whg`: energy from the grid (newer firmware)"),
        f("energy_solar_wh", "Wh", "`whs`: energy from solar (newer firmware)"),
        f("energy_battery_wh", "Wh", "`whb`: energy from a home battery (newer firmware)"),
        *(f(f"temperature_{n}_c", "°C", f"`tma[{n - 1}]`: temperature sensor {n}")
          for n in range(1, TEMPERATURE_SENSORS + 1)),
        i("error_code", "code", "`err` as sent: 0 none; the meaning of other codes differs "
                                "between firmware versions (see the goe README)"),
        i("force_state", "code", "`frc`: 0 neutral, 1 off, 2 on"),
        i("phase_switch_mode", "code", "`psm`: 0 auto, 1 force 1-phase, 2 force 3-phase"),
        i("model_status", "code", "`modelStatus`: why the charger allows charging or not "
                                  "(0..41, e.g. 3 force on, 12 PV surplus, 26 error)"),
        i("logic_mode", "code", "`lmo`: 3 default, 4 awattar, 5 next trip"),
        f("charge_duration_s", "s", "`cdi` of type 1: duration of the charge, in seconds"),
        i("phases_mask", "bitmask", "`pha` as bits: bit n set when `pha[n]` is true"),
        i("cable_current_limit_a", "A", "`cbl`: current limit of the connected cable"),
        s("firmware_version", "`fwv`: firmware version as sent (\"058.2\", \"60.4\")"),
        i("rssi_dbm", "dBm", "`rssi`: WiFi signal strength"),
        i("variant_kw", "kW", "`var`: hardware variant, 11 or 22"),
        f("uptime_s", "s", "`rbt`: time since the charger booted"),
        i("transaction_card", "code", "`trx` (API v1 `uby`): what started the charge: 0 without a "
                                      "card (the app, or open access), n the card numbered n (go-e's "
                                      "card index + 1; names in `goe_card`); absent: no transaction"),
    ),
    source=NAME,
)

CARD_SLOTS = 10                  # a go-eCharger keeps ten RFID cards
UNNAMED_CARD = "n/a"             # the name go-e reports for a card nobody named

CARD = Measurement(
    name="goe_card",
    description="One entry of a go-eCharger's RFID card list (names and energy per card), polled "
                "every `cards_interval` (1 h). Only cards that are learned, named or have energy are "
                "written. Firmware from 60.0 sends `c<n>n`/`c<n>e`/`c<n>i` per card (and still the "
                "`cards` array, which older firmware sends alone); API v1 sends `rna`...`rn1`, "
                "`eca`...`ec1`, `rca`...`rc1`. The card's chip id is never stored.",
    time="Cloud API: the `last-modified` header; local API: the poll time",
    tags=(Tag("serial", "charger serial number, from the config"),
          Tag("card", "the card's number as `trx` counts it: 1..10 (go-e's index + 1)")),
    fields=(
        s("name", "the card's name as set in the app (`n/a` when never named)"),
        i("energy_wh", "Wh", "energy charged with this card over the charger's life (counter)"),
        b("learned", "a chip is learned for this card (`c<n>i`, `cardId`; v1: `rc<x>` not empty)"),
    ),
    source=NAME,
)

MEASUREMENTS = (STATUS, CARD)

# The keys a card poll asks for (firmware 60 and later, and the older `cards` array).
CARD_KEYS: tuple[str, ...] = ("cards",) + tuple(f"c{n}{kind}" for n in range(CARD_SLOTS) for kind in "nei")
# API v1: cards 1..3 by letters, 4..9 by digits, 10 by "1".
_V1_CARD_NAMES = ("rna", "rnm", "rne", "rn4", "rn5", "rn6", "rn7", "rn8", "rn9", "rn1")
_V1_CARD_ENERGY = ("eca", "ecr", "ecd", "ec4", "ec5", "ec6", "ec7", "ec8", "ec9", "ec1")
_V1_CARD_IDS = ("rca", "rcr", "rcd", "rc4", "rc5", "rc6", "rc7", "rc8", "rc9", "rc1")


def denoise(value: Any) -> Any:
    """A float32 value printed with float64 digits (232.8099976) back to its short form (232.81).

    Only floats change; anything else is returned as is for `Measurement.point` to judge.
    """
    # nan and inf survive the round trip ("nan", "inf") for the coercer to reject.
    return float(f"{value:.7g}") if type(value) is float else value


# value types of the numbers of `nrg` and `tma` -> the JSON array template that denoises them
# all in one formatting call: the 7 significant digits of `denoise` for a float (`#` keeps it
# a float: 230.0 -> 230.0000), an integer written as a float (what coercing it to its float
# field makes of it). One `%` and one orjson parse instead of a format and a float() per value.
_DENOISE_TEMPLATES: dict[tuple[type, ...], str | None] = {}


def _denoise_template(types: tuple[type, ...]) -> str | None:
    template = _DENOISE_TEMPLATES.get(types)
    if template is None and types not in _DENOISE_TEMPLATES:
        if all(kind is float or kind is int for kind in types):
            template = "[" + ",".join("%#.7g" if kind is float else "%d.0" for kind in types) + "]"
        if len(_DENOISE_TEMPLATES) < 256:   # a charger sends a few shapes; junk stays slow
            _DENOISE_TEMPLATES[types] = template
    return template


_NRG_NAMES = tuple(name for _, name in NRG_FIELDS)
_TMA_NAMES = tuple(f"temperature_{n}_c" for n in range(1, TEMPERATURE_SENSORS + 1))
_ARRAYS = (("nrg", _NRG_NAMES), ("tma", _TMA_NAMES))   # float fields by index


def _add_arrays(status: Mapping[str, Any], values: dict[str, Any], report: CoercionReport) -> None:
    """The float fields of `nrg` and `tma`, denoised, both arrays in one template.

    Plain numbers go through one `%` and one orjson parse; arrays holding anything else (a
    string of old firmware, a null, a boolean, NaN or infinity, which orjson refuses) value by
    value, for `Measurement.point` to coerce or report as before.
    """
    nrg, tma = status.get("nrg"), status.get("tma")
    if (type(nrg) is list and type(tma) is list and len(nrg) <= len(_NRG_NAMES)
            and len(tma) <= len(_TMA_NAMES)):          # the usual status: nothing to cut
        names = _NRG_NAMES[:len(nrg)] + _TMA_NAMES[:len(tma)]
        numbers: Sequence[Any] = (*nrg, *tma)
    else:
        names, numbers = (), []
        for key, slots in _ARRAYS:
            array = status.get(key)
            if array is None:
                continue
            if not isinstance(array, list):
                report.rejected.append((key, f"expected an array, got {type(array).__name__}"))
                continue
            array = array[:len(slots)]
            names += slots[:len(array)]
            numbers += array
    template = _denoise_template(tuple(map(type, numbers)))
    if template is not None:
        try:
            values.update(zip(names, orjson.loads(template % tuple(numbers)), strict=True))
            return
        except orjson.JSONDecodeError:
            pass                              # "nan" or "inf": each value on its own below
    for name, value in zip(names, numbers, strict=True):
        values[name] = denoise(value)


def _add_temperatures(tma: Any, values: dict[str, Any], report: CoercionReport) -> None:
    """`tma` alone (API v1 of V3 chargers), value by value."""
    if not isinstance(tma, list):
        report.rejected.append(("tma", f"expected an array, got {type(tma).__name__}"))
        return
    for name, value in zip(_TMA_NAMES, tma, strict=False):
        values[name] = denoise(value)


def _add_charge_duration(cdi: Any, values: dict[str, Any], report: CoercionReport) -> None:
    if not isinstance(cdi, dict):
        report.rejected.append(("cdi", f"expected an object, got {type(cdi).__name__}"))
        return
    if cdi.get("type") != 1:
        return  # type 0 is a counter going up while charging, not a duration we can label
    ms = cdi.get("value")
    if isinstance(ms, (int, float)) and not isinstance(ms, bool):
        values["charge_duration_s"] = ms / 1000.0
    elif ms is not None:
        report.rejected.append(("cdi", f"value is not a number: {ms!r}"))


_BITS = tuple(1 << bit for bit in range(16))
_BOOLEANS = frozenset((bool,))


def _add_phases(pha: Any, values: dict[str, Any], report: CoercionReport) -> None:
    if not isinstance(pha, list) or not set(map(type, pha)) <= _BOOLEANS:
        report.rejected.append(("pha", f"expected an array of booleans, got {pha!r}"[:120]))
        return
    if len(pha) <= len(_BITS):
        values["phases_mask"] = sum(compress(_BITS, pha))    # bit n set when pha[n] is true
        return
    values["phases_mask"] = sum(1 << bit for bit, on in enumerate(pha) if on)


def _add_uptime(rbt: Any, values: dict[str, Any], report: CoercionReport) -> None:
    if type(rbt) in (int, float):
        values["uptime_s"] = rbt / 1000.0
    else:
        report.rejected.append(("rbt", f"expected milliseconds, got {rbt!r}"[:120]))


# Keys read as a whole, after `nrg` and `tma`, in the order their fields are added.
_COMPOUND = (("cdi", _add_charge_duration), ("pha", _add_phases), ("rbt", _add_uptime))


def status_values(status: Mapping[str, Any], report: CoercionReport) -> dict[str, Any]:
    """The field values of one status object, before type coercion (floats denoised)."""
    values: dict[str, Any] = {}
    get = status.get
    for key, name in _DIRECT:
        value = get(key)
        if value is not None:
            values[name] = value
    _add_arrays(status, values, report)
    for key, add in _COMPOUND:
        value = get(key)
        if value is not None:
            add(value, values, report)
    return values


def reported_serial(status: Mapping[str, Any]) -> str | None:
    """The serial the charger reports (`sse`, API v1 and v2), or None when it sends none.

    go-e sends the serial as text. Anything else is a garbled payload, not another charger:
    it must not put the charger into the long back-off of a configuration error.
    """
    sse = status.get("sse")
    if isinstance(sse, str) and sse.strip():
        return sse.strip()
    return None


def check_serial(status: Mapping[str, Any], serial: str) -> None:
    """Refuse the status of another charger than the configured one.

    A local host that now belongs to another charger (a DHCP lease moved) or a proxy that
    routes wrongly would otherwise store one charger's data under the other's serial.
    Compared without leading zeros ("60435" is charger 060435).
    """
    if status.get("sse") == serial:            # the charger says what we expected: every poll
        return
    reported = reported_serial(status)
    if reported is not None and reported.lstrip("0") != serial.lstrip("0"):
        raise SourceError(Action.CONFIG, f"goe charger {serial}: the charger that answered "
                                         f"reports serial {reported}; nothing is written under "
                                         f"{serial} until `serial` or `host` is corrected")


def parse_status(status: Any, serial: str, time_ns: int,
                 report: CoercionReport | None = None) -> list[Point]:
    """The points of one status object; [] when it carries no value we store.

    Raises SourceError: DROP when the payload is not a JSON object at all, CONFIG when the
    charger reports another serial (`sse`) than the configured one.
    """
    if not isinstance(status, dict):
        raise SourceError(Action.DROP, f"goe charger {serial}: status is not a JSON object "
                                       f"but {type(status).__name__}")
    check_serial(status, serial)
    if report is None:
        report = CoercionReport()
    point = STATUS.point({"serial": serial}, status_values(status, report), time_ns, report)
    return [point] if point is not None else []


def nrg_all_zero(status: Mapping[str, Any]) -> bool:
    """Firmware 60.4 reports an `nrg` of zeros: data, but worth a note in the log."""
    nrg = status.get("nrg")
    return (isinstance(nrg, list) and len(nrg) >= 12
            and all(type(v) in (int, float) and v == 0 for v in nrg))


def parse_last_modified(value: str | None) -> int | None:
    """ns since the epoch from a `last-modified` header, or None when it cannot be read.

    The format is undocumented: an HTTP-date is expected ("Sat, 21 Nov 2026 09:30:00 GMT");
    ISO 8601 (without a zone: UTC) and unix seconds or milliseconds are tolerated.
    """
    if not value:
        return None
    text = value.strip()
    if not text:
        return None
    when: datetime | None = None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        when = None
    if when is None:
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            when = None
    if when is None:
        try:
            number = float(text)
        except ValueError:
            return None
        if not (number == number) or number <= 0 or number > 1e14:
            return None
        seconds = number / 1000.0 if number > 1e11 else number  # ms from 1973 on
        return int(round(seconds * 1e6)) * 1000
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    delta = when - epoch
    return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


# -- the card list ------------------------------------------------------------------------------

def _card_entries(status: Mapping[str, Any], report: CoercionReport) -> dict[int, dict[str, Any]]:
    """Card number (1..10) -> raw values, from the per-card keys or the `cards` array.

    Firmware 60 sends both; per-card keys win, the array fills what they lack.
    """
    entries: dict[int, dict[str, Any]] = {}
    cards = status.get("cards")
    if isinstance(cards, list):
        for index, card in enumerate(cards[:CARD_SLOTS]):
            if isinstance(card, dict):
                entries[index + 1] = {"name": card.get("name"), "energy_wh": card.get("energy"),
                                      "learned": card.get("cardId")}
            elif card is not None:
                report.rejected.append(("cards", f"entry {index} is not an object: {card!r}"[:120]))
    elif cards is not None:
        report.rejected.append(("cards", f"expected an array, got {type(cards).__name__}"))
    for index in range(CARD_SLOTS):
        for key, name in ((f"c{index}n", "name"), (f"c{index}e", "energy_wh"), (f"c{index}i", "learned")):
            if status.get(key) is not None:
                entries.setdefault(index + 1, {})[name] = status[key]
    return entries


def _card_entries_v1(status: Mapping[str, Any], report: CoercionReport) -> dict[int, dict[str, Any]]:
    entries: dict[int, dict[str, Any]] = {}
    cards = zip(_V1_CARD_NAMES, _V1_CARD_ENERGY, _V1_CARD_IDS, strict=True)
    for number, (name, energy, ident) in enumerate(cards, 1):
        entry: dict[str, Any] = {}
        if status.get(name) is not None:
            entry["name"] = status[name]
        if status.get(energy) is not None:
            tenths = _number(status[energy], energy, report)      # 0.1 kWh
            if tenths is not None:
                entry["energy_wh"] = round(tenths * 100)
        if status.get(ident) is not None:
            entry["learned"] = bool(str(status[ident]).strip())
        if entry:
            entries[number] = entry
    return entries


def _in_use(entry: Mapping[str, Any]) -> bool:
    name = entry.get("name")
    named = isinstance(name, str) and name.strip() not in ("", UNNAMED_CARD)
    energy = entry.get("energy_wh")
    metered = isinstance(energy, (int, float)) and not isinstance(energy, bool) and energy > 0
    return bool(named or entry.get("learned") is True or metered)


def parse_cards(status: Any, serial: str, time_ns: int, v1: bool = False,
                report: CoercionReport | None = None) -> list[Point]:
    """`goe_card` points of the cards in use (learned, named or with energy)."""
    if isinstance(status, dict) and v1 and isinstance(status.get("data"), dict) and "success" in status:
        status = status["data"]
    if not isinstance(status, dict):
        raise SourceError(Action.DROP, f"goe charger {serial}: status is not a JSON object "
                                       f"but {type(status).__name__}")
    if report is None:
        report = CoercionReport()
    entries = (_card_entries_v1 if v1 else _card_entries)(status, report)
    points = []
    for number, entry in sorted(entries.items()):
        if _in_use(entry):
            point = CARD.point({"serial": serial, "card": str(number)}, entry, time_ns, report)
            if point is not None:
                points.append(point)
    return points


def card_label(transaction: int | None, names: Mapping[int, str]) -> str | None:
    """What a session's `card` says for a `trx` value: the card's name, `card <n>` when it has
    none, `app` for 0 (started without a card), None when no transaction was seen."""
    if transaction is None:
        return None
    if transaction == 0:
        return "app"
    name = (names.get(transaction) or "").strip()
    return name if name and name != UNNAMED_CARD else f"card {transaction}"


# -- API v1 (old firmware and hardware before V3; modern firmware still answers `/status`) ----

# `nrg` in v1: voltages V, currents 0.1 A, phase power 0.1 kW, total 0.01 kW, power factor %.
_NRG_V1_SCALE = (1.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 100.0, 100.0, 100.0, 100.0, 10.0,
                 1.0, 1.0, 1.0, 1.0)

# v1 keys that mean the same as in v2 (values arrive as strings; the coercer converts them).
_DIRECT_V1: tuple[tuple[str, str], ...] = (
    ("car", "car_state"),           # 1 ready/no car, 2 charging, 3 waiting for car, 4 finished
    ("amp", "requested_current_a"),
    ("alw", "charging_allowed"),
    ("err", "error_code"),          # v1 codes: 1 RCCB, 3 phase, 8 no ground, 10 internal
    ("cbl", "cable_current_limit_a"),
    ("fwv", "firmware_version"),
    ("uby", "transaction_card"),    # the card that unlocked this charge (0: none)
)


def _number(value: Any, key: str, report: CoercionReport) -> float | None:
    if type(value) in (int, float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    report.rejected.append((key, f"not a number: {value!r}"[:120]))
    return None


def status_values_v1(status: Mapping[str, Any], report: CoercionReport) -> dict[str, Any]:
    """The v1 status converted to the v2 fields and units."""
    values: dict[str, Any] = {}
    get = status.get
    for key, name in _DIRECT_V1:
        value = get(key)
        if value is not None:
            values[name] = value
    eto = get("eto")
    if eto is not None and (number := _number(eto, "eto", report)) is not None:
        values["energy_total_wh"] = round(number * 100)          # 0.1 kWh -> Wh
    dws = get("dws")
    if dws is not None and (number := _number(dws, "dws", report)) is not None:
        values["energy_session_wh"] = round(number * 10 / 3600, 3)  # deka-watt-seconds -> Wh
    tma = get("tma")
    if tma is not None:
        # Chargers from V3 on answer v1 with the sensor list as v2 has it, and no `tmp`.
        _add_temperatures(tma, values, report)
    elif (tmp := get("tmp")) is not None:
        values["temperature_1_c"] = tmp
    rbt = get("rbt")
    if rbt is not None and (number := _number(rbt, "rbt", report)) is not None:
        values["uptime_s"] = number / 1000.0
    nrg = get("nrg")
    if isinstance(nrg, list):
        for (_, name), scale, raw in zip(NRG_FIELDS, _NRG_V1_SCALE, nrg, strict=False):
            if raw is None:
                continue
            number = _number(raw, name, report)
            if number is not None:
                values[name] = round(number * scale, 3)
    elif nrg is not None:
        report.rejected.append(("nrg", f"expected an array, got {type(nrg).__name__}"))
    return values


def parse_status_v1(status: Any, serial: str, time_ns: int,
                    report: CoercionReport | None = None) -> list[Point]:
    """Points from an API v1 status (`/status`), or the old cloud's `{"success", "data"}`."""
    if isinstance(status, dict) and isinstance(status.get("data"), dict) and "success" in status:
        status = status["data"]
    if not isinstance(status, dict):
        raise SourceError(Action.DROP, f"goe charger {serial}: status is not a JSON object "
                                       f"but {type(status).__name__}")
    check_serial(status, serial)
    if report is None:
        report = CoercionReport()
    point = STATUS.point({"serial": serial}, status_values_v1(status, report), time_ns, report)
    return [point] if point is not None else []
