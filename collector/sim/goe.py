"""A simulated fleet of go-eChargers: the Cloud API and the local HTTP API v2.

Routes (any number of chargers, each by its serial):
- cloud, routed by Host: `GET /api/status` with `Host: <serial>.api.v3.go-e.io` (what the real
  cloud sees; the collector sends this Host when `cloud_url` has no `{serial}` placeholder);
- cloud, routed by path: `GET /<serial>/api/status` (for `cloud_url = "http://127.0.0.1:P/{serial}"`);
- local: `GET /local/<serial>/api/status` (for `host = "http://127.0.0.1:P/local/<serial>"`);
- local API v1: `GET /local/<serial>/status` (the same moment in v1 strings and units).

Behaviour follows the go-e documents and API-NOTES: the token by `Authorization: Bearer` or
`?token=`; 403 for a wrong token, a disabled Cloud API or an unknown serial (401 instead when
`bad_token_status = 401`); a charger set offline stops sending, so the cloud serves its last
status until `age` (default 30 s) runs out and then answers 404 with the body seen in the
wild; `filter` keeps the keys a model has, in firmware order; `last-modified` advances once a
second. The local API has no `last-modified`; a model with `quirk_400` answers a full status,
or a filter naming a key it lacks, with HTTP 400 and the JSON anyway; a local charger that is
offline does not answer (in-process: `httpx.ReadTimeout`).

Each charger runs a charging cycle: idle, a car connects, waits a few seconds, charges at
`min(amp, car limit)` on its phases until the session's energy is in, stays complete, leaves.
Energy counters are the integral of the nominal power, so `eto` and `wh` rise consistently.
A charge started with an RFID card (`card`, an index into `cards`) shows `trx` = index + 1
while the car is connected (0: started without a card, as by the app; null when idle), and
that card's energy counter rises with `eto`. The card list comes as go-e sends it: the
`cards` array (firmware before 60.0) and, from 60.0 on, also `c<n>n`/`c<n>e`/`c<n>i` per card.
Everything is a pure function of (seed, serial, second): deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import email.utils
import hashlib
import json
import logging
import math
import random
import signal
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from collector.sim.base import SimRequest, SimResponse, SimServer, log_to_stdout

log = logging.getLogger(__name__)

CLOUD_SUFFIX = ".api.v3.go-e.io"
DEFAULT_TOKEN = "sim-token"


class SimTimeout(httpx.ReadTimeout):
    """A local API that stops answering (in-process through `mock_transport`)."""


def _f32(value: float) -> float:
    """The value as the charger's float32 prints it, noise included (232.8099976)."""
    return round(struct.unpack("f", struct.pack("f", value))[0], 7)


def _noise(seed: str, second: int, channel: int) -> float:
    """Deterministic noise in [-1, 1) for (charger, second, channel)."""
    digest = hashlib.blake2b(f"{seed}:{second}:{channel}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") / 2**31 - 1.0


CARD_SLOTS = 10                           # go-e keeps ten RFID cards
UNNAMED_CARD = "n/a"                      # the name go-e reports for a card never named
# API v1 names the cards' keys by letters for cards 1..3, digits for 4..9 and 1 for card 10.
V1_CARD_NAMES = ("rna", "rnm", "rne", "rn4", "rn5", "rn6", "rn7", "rn8", "rn9", "rn1")
V1_CARD_ENERGY = ("eca", "ecr", "ecd", "ec4", "ec5", "ec6", "ec7", "ec8", "ec9", "ec1")
V1_CARD_IDS = ("rca", "rcr", "rcd", "rc4", "rc5", "rc6", "rc7", "rc8", "rc9", "rc1")
# From firmware 60.0 each card has keys of its own (the `cards` array is still sent).
CARD_KEYS = tuple(f"c{n}{kind}" for n in range(CARD_SLOTS) for kind in "nei")

# Firmware variants: version string, keys (firmware order) beyond the common ones.
FIRMWARE = {
    "055.8": ("psm",),                    # older V3: sends psm, no energy split
    "058.2": ("psm",),
    "60.4": ("whg", "whs", "whb") + CARD_KEYS,   # newer: psm dropped, energy split, card keys
}

_COMMON_KEYS = ("sse", "fna", "typ", "oem", "fwv", "var", "rbt", "rbc", "utc", "loc", "car",
                "amp", "ama", "acu", "alw", "adi", "cbl", "frc", "lmo", "modelStatus", "err",
                "eto", "etop", "wh", "tma", "amt", "nrg", "pha", "cdi", "trx", "rssi", "wst",
                "tpa", "cae", "lbr", "cards")


