"""Which process of a fleet collects what: one owner per unit of work, found by hashing.

A fleet too large for one process runs `shards` processes with one shared configuration; each
is told its index (`ev-collector run --shard N`, or `EV_COLLECTOR_SHARD`). What a process
owns is decided per *unit*, the smallest thing that must stay in one process:

- a go-e charger (`goe:<serial>`): its limit of one request per second is per charger;
- an ev.energy OAuth client (`evenergy:<client_id>`): its hourly quota is shared by all its
  EVSEs, and only the process that owns every one of them can pace them within it;
- an OVMS account (`ovms:<server>:<username>`): one login session per account;
- an evcc site (`evcc:<name>`): one instance, one MQTT subscription.

The owner is the shard with the highest score for the unit (rendezvous hashing). Unlike a
hash modulo `shards`, a change of `shards` moves only what has to move: from K to K + 1 shards
a unit either stays or goes to the new shard, and from K + 1 back to K only the removed
shard's units move. Moved units start again in their new process's store (docs/operations.md).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re

SHARD_ENV = "EV_COLLECTOR_SHARD"


def _score(unit: str, shard: int) -> int:
    digest = hashlib.sha256(f"{shard}\x00{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def owner(unit: str, shards: int) -> int:
    """The index of the shard that collects `unit`, out of `shards`."""
    if shards <= 1:
        return 0
    return max(range(shards), key=lambda shard: _score(unit, shard))


_INDEX = re.compile(r"^\s*(\d+)\s*$")


def parse_shard(text: str, where: str) -> int:
    """A shard index given on the command line or in the environment; `where` names it."""
    match = _INDEX.match(text)
    if not match:
        raise ValueError(f"{where}: the shard index must be a whole number such as 0 or 3, "
                         f"got {text!r}")
    return int(match.group(1))


def shard_from_environment() -> int | None:
    """`EV_COLLECTOR_SHARD`, when set: how a systemd template or a StatefulSet says the index."""
    text = os.environ.get(SHARD_ENV)
    if text is None or not text.strip():
        return None
    return parse_shard(text, SHARD_ENV)


def _shard_argument(text: str) -> int:
    try:
        return parse_shard(text, "--shard")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_shard_argument(parser: argparse.ArgumentParser) -> None:
    """`--shard N` for the commands that act as one process of a fleet."""
    parser.add_argument("--shard", type=_shard_argument, default=None, metavar="N",
                        help=f"this process's index in a fleet split into [collector] shards "
                             f"processes, 0 to shards - 1 (default: ${SHARD_ENV}, else "
                             f"[collector] shard); also replaces {{shard}} in [store] path")
