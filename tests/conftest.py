from __future__ import annotations

import itertools
from pathlib import Path
from typing import Iterator

import pytest

from tests.servers import InfluxServer, MosquittoServer, influx_server, mosquitto_server

_db_names = itertools.count()


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    """One real influxd for the session; each test takes its own database (`influx_db`)."""
    with influx_server(tmp_path_factory.mktemp("influxd")) as server:
        yield server


@pytest.fixture
def influx_db(influxdb: InfluxServer) -> str:
    """A fresh, empty database name on the shared server."""
    name = f"test_{next(_db_names)}"
    influxdb.create_database(name)
    return name


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    with mosquitto_server(tmp_path_factory.mktemp("mosquitto")) as server:
        yield server


@pytest.fixture
def payloads_dir(request: pytest.FixtureRequest) -> Path:
    """`payloads/` beside the test module: recorded and constructed source responses."""
    return Path(request.fspath).parent / "payloads"


@pytest.fixture(scope="session")
def history_influx(influxdb: InfluxServer, tmp_path_factory: pytest.TempPathFactory):
    """A database filled with two simulated days of every source, shipped by the real forwarder.

    The history generator (`collector.history`) drives each simulator's model through the
    sources' parse functions into a Store; the sessions job derives `charging_session` from it
    (the demo car's charger configured as the demo would) and the rollup job its daily and
    monthly rollups (Berlin days); six hours of collector health
    samples come from the real `Health` counters. Returns (database name, the `now` the data
    ends at).
    """
    import asyncio
    import time
    from datetime import datetime, timedelta, timezone

    from collector.config_types import InfluxV1
    from collector.health import Health
    from collector.history import generate_history
    from collector.sim.world import CAR_VEHICLE, EVCC_SITE, GOE_SERIAL
    from collector.influx import Forwarder, V1Target
    from collector.rollups.config import RollupsSection
    from collector.rollups.job import RollupJob, names_from
    from collector.sessions.config import SessionsSection
    from collector.sessions.job import derive_range, store_reader
    from collector.store import Store
    from tests.health_history import health_points

    # The evening of the 15th of last month, not the clock: panels of "this month" or "today",
    # and a month's rollup point in a 30-day range, would otherwise find nothing when the suite
    # runs in the first hours of a month or of a day. The 14th's charge has ended by then.
    month_start = datetime.now(timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    now = (month_start - timedelta(days=16)).replace(day=15, hour=21)
    name = "history"
    influxdb.create_database(name)
    store = Store(tmp_path_factory.mktemp("history") / "store.db", synchronous="off")
    target = V1Target(InfluxV1(api="v1", url=influxdb.url, database=name))
    try:
        start = now - timedelta(days=2)
        generate_history(store, start, now, seed=1)
        sessions = SessionsSection(
            tariff="evcc", price=0.30, timezone="Europe/Berlin",
            chargers={"Garage": {"goe": GOE_SERIAL, "evcc": f"{EVCC_SITE}/Garage", "vehicles": ["Car"]}},
            vehicles={"Car": {"ovms": CAR_VEHICLE}})
        store.append(derive_range(sessions, store_reader(store), int(start.timestamp()) * 10**9,
                                  int(now.timestamp()) * 10**9))
        RollupJob(RollupsSection(timezone="Europe/Berlin"), store, None,
                  names_from(sessions)).run_now(int(now.timestamp()) * 10**9)
        store.append(health_points(now - timedelta(hours=6), now))
        forwarder = Forwarder(store, target, Health(), batch_size=20_000)
        assert asyncio.run(forwarder.flush(time.monotonic() + 120)), "history did not ship to InfluxDB"
    finally:
        target.close()
        store.close()
    return name, now