@dataclass
class SimCharger:
    serial: str
    firmware: str = "058.2"
    variant: int = 11                 # kW: 11 (16 A) or 22 (32 A)
    amp: int = 16                     # requested current
    phases: int = 3                   # phases the car charges on
    car_max_a: int = 16               # what the car accepts
    cycle_s: int = 1800               # one arrive-charge-leave cycle
    arrive_at: int = 300              # second of the cycle the car connects
    leave_at: int = 1500              # second of the cycle the car leaves
    session_wh: float = 2500.0        # energy the car takes per session
    eto_start: int = 1_234_000        # lifetime counter at the simulator's epoch
    phase_offset: int = 0             # where in its cycle the charger is at the epoch
    nrg_all_zero: bool = False        # firmware 60.4 quirk
    quirk_400: bool = False           # local API answers some requests with 400 + JSON
    cloud_enabled: bool = True
    offline_since: float | None = None
    keys: tuple[str, ...] = ()
    cards: tuple[str, ...] = ()       # names of the learned cards, index 0 first
    card: int | None = None           # the card that starts each charge; None: without a card
    card_energy_base: int | None = None   # `eto` when the card list was set up (default eto_start)

    def __post_init__(self) -> None:
        if not self.keys:
            extra = FIRMWARE.get(self.firmware, ())
            keys = list(_COMMON_KEYS)
            for key in extra:
                if key in CARD_KEYS:
                    keys.append(key)
                else:
                    keys.insert(keys.index("wh") + 1 if key.startswith("wh") else keys.index("frc") + 1, key)
            self.keys = tuple(keys)
        self._key_set = frozenset(self.keys)

    def _card_list(self, eto: int) -> list[dict[str, Any]]:
        """The card list: names, whether a chip is learned, energy charged with each card."""
        base = self.eto_start if self.card_energy_base is None else self.card_energy_base
        out = []
        for n in range(CARD_SLOTS):
            learned = n < len(self.cards)
            out.append({"name": self.cards[n] if learned else UNNAMED_CARD,
                        "energy": max(eto - base, 0) if n == self.card else 0, "cardId": learned})
        return out

    @property
    def power_w(self) -> float:
        return 230.0 * min(self.amp, self.car_max_a) * self.phases

    @property
    def charge_s(self) -> int:
        return max(1, math.ceil(self.session_wh / self.power_w * 3600.0))

    def state(self, elapsed: int, wall: float = 0.0) -> dict[str, Any]:
        """The status object `elapsed` seconds after the simulator's epoch (`wall`: unix time)."""
        t = elapsed + self.phase_offset
        cycle, pos = divmod(t, self.cycle_s)
        plug_at = self.arrive_at
        charge_from = plug_at + 5
        charge_until = min(charge_from + self.charge_s, self.leave_at)
        full_session = (charge_until - charge_from) * self.power_w / 3600.0
        if pos < plug_at or pos >= self.leave_at:
            car, charging_s = 1, 0.0
        elif pos < charge_from:
            car, charging_s = 3, 0.0
        elif pos < charge_until:
            car, charging_s = 2, float(pos - charge_from)
        else:
            car, charging_s = 4, float(charge_until - charge_from)
        session = charging_s * self.power_w / 3600.0
        if car == 1:
            session = full_session  # wh keeps the last session until the next car connects
        done_cycles = cycle + (1 if pos >= charge_until else 0)
        eto = self.eto_start + int(done_cycles * full_session + (session if car == 2 else 0.0))
        seed = self.serial
        volts = [230.0 + 2.5 * _noise(seed, t, ch) for ch in range(3)]
        charging = car == 2
        if charging:
            amps_now = min(self.amp, self.car_max_a)
            amps = [amps_now * (1 + 0.01 * _noise(seed, t, 10 + ch)) if ch < self.phases else 0.0
                    for ch in range(3)]
        else:
            amps = [0.0, 0.0, 0.0]
        powers = [volts[ch] * amps[ch] for ch in range(3)]
        pf = [99.0 if amps[ch] else 0.0 for ch in range(3)]
        if self.nrg_all_zero:
            nrg: list[Any] = [0] * 16
        else:
            nrg = [_f32(volts[0]), _f32(volts[1]), _f32(volts[2]), round(abs(_noise(seed, t, 3)), 1),
                   _f32(amps[0]), _f32(amps[1]), _f32(amps[2]),
                   _f32(powers[0]), _f32(powers[1]), _f32(powers[2]), 0,
                   _f32(sum(powers)), pf[0], pf[1], pf[2], 0]
        heat = 8.0 if charging else 0.0
        now_utc = datetime.fromtimestamp(wall, tz=UTC)
        status: dict[str, Any] = {
            "sse": self.serial, "fna": f"go-e {self.serial}", "typ": "go-eCharger_V3",
            "oem": "go-e", "fwv": self.firmware, "var": self.variant,
            "rbt": (t % 864_000) * 1000 + 4711, "rbc": 17,
            "utc": now_utc.strftime("%Y-%m-%dT%H:%M:%S.000"),
            "loc": now_utc.strftime("%Y-%m-%dT%H:%M:%S.000+00:00"),
            "car": car, "amp": self.amp, "ama": 32 if self.variant == 22 else 16,
            "acu": min(self.amp, self.car_max_a) if charging else None,
            "alw": car in (2, 3), "adi": False, "cbl": 32 if car != 1 else None,
            "frc": 0, "psm": 0, "lmo": 3, "modelStatus": 15 if car in (2, 3) else 5, "err": 0,
            "eto": eto, "etop": eto - eto % 100, "wh": round(session, 3),
            "whg": round(session * 0.6, 3), "whs": round(session * 0.4, 3), "whb": 0.0,
            "tma": [_f32(24.0 + heat + _noise(seed, t, 20)), _f32(22.5 + heat / 2)],
            "amt": 32, "nrg": nrg,
            "pha": [True, True, True] + [charging and ch < self.phases for ch in range(3)],
            "cdi": ({"type": 0, "value": int(charging_s * 1000)} if charging else
                    {"type": 1, "value": int(charging_s * 1000)} if car == 4 else None),
            "trx": None if car == 1 else (0 if self.card is None else self.card + 1),
            "rssi": -60 + int(4 * _noise(seed, t, 30)), "wst": 3,
            "tpa": round(sum(powers), 1), "cae": self.cloud_enabled, "lbr": 255,
        }
        if "cards" in self._key_set:
            cards = self._card_list(eto)
            status["cards"] = cards
            if "c0n" in self._key_set:
                for n, entry in enumerate(cards):
                    status[f"c{n}n"], status[f"c{n}e"] = entry["name"], entry["energy"]
                    status[f"c{n}i"] = entry["cardId"]
        return {key: status[key] for key in self.keys if key in status}

    def has(self, key: str) -> bool:
        return key in self._key_set

    def state_v1(self, elapsed: int, wall: float = 0.0) -> dict[str, Any]:
        """The same moment as API v1 answers it: strings, and v1 units (`/status`)."""
        v2 = self.state(elapsed, wall)
        nrg = v2["nrg"]
        scale = (1, 1, 1, 1, 10, 10, 10, 0.01, 0.01, 0.01, 0.01, 0.1, 1, 1, 1, 1)
        mask = sum(1 << n for n, on in enumerate(v2["pha"]) if on)
        cards = self._card_list(v2["eto"])
        v1_cards: dict[str, str] = {}
        for entry, name, energy, ident in zip(cards, V1_CARD_NAMES, V1_CARD_ENERGY, V1_CARD_IDS,
                                              strict=False):
            v1_cards[name] = "" if entry["name"] == UNNAMED_CARD else entry["name"][:10]
            v1_cards[energy] = str(entry["energy"] // 100)          # 0.1 kWh
            v1_cards[ident] = "04a1b2c3d4" if entry["cardId"] else ""
        return {
            "version": "B", "tme": datetime.fromtimestamp(wall, tz=UTC).strftime("%d%m%y%H%M"),
            "rbc": str(v2["rbc"]), "rbt": str(v2["rbt"]), "car": str(min(max(v2["car"], 1), 4)),
            "amp": str(v2["amp"]), "err": "0", "ast": "0", "alw": "1" if v2["alw"] else "0",
            "stp": "0", "cbl": str(v2["cbl"] or 0), "pha": str(mask),
            "tmp": str(int(v2["tma"][0])), "dws": str(int(v2["wh"] * 360)), "dwo": "0",
            "adi": "0", "uby": str(v2.get("trx") or 0), "eto": str(v2["eto"] // 100), "wst": "3",
            "nrg": [int(round(value * factor)) for value, factor in zip(nrg, scale, strict=False)],
            "fwv": "040", "sse": self.serial, "wss": "home", "wke": "********",
            "wen": "1", "tof": "101", "tds": "1", "lbr": "255", "aho": "2", "afi": "8",
            "ama": str(v2["ama"]), "al1": "6", "al2": "10", "al3": "16", "al4": "20", "al5": "0",
            "cid": "255", "cch": "65535", "cfi": "65280", "lse": "0", "ust": "0", "wak": "********",
            "r1x": "2", "dto": "0", "nmo": "0", **v1_cards,
        }


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> SimResponse:
    out = {"Content-Type": "application/json"}
    out.update(headers or {})
    return SimResponse(status, json.dumps(payload, separators=(",", ":")).encode(), out)


@dataclass
class GoeSimulator:
    chargers: dict[str, SimCharger]
    token: str = DEFAULT_TOKEN
    clock: Callable[[], float] | None = None   # default: time.time at each call (freezegun)
    epoch: float | None = None                 # second 0 of every cycle; default: first use
    bad_token_status: int = 403                # 401 has been seen too
    requests: Counter = field(default_factory=Counter)          # serial -> requests
    request_times: dict[str, list[float]] = field(default_factory=dict)
    request_filters: dict[str, list[str | None]] = field(default_factory=dict)  # beside request_times
    overrides: dict[str, SimResponse] = field(default_factory=dict)   # serial -> canned answer

    @classmethod
    def fleet(cls, count: int = 3, seed: int = 0, first_serial: int = 1, cycle_s: int | None = None,
              **kwargs: Any) -> GoeSimulator:
        """`count` chargers with deterministic, varied settings, serials from `first_serial`.

        `cycle_s` fixes the length of every charger's arrive-charge-leave cycle (a demo may
        want one a few minutes long); by default each has 20, 30 or 40 minutes.
        """
        chargers = {}
        versions = list(FIRMWARE)
        for n in range(count):
            serial = f"{first_serial + n:06d}"
            rng = random.Random(f"{seed}:{serial}")
            variant = rng.choice((11, 22))
            amp = rng.choice((6, 10, 13, 16)) if variant == 11 else rng.choice((16, 20, 32))
            cycle = cycle_s or rng.choice((1200, 1800, 2400))
            arrive_at = int(cycle * rng.uniform(0.03, 0.15))
            leave_at = cycle - int(cycle * rng.uniform(0.03, 0.1))
            charger = SimCharger(
                serial=serial, firmware=versions[n % len(versions)], variant=variant, amp=amp,
                phases=rng.choice((1, 3, 3, 3)), car_max_a=rng.choice((16, 32)), cycle_s=cycle,
                arrive_at=arrive_at, leave_at=leave_at,
                eto_start=rng.randrange(100_000, 9_000_000), phase_offset=rng.randrange(0, cycle))
            # The car is full after 40..80 % of its stay: every cycle shows a complete phase.
            charger.session_wh = round(charger.power_w * (leave_at - arrive_at - 5)
                                       * rng.uniform(0.4, 0.8) / 3600.0, -1)
            chargers[serial] = charger
        return cls(chargers=chargers, **kwargs)

    # -- control, for tests and the demo ---------------------------------------------------

    def now(self) -> float:
        return self.clock() if self.clock is not None else time.time()

    def set_offline(self, serial: str, offline: bool = True) -> None:
        self.chargers[serial].offline_since = self.now() if offline else None

    def count(self, serial: str) -> int:
        return self.requests[serial]

    # -- the handler --------------------------------------------------------------------------

    def _now(self) -> float:
        now = self.now()
        if self.epoch is None:
            self.epoch = float(math.floor(now))
        return now

    def handle(self, request: SimRequest) -> SimResponse:
        path = request.path.rstrip("/") or "/"
        host = (request.host or request.headers.get("host", "")).split(":")[0].lower()
        parts = [p for p in path.split("/") if p]
        if len(parts) == 3 and parts[0] == "local" and parts[2] == "status":
            return self._local_v1(parts[1])
        if parts[-2:] != ["api", "status"]:
            return SimResponse.text("Not found", 404)
        prefix = parts[:-2]
        if not prefix and host.endswith(CLOUD_SUFFIX):
            return self._cloud(host[: -len(CLOUD_SUFFIX)], request)
        if len(prefix) == 1:
            return self._cloud(prefix[0], request)
        if len(prefix) == 2 and prefix[0] == "local":
            return self._local(prefix[1], request)
        return SimResponse.text("Not found", 404)

    def _record(self, serial: str, now: float, request: SimRequest | None = None) -> None:
        self.requests[serial] += 1
        self.request_times.setdefault(serial, []).append(now)
        self.request_filters.setdefault(serial, []).append(request.query.get("filter") if request else None)

    def status_request_times(self, serial: str) -> list[float]:
        """When `serial` was asked for its status (not for its card list alone)."""
        return [t for t, wanted in zip(self.request_times.get(serial, []),
                                           self.request_filters.get(serial, []), strict=True)
                if not wanted or not wanted.startswith("cards,")]

    def _filtered(self, charger: SimCharger, status: dict[str, Any],
                  query: Any) -> tuple[dict[str, Any], bool]:
        """The status cut to `filter` (firmware order), and whether it named a missing key."""
        wanted = query.get("filter")
        if wanted is None:
            return status, False
        keys = {k.strip() for k in wanted.split(",") if k.strip()}
        return ({k: v for k, v in status.items() if k in keys},
                any(not charger.has(k) for k in keys))

    def _cloud(self, serial: str, request: SimRequest) -> SimResponse:
        now = self._now()
        charger = self.chargers.get(serial)
        if charger is None:
            return SimResponse.text("Forbidden", 403)
        self._record(serial, now, request)
        if serial in self.overrides:
            return self.overrides[serial]
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth[:7].lower() == "bearer " else request.query.get("token", "")
        if token != self.token:
            return SimResponse.text("Forbidden" if self.bad_token_status == 403 else "Unauthorized",
                                    self.bad_token_status)
        if not charger.cloud_enabled:
            return SimResponse.text("Forbidden", 403)
        sent = math.floor(now if charger.offline_since is None else min(now, charger.offline_since))
        try:
            age_limit = float(request.query.get("age", 30))
        except ValueError:
            age_limit = 30.0
        age = now - sent
        if age > age_limit:
            return _json({"success": False, "reason": "Data is outdated", "age": round(age * 1000, 2)},
                         404)
        status = charger.state(int(sent - self.epoch), sent)  # type: ignore[operator]
        status, _ = self._filtered(charger, status, request.query)
        return _json(status, headers={"Last-Modified": email.utils.formatdate(sent, usegmt=True)})

    def _local_v1(self, serial: str) -> SimResponse:
        reached = self._reach_local(serial, None)
        if isinstance(reached, SimResponse):
            return reached
        charger, second = reached
        return _json(charger.state_v1(int(second - self.epoch), second))

    def _local(self, serial: str, request: SimRequest) -> SimResponse:
        reached = self._reach_local(serial, request)
        if isinstance(reached, SimResponse):
            return reached
        charger, second = reached
        status = charger.state(int(second - self.epoch), second)
        status, missing = self._filtered(charger, status, request.query)
        full = "filter" not in request.query
        return _json(status, 400 if charger.quirk_400 and (missing or full) else 200)

    def _reach_local(self, serial: str, request: SimRequest | None):
        """What both local APIs do first: the charger and the current second, or the answer
        that stands instead (unknown charger, an override); an offline charger times out."""
        now = self._now()
        charger = self.chargers.get(serial)
        if charger is None:
            return SimResponse.text("Not found", 404)
        self._record(serial, now, request)
        if serial in self.overrides:
            return self.overrides[serial]
        if charger.offline_since is not None:
            raise SimTimeout(f"simulated: the local API of {serial} does not answer")
        return charger, math.floor(now)


def html_error(status: int = 502) -> SimResponse:
    """The kind of page a proxy in front of the cloud answers with."""
    return SimResponse.text(f"<html><head><title>{status} Bad Gateway</title></head><body>"
                            f"<center><h1>{status} Bad Gateway</h1></center><hr><center>nginx"
                            "</center></body></html>", status, content_type="text/html")


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m collector.sim.goe",
                                     description="Simulated go-eChargers (cloud and local API v2).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--chargers", type=int, default=3, help="how many chargers")
    parser.add_argument("--first-serial", type=int, default=1, help="serial of the first charger")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the Cloud API token expected")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cycle", type=int, default=None, metavar="SECONDS",
                        help="length of every charging cycle (default: 20 to 40 minutes)")
    parser.add_argument("--offline", default="", metavar="SERIALS",
                        help="comma-separated serials that are offline from the start")
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.cycle is not None and args.cycle < 60:
        parser.error("--cycle must be at least 60 seconds")
    sim = GoeSimulator.fleet(args.chargers, seed=args.seed, first_serial=args.first_serial,
                             token=args.token, cycle_s=args.cycle)
    for serial in filter(None, (s.strip() for s in args.offline.split(","))):
        if serial not in sim.chargers:
            parser.error(f"--offline: no charger {serial}")
        sim.set_offline(serial)
    server = SimServer(sim, port=args.port, host=args.host).start()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    first, last = f"{args.first_serial:06d}", f"{args.first_serial + args.chargers - 1:06d}"
    log_to_stdout()
    log.info("READY %s chargers %s..%s", server.url, first, last)   # a parent reads this line
    try:
        while not stop.wait(1.0):
            pass
    finally:
        server.stop()
        log.info("stopped after %d requests", sum(sim.requests.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
