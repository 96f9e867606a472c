"""Fixtures for gateway tests: an in-process ingest on the real InfluxDB, and gateway processes."""

from __future__ import annotations

import json
import re
import threading
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gateway.config import GatewayConfig
from gateway.ingest.batches import Ingest
from gateway.store.influx import InfluxClient
from gateway.store.influxdb import InfluxStore
from gateway.store.schema import PRECISION
from gateway.store.writer import InfluxWriter

ROOT = Path(__file__).resolve().parents[2]


def gateway_config(influx_url: str, db: str, evidence_dir: Path, *, influx_login: dict | None = None,
                   **changes) -> GatewayConfig:
    """A gateway config on this InfluxDB; ``influx_login`` is its ``[influx]`` login (``username``,
    ``password_file``), as ``influx_login(server)`` gives it."""
    raw = {"influx": {"url": influx_url, "db": db, **(influx_login or {})}, "evidence_dir": str(evidence_dir),
           "retry": {"initial_s": 0.05, "max_s": 0.2}, **changes}
    return GatewayConfig.model_validate(raw)


def influx_login(server) -> dict:
    """The ``[influx]`` login fields of a devstack InfluxDB (none for an insecure one)."""
    if server.username is None:
        return {}
    return {"username": server.username, "password_file": str(server.password_file)}


class IngestWithWriter(Ingest):
    """An ingest on InfluxDB whose batches the tests write in this process, with the writer process's own
    ``InfluxWriter`` (waits out InfluxDB, never drops), instead of starting the writer process."""

    def __init__(self, config: GatewayConfig, client: InfluxClient) -> None:
        super().__init__(config, InfluxStore(client))
        self.writer = InfluxWriter(client, config.retry, threading.Event(), self.stats, self.clock)

    def write_until_stored(self, points) -> bool:
        return self.writer.write_until_stored(points)


@pytest.fixture
def make_ingest(influxdb, influx_db_name, tmp_path) -> Iterator[Callable[..., Ingest]]:
    """Start an Ingest on the test's database, as `gateway run` does before subscribing."""
    clients: list[InfluxClient] = []

    def make(**changes) -> Ingest:
        config = gateway_config(influxdb.url, influx_db_name, tmp_path / "evidence", influx_login=influx_login(influxdb),
                                **changes)
        client = InfluxClient(influxdb.url, influx_db_name, precision=PRECISION, **influxdb.client_login())
        clients.append(client)
        client.create_database()
        ingest = IngestWithWriter(config, client)
        ingest.restore()
        return ingest

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def influx(influxdb, influx_db_name) -> Iterator[InfluxClient]:
    with InfluxClient(influxdb.url, influx_db_name, precision=PRECISION, **influxdb.client_login()) as client:
        yield client


class Collected:
    """A callback that keeps what it is called with, from any thread: ``Collected()(items)``, then ``.items``."""

    def __init__(self) -> None:
        self.items: list = []
        self.lock = threading.Lock()

    def __call__(self, items: list) -> None:
        with self.lock:
            self.items.extend(items)

    def wait_for(self, count: int, timeout_s: float = 20.0) -> list:
        """A copy of the items once there are ``count``; AssertionError (naming how many came) if not in time."""
        def enough() -> list | None:
            with self.lock:
                return list(self.items) if len(self.items) >= count else None
        try:
            return wait_for(enough, timeout_s, 0.02)
        except AssertionError:
            raise AssertionError(f"{len(self.items)} of {count} arrived within {timeout_s} s") from None


