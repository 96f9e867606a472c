"""Shared fixtures: real Mosquitto and InfluxDB servers on loopback.

The servers run from a temporary directory for the whole test session; tests
that stop or restart a server start their own instance instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from devstack.services import InfluxDB, Mosquitto


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB]:
    """An InfluxDB 1.x server on a free loopback port, shared by the session."""
    with InfluxDB(tmp_path_factory.mktemp("influxdb")) as server:
        yield server


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """A Mosquitto broker on a free loopback port, shared by the session."""
    with Mosquitto(tmp_path_factory.mktemp("mosquitto")) as broker:
        yield broker


@pytest.fixture
def influx_db_name() -> str:
    """A database name no other test uses (the database is not created)."""
    return f"test_{uuid.uuid4().hex[:12]}"
