"""Shared fixtures: real Mosquitto and InfluxDB servers on loopback, secured as a deployment runs them.

The servers run from a temporary directory for the whole test session; tests
that stop or restart a server start their own instance instead (pass the
session's ``deployment`` to a ``Mosquitto`` of their own, so the same logins
work on it).

``mosquitto`` listens with TLS only (its URL is ``mqtts://``), refuses
anonymous clients and applies the provisioned ACL. A test gets a login by
name, provisioned on first use (the broker reloads):

    mosquitto.account("campus-01", "box", district="campus")   # BrokerSettings: url, username, password_file, ca_file
    mosquitto.account("gw-x", "gateway")                       # a gateway's rights (every district)
    mosquitto.account("ops-x", "operator")                     # writes boxes' config
    mosquitto.account("anything")                              # the test harness: every topic (tests only)
    mosquitto.login(name, ...)                                 # the same as a Login: .settings(url), .toml(url)
    mosquitto.client("watcher")                                # a paho client logging in as harness "watcher"

The broker makes the user name the client id, so each client that is
connected at the same time needs its own name. ``influxdb`` has
authentication on: ``influxdb.client_login()`` gives ``InfluxClient`` its
``username``/``password``, ``influxdb.influx_table(db)`` a gateway config's
``[influx]`` lines, and ``influx_flags`` the ``gateway`` command's flags.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devstack.deployment import DevDeployment
from devstack.services import InfluxDB, Mosquitto


@pytest.fixture(scope="session")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> DevDeployment:
    """One deployment (CA, broker certificate, accounts) for every broker of the session."""
    return DevDeployment(tmp_path_factory.mktemp("deployment"))


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB]:
    """An InfluxDB 1.x server with authentication on a free loopback port, shared by the session."""
    with InfluxDB(tmp_path_factory.mktemp("influxdb")) as server:
        yield server


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory, deployment: DevDeployment) -> Iterator[Mosquitto]:
    """A secured Mosquitto broker on a free loopback port, shared by the session."""
    with Mosquitto(tmp_path_factory.mktemp("mosquitto"), deployment=deployment) as broker:
        yield broker


@pytest.fixture(scope="session")
def influx_config(influxdb: InfluxDB, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gateway config whose ``[influx]`` table logs in to the session's InfluxDB (for ``gateway`` commands)."""
    path = tmp_path_factory.mktemp("influx-config") / "gateway.toml"
    path.write_text("[influx]\n" + influxdb.influx_table())
    return path


@pytest.fixture(scope="session")
def influx_flags(influxdb: InfluxDB, influx_config: Path) -> Callable[..., list[str]]:
    """``influx_flags(db)``: ``--config FILE --influx URL --db DB`` for a ``gateway`` command on the session's
    InfluxDB (the config names the admin's password file)."""
    def flags(db: str, server: InfluxDB | None = None, config: Path | None = None) -> list[str]:
        return ["--config", str(config or influx_config), "--influx", (server or influxdb).url, "--db", db]
    return flags


@pytest.fixture
def influx_db_name() -> str:
    """A database name no other test uses (the database is not created)."""
    return f"test_{uuid.uuid4().hex[:12]}"
