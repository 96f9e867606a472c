"""devstack.services: real Mosquitto and InfluxDB processes started, stopped and restarted, secured by default."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devstack.deployment import PROBE
from devstack.services import (
    InfluxDB,
    Mosquitto,
    ServiceError,
    _http,
    free_port,
    influx_login_accepted,
    influx_pings,
    mqtt_broker_answers,
    mqtt_login_accepted,
)

pytestmark = pytest.mark.integration

WAIT_S = 10.0


class MqttClient:
    """A paho client on its own network thread, collecting received messages."""

    def __init__(self, broker: Mosquitto, client_id: str, *, clean_session: bool = True) -> None:
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._subscribed: queue.Queue[int] = queue.Queue()
        self._client = broker.client(client_id)    # a test-harness login named client_id
        self._client.on_message = lambda client, userdata, message: self.messages.put(message)
        self._client.on_subscribe = lambda client, userdata, mid, codes, props: self._subscribed.put(mid)
        properties = None
        if not clean_session:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = 3600
        self._client.connect(broker.host, broker.port, clean_start=clean_session, properties=properties)
        self._client.loop_start()

    def subscribe(self, topic: str) -> None:
        _, mid = self._client.subscribe(topic, qos=1)
        assert self._subscribed.get(timeout=WAIT_S) == mid

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout=WAIT_S)
        assert info.is_published()

    def next_message(self) -> mqtt.MQTTMessage:
        return self.messages.get(timeout=WAIT_S)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def mqtt_clients() -> Iterator[list[MqttClient]]:
    clients: list[MqttClient] = []
    yield clients
    for client in clients:
        client.close()


def connect(clients: list[MqttClient], broker: Mosquitto, client_id: str, **kwargs: bool) -> MqttClient:
    client = MqttClient(broker, client_id, **kwargs)
    clients.append(client)
    return client


def port_is_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def pid_is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still has a pid; look at its state.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ")[-1][:1] != "Z"


def probe_logs_in(broker: Mosquitto) -> bool:
    probe = broker.deployment.login(PROBE, "probe")
    return mqtt_login_accepted(broker.host, broker.port, broker.ca_file, probe.username, probe.password())


# --------------------------------------------------------------------------- Mosquitto


def test_mosquitto_delivers_qos1(mosquitto: Mosquitto, mqtt_clients: list[MqttClient]) -> None:
    assert mosquitto.url == f"mqtts://127.0.0.1:{mosquitto.port}"
    assert mosquitto.is_running()
    subscriber = connect(mqtt_clients, mosquitto, "sub-qos1")
    subscriber.subscribe("city/+/detections")
    connect(mqtt_clients, mosquitto, "pub-qos1").publish("city/old-town/detections", b'{"n": 1}')
    message = subscriber.next_message()
    assert (message.topic, message.payload, message.qos) == ("city/old-town/detections", b'{"n": 1}', 1)


def test_mosquitto_restart_keeps_port_and_retained_message(
    tmp_path: Path, mqtt_clients: list[MqttClient]
) -> None:
    with Mosquitto(tmp_path) as broker:
        port = broker.port
        publisher = connect(mqtt_clients, broker, "pub-retained")
        publisher.publish("status/box-1", b"online", retain=True)
        publisher.close()
        mqtt_clients.remove(publisher)

        broker.stop()
        assert not broker.is_running()
        assert not port_is_open(port)
        broker.start()
        assert broker.port == port

        subscriber = connect(mqtt_clients, broker, "sub-retained")
        subscriber.subscribe("status/#")
        message = subscriber.next_message()
        assert (message.topic, message.payload, message.retain) == ("status/box-1", b"online", True)


def test_mosquitto_restart_keeps_persistent_sessions(
    tmp_path: Path, mqtt_clients: list[MqttClient]
) -> None:
    with Mosquitto(tmp_path) as broker:
        offline = connect(mqtt_clients, broker, "gateway-1", clean_session=False)
        offline.subscribe("detections/#")
        offline.close()
        mqtt_clients.remove(offline)
        connect(mqtt_clients, broker, "box-1").publish("detections/box-1", b"queued while offline")

        broker.restart()

        back = connect(mqtt_clients, broker, "gateway-1", clean_session=False)
        message = back.next_message()
        assert (message.topic, message.payload) == ("detections/box-1", b"queued while offline")


def test_mosquitto_files_stay_in_run_dir(tmp_path: Path) -> None:
    with Mosquitto(tmp_path):
        pass
    assert {"mosquitto.conf", "mosquitto.log", "mosquitto.db"} <= {p.name for p in tmp_path.iterdir()}
    assert "listener" in (tmp_path / "mosquitto.conf").read_text()


def test_mosquitto_port_in_use_raises_with_log_tail(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        broker = Mosquitto(tmp_path, taken.getsockname()[1])
        with pytest.raises(ServiceError, match="(?s)exited.*Address already in use"):
            broker.start()
    assert not broker.is_running()


# --------------------------------------------------------------------------- InfluxDB


def test_influxdb_starts_stops_and_restarts_on_the_same_port(tmp_path: Path) -> None:
    server = InfluxDB(tmp_path)
    assert server.url == f"http://127.0.0.1:{server.port}"
    assert not server.is_running()
    server.start()
    try:
        assert server.is_running()
        assert influx_pings(server.host, server.port)
        port = server.port
        server.restart()
        assert server.port == port
        assert influx_pings(server.host, server.port)
    finally:
        server.stop()
    assert not server.is_running()
    assert not influx_pings(server.host, port)
    assert {"meta", "data", "influxdb.conf"} <= {p.name for p in tmp_path.iterdir()}


def test_influxdb_port_in_use_raises_with_log_tail(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = InfluxDB(tmp_path, taken.getsockname()[1])
        with pytest.raises(ServiceError, match="(?s)exited.*address already in use"):
            server.start()
    assert not server.is_running()


def test_influxdb_refuses_a_query_without_a_login_and_keeps_its_admin_across_restarts(influxdb: InfluxDB,
                                                                                     tmp_path: Path) -> None:
    assert _http(influxdb.host, influxdb.port, "GET", "/query?q=SHOW+DATABASES") == 401
    assert not influx_login_accepted(influxdb.host, influxdb.port, influxdb.username, "not-the-password")
    assert influx_login_accepted(influxdb.host, influxdb.port, influxdb.username, influxdb.password())
    assert influxdb.password_file.stat().st_mode & 0o777 == 0o600
    with InfluxDB(tmp_path) as own:
        own.restart()              # the admin user made at the first start logs in again
        assert influx_login_accepted(own.host, own.port, own.username, own.password())


# --------------------------------------------------------------------------- secured by default, insecure by choice


def test_the_broker_refuses_anonymous_plain_and_untrusting_clients(mosquitto: Mosquitto) -> None:
    probe = mosquitto.deployment.login(PROBE, "probe")
    assert mqtt_login_accepted(mosquitto.host, mosquitto.port, mosquitto.ca_file, probe.username, probe.password())
    assert not mqtt_login_accepted(mosquitto.host, mosquitto.port, mosquitto.ca_file, None, None)   # anonymous
    assert not mqtt_login_accepted(mosquitto.host, mosquitto.port, mosquitto.ca_file, probe.username, "wrong")
    assert not mqtt_broker_answers(mosquitto.host, mosquitto.port)                                  # plain text
    # Without the deployment's CA the client does not trust the broker: the system's CAs do not vouch for it.
    assert not mqtt_login_accepted(mosquitto.host, mosquitto.port, Path("/etc/ssl/certs/ca-certificates.crt"),
                                   probe.username, probe.password())
    config = mosquitto.config_file.read_text()
    assert "allow_anonymous false" in config and "acl_file" in config and "allow_anonymous true" not in config


def test_insecure_services_are_an_explicit_choice_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                             mqtt_clients: list[MqttClient]) -> None:
    with caplog.at_level("WARNING", logger="devstack.services"):
        with Mosquitto(tmp_path / "mqtt", insecure=True) as broker, InfluxDB(tmp_path / "influx", insecure=True) as db:
            assert broker.url.startswith("mqtt://") and mqtt_broker_answers(broker.host, broker.port)
            assert _http(db.host, db.port, "GET", "/query?q=SHOW+DATABASES") == 200
    warned = [r.getMessage() for r in caplog.records if "devstack.insecure" in r.getMessage()]
    assert len(warned) == 2 and all(f"service={name}" in " ".join(warned) for name in ("mosquitto", "influxdb"))


# --------------------------------------------------------------------------- both


def test_two_instances_of_each_run_side_by_side(tmp_path: Path) -> None:
    services = [
        Mosquitto(tmp_path / "mqtt-a"),
        Mosquitto(tmp_path / "mqtt-b"),
        InfluxDB(tmp_path / "influx-a"),
        InfluxDB(tmp_path / "influx-b"),
    ]
    try:
        for service in services:
            service.start()
        ports = [s.port for s in services] + [s.rpc_port for s in services if isinstance(s, InfluxDB)]
        assert len(set(ports)) == len(ports)
        assert all(s.is_running() for s in services)
        assert all(probe_logs_in(s) for s in services[:2])
        assert all(influx_login_accepted(s.host, s.port, s.username, s.password()) for s in services[2:])
    finally:
        for service in services:
            service.stop()


@pytest.mark.parametrize("service_type", [Mosquitto, InfluxDB])
def test_stop_is_idempotent(tmp_path: Path, service_type: type[Mosquitto] | type[InfluxDB]) -> None:
    service = service_type(tmp_path)
    service.stop()
    service.start()
    service.start()  # already running: nothing happens
    service.stop()
    service.stop()
    assert not service.is_running()


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_services_are_stopped_at_interpreter_exit(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from devstack.services import InfluxDB, Mosquitto
        broker = Mosquitto(Path({str(tmp_path / 'mqtt')!r}))
        server = InfluxDB(Path({str(tmp_path / 'influx')!r}))
        broker.start()
        server.start()
        print(broker._process.pid, server._process.pid, flush=True)
        # exits without stop()
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr
    pids = [int(pid) for pid in result.stdout.split()]
    assert len(pids) == 2
    assert not any(pid_is_alive(pid) for pid in pids)


def test_cli_runs_both_until_sigterm(tmp_path: Path) -> None:
    mqtt_port, influx_port = free_port(), free_port()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "devstack.services",
            "--run-dir", str(tmp_path),
            "--mqtt-port", str(mqtt_port),
            "--influx-port", str(influx_port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().strip() for _ in range(2)]
        assert lines == [f"mqtt: mqtts://127.0.0.1:{mqtt_port}", f"influxdb: http://127.0.0.1:{influx_port}"]
        assert port_is_open(mqtt_port)
        assert influx_pings("127.0.0.1", influx_port)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    deadline = time.monotonic() + 5
    while (port_is_open(mqtt_port) or port_is_open(influx_port)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not port_is_open(mqtt_port)
    assert not port_is_open(influx_port)
