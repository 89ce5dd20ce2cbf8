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
