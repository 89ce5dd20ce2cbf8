"""Several collectors side by side: every device has exactly one owner among the shards."""

from collector.config import parse_config
from collector.health import Health
from collector.limits import Limits
from collector.sources import load_all_sources
from collector.sources.base import SourceContext
from collector.store import Store
from collector.writer import PointWriter

SHARDS = 3
SERIALS = [f"{n:06d}" for n in range(1, 61)]
EVSES = [f"evse{n:026d}" for n in range(12)]
VEHICLES = [f"CAR{n}" for n in range(9)]

SECTIONS = {
    "goe": {"cloud_url": "http://127.0.0.1:9/{serial}",
            "chargers": [{"serial": s, "token": "t"} for s in SERIALS]},
    "evenergy": {"client_id": "c", "client_secret": "s", "user": "u",
                 "base_url": "http://127.0.0.1:9/v2", "evses": EVSES},
    "ovms": {"url": "http://127.0.0.1:9", "username": "u", "password": "p", "vehicles": VEHICLES},
    "evcc": {"url": "http://127.0.0.1:9", "name": "home"},
}


def devices_per_shard(tmp_path, name):
    owned = []
    for shard in range(SHARDS):
        store = Store(tmp_path / f"{name}-{shard}.db")
        health = Health()
        config = parse_config({"collector": {"shard": shard, "shards": SHARDS},
                               "sources": {name: SECTIONS[name]}})
        ctx = SourceContext(cursors=store, writer=PointWriter(store, health), limits=Limits(),
                            health=health, shard=shard, shards=SHARDS)
        source = load_all_sources()[name].build(getattr(config.sources, name), ctx)
        owned.append({job.device for job in source.jobs() if job.device})
        store.close()
    return owned


def test_every_source_splits_its_devices_so_each_has_exactly_one_owner(tmp_path):
    for name, expected in (("goe", SERIALS), ("evenergy", EVSES), ("ovms", VEHICLES)):
        owned = devices_per_shard(tmp_path, name)
        assert sorted(d for shard in owned for d in shard) == sorted(expected), name
        assert all(owned), f"{name}: a shard owns nothing with {len(expected)} devices"


def test_an_evcc_site_is_collected_by_one_shard_only(tmp_path):
    owned = devices_per_shard(tmp_path, "evcc")
    assert sum(1 for shard in owned if shard) == 1, owned
