"""A fleet split across processes: every unit of work has exactly one owner.

The units are a go-e charger, an ev.energy OAuth client (all its EVSEs and its quota), an OVMS
account (all its vehicles, one login) and an evcc site. Each shard is a `Collector` built from
the same configuration with its own index; what it owns is what it schedules and the quotas it
holds.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field

import pytest

from collector.app import Collector, StoreInUse
from collector.config import ConfigError, load_config, parse_config
from collector.shards import SHARD_ENV, owner

SERIALS = [f"{n:06d}" for n in range(1, 41)]


def evses(prefix: str, count: int) -> list[str]:
    return [f"evse{prefix}{n:0{26 - len(prefix)}d}" for n in range(count)]


# Two instances of client "a" act for two users: one quota, so one shard.
CLIENTS = {"a": evses("a", 4) + evses("a2", 2), "b": evses("b", 3), "c": evses("c", 2),
           "d": evses("d", 1), "e": evses("e", 5)}
EVENERGY = [
    {"name": "a", "client_id": "a", "client_secret": "s", "user": "u1", "evses": evses("a", 4)},
    {"name": "a2", "client_id": "a", "client_secret": "s", "user": "u2", "evses": evses("a2", 2)},
    *({"name": c, "client_id": c, "client_secret": "s", "user": "u", "evses": CLIENTS[c]}
      for c in "bcde")]
# (server, username) -> vehicles
ACCOUNTS = {("http://ovms-1.invalid:6868", "alice"): ["A1", "A2", "A3"],
            ("http://ovms-1.invalid:6868", "bob"): ["B1"],
            ("http://ovms-2.invalid:6868", "alice"): ["C1", "C2"],
            ("http://ovms-2.invalid:6868", "carol"): ["D1", "D2"]}
OVMS = [{"name": f"ovms{n}", "url": url, "username": user, "password": "p", "vehicles": vehicles}
        for n, ((url, user), vehicles) in enumerate(ACCOUNTS.items())]
SITES = ["home", "cabin", "depot", "office"]
EVCC = [{"name": site, "url": f"http://{site}.invalid:7070"} for site in SITES]


def fleet_config(tmp_path, shard: int, shards: int):
    return parse_config({
        "collector": {"shards": shards, "name": "depot"},
        "store": {"path": str(tmp_path / "shard-{shard}" / "store.db")},
        "sources": {"goe": {"chargers": [{"serial": s, "token": "t"} for s in SERIALS]},
                    "evenergy": EVENERGY, "ovms": OVMS, "evcc": EVCC}},
        shard=shard)


@dataclass
class Shard:
    devices: dict[str, set[str]] = field(default_factory=dict)   # source -> devices it polls
    quotas: set[str] = field(default_factory=set)                  # quota keys it holds
    quota_gauges: set[str] = field(default_factory=set)            # instances reporting quota_remaining


def build_shard(tmp_path, shard: int, shards: int) -> Shard:
    collector = Collector(fleet_config(tmp_path, shard, shards))
    try:
        assert collector.store.path == tmp_path / f"shard-{shard}" / "store.db"
        out = Shard(quotas=set(collector.limits.quotas()))
        for job in collector.jobs():
            kind = job.source.split(":")[0]
            if kind != "collector":
                out.devices.setdefault(kind, set()).add(job.device)
        out.quota_gauges = {p.tags["instance"] for p in collector.health.points()
                            if "quota_remaining" in p.fields}
        return out
    finally:
        for source in collector.sources:
            asyncio.run(source.close())
        collector.close()


def layouts(tmp_path, max_shards: int = 8) -> dict[int, list[Shard]]:
    return {k: [build_shard(tmp_path / f"k{k}", n, k) for n in range(k)]
            for k in range(1, max_shards + 1)}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    return layouts(tmp_path_factory.mktemp("fleet"))


def owners(shards: list[Shard], kind: str, device: str) -> list[int]:
    return [n for n, shard in enumerate(shards) if device in shard.devices.get(kind, set())]


def test_every_charger_evse_vehicle_and_site_has_exactly_one_owner(fleet):
    for k, shards in fleet.items():
        for kind, devices in (("goe", SERIALS), ("evenergy", [e for c in CLIENTS.values() for e in c]),
                              ("ovms", [v for vs in ACCOUNTS.values() for v in vs]), ("evcc", SITES)):
            for device in devices:
                assert len(owners(shards, kind, device)) == 1, (k, kind, device, owners(shards, kind, device))
        assert sum(len(s.devices.get("goe", ())) for s in shards) == len(SERIALS)


def test_an_evenergy_client_its_evses_and_its_quota_live_in_one_shard(fleet):
    for k, shards in fleet.items():
        for client, client_evses in CLIENTS.items():
            [home] = {n for evse in client_evses for n in owners(shards, "evenergy", evse)}
            holders = [n for n, shard in enumerate(shards) if f"evenergy:{client}" in shard.quotas]
            assert holders == [home], (k, client, holders, home)
            instances = {i["name"] for i in EVENERGY if i["client_id"] == client}
            reporting = [n for n, shard in enumerate(shards) if shard.quota_gauges & instances]
            assert reporting == [home], (k, client)
            assert shards[home].quota_gauges >= instances


def test_an_ovms_account_and_all_its_vehicles_live_in_one_shard(fleet):
    for k, shards in fleet.items():
        for account, vehicles in ACCOUNTS.items():
            homes = {n for vehicle in vehicles for n in owners(shards, "ovms", vehicle)}
            assert len(homes) == 1, (k, account, homes)


def test_a_change_of_shards_moves_whole_units_and_only_to_or_from_the_changed_shard(fleet):
    """From K to K + 1 shards a unit stays or goes to the new shard K; nothing else moves."""
    def home(shards: list[Shard], kind: str, devices: list[str]) -> int:
        [n] = {n for d in devices for n in owners(shards, kind, d)}
        return n

    units = ([("goe", [s]) for s in SERIALS] + [("evenergy", e) for e in CLIENTS.values()]
             + [("ovms", v) for v in ACCOUNTS.values()] + [("evcc", [s]) for s in SITES])
    moved_anywhere = 0
    for k in range(1, max(fleet)):
        for kind, devices in units:
            before, after = home(fleet[k], kind, devices), home(fleet[k + 1], kind, devices)
            assert after in (before, k), (kind, devices, k, before, after)
            moved_anywhere += after != before
    assert moved_anywhere, "growing the fleet never moved a unit: the split does nothing"


def test_rendezvous_ownership_is_balanced_and_moves_only_what_must_move():
    units = [f"goe:{n:06d}" for n in range(5_000)]
    for k in range(1, 9):
        counts = Counter(owner(u, k) for u in units)
        assert sorted(counts) == list(range(k))
        assert max(counts.values()) < 1.15 * len(units) / k, (k, counts)
        grown = [owner(u, k + 1) for u in units]
        moved = [u for u, n in zip(units, grown) if n != owner(u, k)]
        assert all(owner(u, k + 1) == k for u in moved)
        assert abs(len(moved) / len(units) - 1 / (k + 1)) < 0.03, (k, len(moved))


# ---------------------------------------------------------------------------------------- the shard index

def write_config(tmp_path, shards: int = 3, store: str = "shard-{shard}.db") -> object:
    path = tmp_path / "fleet.toml"
    path.write_text(f'[collector]\nshards = {shards}\n[store]\npath = "{store}"\n')
    return path


def test_the_shard_index_comes_from_the_command_line_else_the_environment(tmp_path, monkeypatch):
    path = write_config(tmp_path)
    monkeypatch.delenv(SHARD_ENV, raising=False)
    assert load_config(path).collector.shard == 0
    monkeypatch.setenv(SHARD_ENV, "2")
    config = load_config(path)
    assert config.collector.shard == 2 and config.store.path == tmp_path / "shard-2.db"
    assert load_config(path, shard=1).store.path == tmp_path / "shard-1.db"


def test_a_shard_index_out_of_range_or_not_a_number_is_refused_naming_where_it_came_from(tmp_path, monkeypatch):
    path = write_config(tmp_path)
    with pytest.raises(ConfigError, match=r"shard 3 \(from --shard\) must be below \[collector\] shards = 3"):
        load_config(path, shard=3)
    monkeypatch.setenv(SHARD_ENV, "ev-collector-1")
    with pytest.raises(ConfigError, match=f"{SHARD_ENV}: the shard index must be a whole number"):
        load_config(path)
    monkeypatch.setenv(SHARD_ENV, "5")
    with pytest.raises(ConfigError, match=f"shard 5 \\(from {SHARD_ENV}\\)"):
        load_config(path)


def test_the_cli_takes_shard_on_run_and_check(tmp_path, monkeypatch, capsys):
    from collector.cli import build_parser, main

    monkeypatch.delenv(SHARD_ENV, raising=False)
    assert build_parser().parse_args(["run", "--config", "x", "--shard", "4"]).shard == 4
    assert main(["check", "--config", str(write_config(tmp_path, shards=2)), "--shard", "2"]) == 2
    assert "shard 2 (from --shard) must be below [collector] shards = 2" in capsys.readouterr().err


def test_two_collectors_on_one_store_refuse_the_second(tmp_path):
    config = parse_config({"store": {"path": str(tmp_path / "one.db")}})
    first, second = Collector(config), Collector(config)

    async def both() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(first.run(stop))
        await asyncio.sleep(0.3)
        try:
            with pytest.raises(StoreInUse, match="another collector is running on the local store"):
                await second.run(asyncio.Event())
        finally:
            stop.set()
            await running

    try:
        asyncio.run(both())
    finally:
        second.close()


def test_a_store_that_ran_with_another_shard_count_says_units_moved(tmp_path, caplog):
    def run_once(shards: int) -> None:
        collector = Collector(parse_config({"collector": {"shards": shards},
                                            "store": {"path": str(tmp_path / "s.db")}}))

        async def briefly() -> None:
            stop = asyncio.Event()
            asyncio.get_running_loop().call_later(0.2, stop.set)
            await collector.run(stop)

        asyncio.run(briefly())

    with caplog.at_level(logging.WARNING, logger="collector.app"):
        run_once(2)
        run_once(2)
        assert "last ran as" not in caplog.text
        run_once(3)
    assert "this store last ran as shard 0 of 2, now as shard 0 of 3" in caplog.text
    assert "every process of the fleet must now run with shards = 3" in caplog.text


def test_check_names_the_shard_that_collects_what_this_one_does_not(tmp_path):
    """Shard 0 of 3 checks only its own units (no request leaves here: it owns none)."""
    shards = 3
    client = next(c for c in "bcde" if owner(f"evenergy:{c}", shards) != 0)
    serial = next(s for s in SERIALS if owner(f"goe:{s}", shards) != 0)
    config = parse_config({"collector": {"shards": shards}, "store": {"path": str(tmp_path / "s.db")},
                           "sources": {"evenergy": [i for i in EVENERGY if i["name"] == client],
                                       "goe": {"chargers": [{"serial": serial, "token": "t"}]}}})
    collector = Collector(config)
    try:
        results = {r.target: r for r in asyncio.run(collector.check())}
    finally:
        collector.close()
    line = results[f"ev.energy client {client} (https://api.ev.energy/v2)"]
    assert line.ok and line.detail == f"collected by shard {owner(f'evenergy:{client}', shards)} of 3; checked there"
    chargers = results["goe chargers of other shards"]
    assert chargers.ok and chargers.detail == "1 of 1 collected by the other shards; checked there"


def test_backfill_of_an_account_another_shard_collects_names_that_shard(tmp_path, caplog):
    from collector.backfill import run_backfill

    shards = 4
    account = next(i for i in OVMS if owner(f"ovms:{i['url']}:{i['username']}", shards) != 0)
    home = owner(f"ovms:{account['url']}:{account['username']}", shards)
    config = parse_config({"collector": {"shards": shards}, "store": {"path": str(tmp_path / "s.db")},
                           "sources": {"ovms": account}})
    # no transport: a request would fail; the backfill must not make one
    assert asyncio.run(run_backfill(config, "ovms", None)) == 0
    assert (f"backfill ovms: collected by shard {home} of {shards}; run this command with --shard {home}"
            in caplog.text)
