"""A deployment made by the provisioning code, and a secured Mosquitto that uses it, on free loopback ports."""

from __future__ import annotations

import queue
import threading
import tomllib
from dataclasses import dataclass, field

import paho.mqtt.client as paho
import pytest

from common.broker import BrokerAddress, BrokerSettings
from common.mqtt import build_client
from devstack.deployment import DevDeployment
from devstack.services import Mosquitto, _free_ports
from gateway.provision.accounts import Deployment


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Deployment:
    port, cert_port = _free_ports(2)
    folder = tmp_path_factory.mktemp("deployment")
    deployment = Deployment.init(folder, host="127.0.0.1", port=port, cert_port=cert_port)
    deployment.add("box-a", "box", districts=["campus"], auth="password")
    deployment.add("box-b", "box", districts=["campus"], auth="cert")
    deployment.add("box-c", "box", districts=["market"], auth="password")
    deployment.add("campus-01", "box", districts=["campus"], auth="password")
    deployment.add("gw-1", "gateway")
    deployment.add("ops-1", "operator")
    deployment.add("ops-2", "operator", districts=["campus"])
    return deployment


@pytest.fixture(scope="module")
def secured(deployment, tmp_path_factory):
    """The devstack broker on this module's deployment, on the ports its accounts' mqtt.toml name."""
    with Mosquitto(tmp_path_factory.mktemp("secured-mosquitto"), deployment=DevDeployment(deployment.folder),
                   port=deployment.place.port, cert_port=deployment.place.cert_port) as broker:
        yield broker


def mqtt_settings(deployment: Deployment, name: str) -> BrokerSettings:
    table = tomllib.loads((deployment.bundle(name) / "mqtt.toml").read_text())["mqtt"]
    table.pop("client_id", None)
    return BrokerSettings.model_validate(table)


@dataclass
class Probe:
    """A paho client of one account that records what happens to it."""

    client: paho.Client
    connack: queue.Queue = field(default_factory=queue.Queue)
    messages: queue.Queue = field(default_factory=queue.Queue)
    disconnected: threading.Event = field(default_factory=threading.Event)
    subacks: queue.Queue = field(default_factory=queue.Queue)
    pubacks: queue.Queue = field(default_factory=queue.Queue)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def probe(settings: BrokerSettings, client_id: str) -> Probe:
    """Connect with these settings; ``connack`` gets the broker's reason code (or the TLS failure)."""
    address = BrokerAddress.parse(settings.url)
    client = build_client(client_id, address, settings.credentials())
    client.reconnect_delay_set(60, 120)   # one try: a test reconnects on purpose
    p = Probe(client)
    client.on_connect = lambda c, u, f, rc, pr: p.connack.put(rc)
    client.on_disconnect = lambda c, u, f, rc, pr: (p.disconnected.set(), p.connack.put(rc))
    client.on_message = lambda c, u, m: p.messages.put((m.topic, bytes(m.payload)))
    client.on_subscribe = lambda c, u, mid, rcs, pr: p.subacks.put(rcs)
    client.on_publish = lambda c, u, mid, rc, pr: p.pubacks.put(rc)
    client.connect_async(address.host, address.port)
    client.loop_start()
    return p


def connected(p: Probe, timeout: float = 10) -> bool:
    try:
        rc = p.connack.get(timeout=timeout)
    except queue.Empty:
        return False
    return not rc.is_failure


def secrets_of(deployment: Deployment) -> list[str]:
    """Every password and every private key line of the deployment: none may appear in a log."""
    found = []
    for path in deployment.folder.rglob("*"):
        if path.name == "mqtt-password":
            found.append(path.read_text().strip())
        elif path.suffix == ".key":
            found += [line for line in path.read_text().splitlines()
                      if line and not line.startswith(("#", "-----"))]
    assert found
    return found


def assert_no_secrets(deployment: Deployment, *texts: str) -> None:
    logs = "\n".join(texts)
    leaked = [secret[:6] + "…" for secret in secrets_of(deployment) if secret in logs]
    assert not leaked, f"secrets in the logs: {leaked}"