def wait_for(predicate, timeout_s: float = 30.0, every_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(every_s)


@pytest.fixture
def wait() -> Callable:
    return wait_for


class GatewayProcess:
    """`gateway run` as a child process, with its log in a file.

    ``mqtt_login`` and ``influx_login`` are the lines of its ``[mqtt]`` and ``[influx]`` tables that log in
    (they name password files); ``config_text`` must not hold those tables itself."""

    def __init__(self, mqtt_url: str, influx_url: str, db: str, workdir: Path, client_id: str,
                 config_text: str = "", mqtt_login: str = "", influx_login: str = "") -> None:
        self.log_path = workdir / f"{client_id}.log"
        self.config_path = workdir / f"{client_id}.toml"
        # Each test's gateways form their own share group: the persistent sessions of earlier
        # tests' gateways would otherwise be handed a share of this test's messages.
        group = re.sub(r"[^a-z0-9_-]", "-", f"g{db}".lower())[:60]
        retry = "" if "[retry]" in config_text else "\n[retry]\ninitial_s = 0.1\nmax_s = 0.5\n"
        self.config_path.write_text(f"{config_text}{retry}\n[mqtt]\nshare_group = \"{group}\"\n{mqtt_login}"
                                    f"\n[influx]\n{influx_login}")
        self.args = [sys.executable, "-m", "gateway.cli", "run", "--config", str(self.config_path),
                     "--mqtt", mqtt_url, "--influx", influx_url, "--db", db,
                     "--evidence-dir", str(workdir / "evidence"), "--client-id", client_id]
        self.process: subprocess.Popen | None = None

    def start(self) -> "GatewayProcess":
        log = self.log_path.open("a")
        self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        log.close()
        wait_for(lambda: self.process.poll() is not None or "mqtt.connected" in self.log(), 30, 0.1)
        assert self.process.poll() is None, self.log()
        time.sleep(0.3)  # the SUBACK follows the CONNACK
        return self

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        stop_process(self.process)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


def stop_process(process: subprocess.Popen | None) -> None:
    """End a child process that still runs: asked to first, killed if it takes more than 15 s."""
    if process and process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


class HookReceiver:
    """A webhook receiver on loopback: answers 503 to the first ``failures`` POSTs, then 204, and keeps
    (status, headers, body) of each."""

    def __init__(self, failures: int = 0) -> None:
        received = self.received = []
        left = [failures]

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = 503 if left[0] > 0 else 204
                left[0] -= 1
                received.append((status, dict(self.headers), body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[dict]:
        """The notifications it accepted."""
        return [json.loads(body) for status, _, body in self.received if status == 204]

    def close(self) -> None:
        self.server.shutdown()


def login_lines(table: dict) -> str:
    return "".join(f"{key} = \"{value}\"\n" for key, value in table.items())


@pytest.fixture
def gateway_process(mosquitto, influxdb, influx_db_name, tmp_path) -> Iterator[Callable[..., GatewayProcess]]:
    """``start(config_text, client_id, mqtt_url, influx_url, influx_server)``: a `gateway run` logging in with a
    gateway account named ``client_id`` (provisioned on the session's deployment) and InfluxDB's admin login
    (of ``influx_server`` when the test runs its own InfluxDB)."""
    started: list[GatewayProcess] = []

    def start(config_text: str = "", client_id: str | None = None, mqtt_url: str | None = None,
              influx_url: str | None = None, influx_server=None) -> GatewayProcess:
        client_id = client_id or f"gw-{influx_db_name}"
        login = mosquitto.login(client_id, "gateway")
        server = influx_server or influxdb
        process = GatewayProcess(mqtt_url or mosquitto.url, influx_url or server.url, influx_db_name, tmp_path,
                                 client_id, config_text, mqtt_login=login.toml(mqtt_url or mosquitto.url),
                                 influx_login=login_lines(influx_login(server)))
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "--log-level", "WARNING", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture
def cli() -> Callable[..., subprocess.CompletedProcess]:
    return run_cli


def publish_all(broker, messages: list[tuple[str, bytes]], client_id: str | None = None,
                pause_s: float = 0.0) -> None:
    """Publish with QoS 1 as a test-harness login of ``broker`` (a devstack Mosquitto) and wait until the broker
    has every message."""
    client = broker.client(client_id or f"publisher-{uuid.uuid4().hex[:8]}")
    client.max_inflight_messages_set(100)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        infos = []
        for topic, payload in messages:
            infos.append(client.publish(topic, payload, qos=1))
            if pause_s:
                time.sleep(pause_s)
        for info in infos:
            info.wait_for_publish(timeout=30)
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def publish(mosquitto) -> Callable[..., None]:
    """``publish(messages, broker=None, client_id=None, pause_s=0)``: on the session's broker or ``broker``."""
    def publish(messages, broker=None, **kwargs) -> None:
        publish_all(broker or mosquitto, messages, **kwargs)
    return publish
