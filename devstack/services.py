"""Run real Mosquitto and InfluxDB 1.x servers on loopback for demos and tests.

Each service writes its own config into a run directory, runs the server in the
foreground as a child process in its own process group, and waits until the
server really answers, logged in: an MQTT CONNACK accepting the deployment's
probe login over TLS verified against the deployment's CA, an InfluxDB query
answered for the admin login.  Data lives in the run directory, so
``restart()`` keeps retained messages, sessions, written points and users.
Anything still running when the interpreter exits is stopped.

Both are secured by default (``Mosquitto``: TLS only, no anonymous login, the
provisioned ACL; ``InfluxDB``: authentication on). ``insecure=True`` gives the
open servers of old, and logs a warning: a caller asks for it and says why.

Command line::

    python -m devstack.services --run-dir DIR [--mqtt-port N] [--influx-port N]
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from http.client import HTTPConnection, HTTPException
from pathlib import Path
from collections.abc import Callable
from types import TracebackType
from typing import IO, Any, Literal, Self
from urllib.parse import urlencode

import paho.mqtt.client as paho

from common.broker import BrokerAddress, BrokerSettings, read_password
from common.mqtt import build_client
from devstack.deployment import PROBE, DevDeployment, Login, LoginKind
from gateway.provision.broker import Listeners, new_password
from gateway.provision.pki import write_private
from gateway.store.influx import InfluxClient, InfluxRejected, quote_ident, quote_string

log = logging.getLogger("devstack.services")

LOOPBACK = "127.0.0.1"
LOG_TAIL_BYTES = 4000


class ServiceError(RuntimeError):
    """A service could not be started, or died while starting."""


def free_port() -> int:
    """Return a TCP port on loopback that nothing listens on right now."""
    return _free_ports(1)[0]


def _free_ports(count: int) -> list[int]:
    """Return ``count`` distinct free ports (sockets held open together so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOOPBACK, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _find_binary(name: str, explicit: str | None) -> str:
    """Locate a server binary; the sbin directories are often missing from PATH."""
    if explicit:
        return explicit
    search_path = os.pathsep.join(
        [os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/sbin"]
    )
    found = shutil.which(name, path=search_path)
    if found is None:
        raise ServiceError(f"{name} is not installed (not found on PATH or in sbin)")
    return found


def _read_tail(path: Path, limit: int = LOG_TAIL_BYTES) -> str:
    """Return the last ``limit`` bytes of a log file, or '' if it does not exist."""
    try:
        with path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            size = log.tell()
            log.seek(max(0, size - limit))
            return log.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


_live_services: set[_Service] = set()
_live_lock = threading.Lock()


def _stop_all_live_services() -> None:
    """atexit hook: stop whatever the caller forgot to stop."""
    with _live_lock:
        services = list(_live_services)
    for service in services:
        with contextlib.suppress(Exception):
            service.stop()


atexit.register(_stop_all_live_services)


class _Service:
    """A server process run in the foreground in its own process group."""

    name = "service"
    start_timeout = 20.0
    stop_timeout = 10.0

    def __init__(self, run_dir: Path, port: int | None, binary: str | None) -> None:
        self.run_dir = Path(run_dir).resolve()
        self.host = LOOPBACK
        self.port = port if port is not None else free_port()
        self._binary = binary
        self._process: subprocess.Popen[bytes] | None = None
        self._console: IO[bytes] | None = None

    # -- to be provided by subclasses -------------------------------------------------

    @property
    def url(self) -> str:
        raise NotImplementedError

    @property
    def log_files(self) -> list[Path]:
        """Log files whose tail explains a failed start."""
        return [self.console_log]

    def _write_config(self) -> None:
        raise NotImplementedError

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _is_ready(self) -> bool:
        raise NotImplementedError

    # -- lifecycle --------------------------------------------------------------------

    @property
    def console_log(self) -> Path:
        """Where the server's stdout and stderr go."""
        return self.run_dir / f"{self.name}.console.log"

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs (for benchmarks that read its CPU time)."""
        return self._process.pid if self.is_running() else None

    def start(self) -> None:
        """Start the server and wait until it answers; no-op if already running."""
        if self.is_running():
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        self._spawn()
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL after ``stop_timeout``. Idempotent."""
        process = self._process
        if process is not None:
            if process.poll() is None:
                self._signal_group(process, signal.SIGTERM)
                try:
                    process.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    self._signal_group(process, signal.SIGKILL)
                    process.wait()
            self._process = None
        if self._console is not None:
            self._console.close()
            self._console = None
        with _live_lock:
            _live_services.discard(self)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would end it: nothing flushed, no clean shutdown. Idempotent."""
        process = self._process
        if process is not None and process.poll() is None:
            self._signal_group(process, signal.SIGKILL)
            process.wait()
        self.stop()

    def pause(self) -> None:
        """SIGSTOP the server: it holds its connections and answers nothing until ``resume``."""
        if self._process is not None and self._process.poll() is None:
            self._signal_group(self._process, signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._signal_group(self._process, signal.SIGCONT)

    def restart(self) -> None:
        """Stop and start again on the same port with the same data."""
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<{type(self).__name__} {self.url} {state} run_dir={self.run_dir}>"

    def _spawn(self) -> None:
        binary = _find_binary(self._binary_name(), self._binary)
        self._console = self.console_log.open("ab")
        try:
            self._process = subprocess.Popen(
                [binary, *self._command()],
                stdin=subprocess.DEVNULL,
                stdout=self._console,
                stderr=subprocess.STDOUT,
                cwd=self.run_dir,
                start_new_session=True,
            )
        except OSError as exc:
            self._console.close()
            self._console = None
            raise ServiceError(f"could not run {binary}: {exc}") from exc
        with _live_lock:
            _live_services.add(self)

    def _binary_name(self) -> str:
        return self.name

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            process = self._process
            if process is None or process.poll() is not None:
                code = None if process is None else process.returncode
                raise ServiceError(
                    f"{self.name} exited with code {code} while starting on port "
                    f"{self.port}\n{self._log_tail()}"
                )
            if self._is_ready():
                return
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"{self.name} did not answer on port {self.port} within "
                    f"{self.start_timeout:.0f}s\n{self._log_tail()}"
                )
            time.sleep(0.05)

    def _log_tail(self) -> str:
        parts = []
        for path in self.log_files:
            tail = _read_tail(path)
            if tail:
                parts.append(f"--- {path} ---\n{tail}")
        return "\n".join(parts) or "(no log output)"

    @staticmethod
    def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
        # The child leads its own session, so its pgid is its pid; signal the whole
        # group in case the server forked helpers.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signum)


def _remaining_length(length: int) -> bytes:
    """MQTT's variable-length encoding of a packet's remaining length."""
    out = bytearray()
    while True:
        length, digit = divmod(length, 128)
        out.append(digit | (0x80 if length else 0))
        if not length:
            return bytes(out)


def _utf8(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def _mqtt_connect_packet(client_id: str, username: str | None = None, password: str | None = None) -> bytes:
    """A minimal MQTT 3.1.1 CONNECT with a clean session, with or without a user name and password."""
    flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    variable_header = b"\x00\x04MQTT" + b"\x04" + bytes([flags]) + (10).to_bytes(2, "big")
    payload = _utf8(client_id)
    payload += _utf8(username) if username is not None else b""
    payload += _utf8(password) if password is not None else b""
    remaining = variable_header + payload
    return b"\x10" + _remaining_length(len(remaining)) + remaining


MQTT_DISCONNECT = b"\xe0\x00"
MQTT_CONNACK_ACCEPTED = b"\x20\x02\x00\x00"


def _connack(sock: socket.socket | ssl.SSLSocket, packet: bytes) -> bytes:
    """Send CONNECT, read the 4-byte CONNACK (b'' when the broker closes first), say goodbye."""
    sock.sendall(packet)
    reply = b""
    while len(reply) < 4:
        chunk = sock.recv(4 - len(reply))
        if not chunk:
            return reply
        reply += chunk
    with contextlib.suppress(OSError):
        sock.sendall(MQTT_DISCONNECT)
    return reply


def mqtt_broker_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """True if an MQTT broker at host:port accepts an anonymous CONNECT on a plain connection."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return _connack(sock, _mqtt_connect_packet(f"devstack-probe-{os.getpid()}")) == MQTT_CONNACK_ACCEPTED
    except OSError:
        return False


def mqtt_login_accepted(host: str, port: int, ca_file: Path, username: str | None, password: str | None,
                        timeout: float = 1.0) -> bool:
    """True if a broker at host:port completes a TLS handshake that verifies it against ``ca_file`` and
    accepts this login (an anonymous one when ``username`` is None)."""
    context = ssl.create_default_context(cafile=str(ca_file))
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=host) as sock:
            sock.settimeout(timeout)
            packet = _mqtt_connect_packet(username or f"devstack-probe-{os.getpid()}", username, password)
            return _connack(sock, packet) == MQTT_CONNACK_ACCEPTED
    except (OSError, ssl.SSLError):
        return False


@dataclass(frozen=True)
class TlsListener:
    """A second, TLS-only listener of an insecure broker: server certificate, and the CA that signs client
    certificates."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    require_client_cert: bool = False


def _warn_insecure(what: str) -> None:
    log.warning("devstack.insecure service=%s access=anonymous,plain-text asked_for=explicitly", what)


class Mosquitto(_Service):
    """A Mosquitto broker on 127.0.0.1 with persistence in ``run_dir``, secured by default.

    Secured (the default): TLS only, with a server certificate from the
    deployment's CA; no anonymous login; the password file and the ACL written
    by the provisioning code (``devstack.deployment``). ``port`` takes password
    logins, ``cert_port`` client certificates. The deployment is ``deployment``
    (shared by the brokers that should know the same accounts), else a new one
    in ``run_dir/deployment``. ``login``/``account`` give (and provision on
    first use) the logins clients use; the readiness check logs in as the
    deployment's probe.

    ``insecure=True`` instead runs a plain listener that takes anonymous clients
    (and, with ``tls``, a second TLS listener), and logs a warning: only for
    callers that say why they need it.
    """

    name = "mosquitto"

    def __init__(
        self, run_dir: Path, port: int | None = None, *, binary: str | None = None,
        deployment: DevDeployment | Path | None = None, cert_port: int | None = None,
        insecure: bool = False, tls: TlsListener | None = None,
    ) -> None:
        if port is None or (cert_port is None and not insecure):
            spare = [p for p in _free_ports(3) if p not in (port, cert_port)]
            port = port if port is not None else spare.pop()
            cert_port = cert_port if cert_port is not None else spare.pop()
        super().__init__(run_dir, port, binary)
        self.insecure = insecure
        self.tls = tls
        self.tls_port: int | None = None
        self.deployment: DevDeployment | None = None
        self.cert_port: int | None = None
        if insecure:
            _warn_insecure("mosquitto")
            self.tls_port = free_port() if tls else None
        else:
            if tls is not None:
                raise ServiceError("tls= is for insecure brokers; a secured broker listens with TLS only")
            self.deployment = deployment if isinstance(deployment, DevDeployment) else \
                DevDeployment(Path(deployment) if deployment is not None else self.run_dir / "deployment")
            self.cert_port = cert_port

    @property
    def url(self) -> str:
        return f"{'mqtt' if self.insecure else 'mqtts'}://{self.host}:{self.port}"

    @property
    def tls_url(self) -> str:
        if not self.insecure:
            return self.url
        if self.tls_port is None:
            raise ServiceError("this broker has no TLS listener")
        return f"mqtts://{self.host}:{self.tls_port}"

    @property
    def cert_url(self) -> str:
        """The listener for client certificates (secured brokers)."""
        if self.cert_port is None:
            raise ServiceError("an insecure broker has no certificate listener")
        return f"mqtts://{self.host}:{self.cert_port}"

    @property
    def ca_file(self) -> Path:
        return self._secured().ca_file

    @property
    def config_file(self) -> Path:
        return self.run_dir / "mosquitto.conf"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "mosquitto.log"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "mosquitto.pid"

    @property
    def log_files(self) -> list[Path]:
        return [self.console_log, self.log_file]

    # ---------------------------------------------------------------- logins

    def login(self, name: str, kind: LoginKind = "harness", *, district: str | None = None,
              districts: tuple[str, ...] = (), auth: Literal["password", "cert"] = "password") -> Login:
        """The login of account ``name`` (see ``DevDeployment.login``), working on this broker when it returns."""
        deployment = self._secured()
        new = not deployment.has_login(name)
        login = deployment.login(name, kind, district=district, districts=districts, auth=auth)
        # Only a new login is tried here: the try is a clean-session login under the account's client id, which
        # would end (and discard) a session the account holds.
        if new and self.is_running() and login.password_file is not None:
            self._wait(lambda: mqtt_login_accepted(self.host, self.port, self.ca_file, login.username,
                                                   login.password(), timeout=0.5), f"the login of {name}")
        return login

    def account(self, name: str, kind: LoginKind = "harness", *, district: str | None = None,
                districts: tuple[str, ...] = (), auth: Literal["password", "cert"] = "password") -> BrokerSettings:
        """``login``'s ``[mqtt]`` settings for this broker (the certificate listener for a certificate login)."""
        login = self.login(name, kind, district=district, districts=districts, auth=auth)
        return login.settings(self.url if login.password_file is not None else self.cert_url)

    def client(self, client_id: str | None = None, kind: LoginKind = "harness", *, district: str | None = None,
               districts: tuple[str, ...] = (), **build: Any) -> paho.Client:
        """A paho MQTT 5 client (``common.mqtt.build_client``, not connected) logging in as account ``client_id``
        (a new test-harness login when None): the broker makes the user name the client id. ``build`` goes to
        ``build_client`` (``factory``, ``manual_ack``). On an insecure broker: an anonymous client."""
        name = client_id or f"harness-{uuid.uuid4().hex[:12]}"
        if self.deployment is None:
            return build_client(name, BrokerAddress.parse(self.url), **build)
        settings = self.account(name, kind, district=district, districts=districts)
        return build_client(name, BrokerAddress.parse(settings.url), settings.credentials(), **build)

    def reload(self) -> None:
        """Write the broker files whole again and SIGHUP: Mosquitto re-reads the password file, the ACL and the
        CRL, and drops connected password clients whose entry is gone."""
        if self._process is None or self._process.poll() is not None:
            raise ServiceError("the broker is not running")
        self._secured().write_broker_files()
        os.kill(self._process.pid, signal.SIGHUP)

    def _reload_if_running(self) -> None:
        if self.is_running():
            self.reload()

    def _secured(self) -> DevDeployment:
        if self.deployment is None:
            raise ServiceError("an insecure broker has no deployment or logins")
        return self.deployment

    def _wait(self, predicate: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise ServiceError(f"{self.name} did not accept {what} within {timeout_s:.0f}s\n{self._log_tail()}")
            time.sleep(0.05)

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        super().start()
        if self.deployment is not None:
            self.deployment.on_new_account(self._reload_if_running)

    def stop(self) -> None:
        if self.deployment is not None:
            self.deployment.forget(self._reload_if_running)
        super().stop()

    def _write_config(self) -> None:
        lines = [
            "persistence true",
            # Mosquitto concatenates location and file name, so the slash matters.
            f"persistence_location {self.run_dir}/",
            "persistence_file mosquitto.db",
            # The default of 1000 queued QoS 1 messages per client would drop messages
            # for a gateway that holds its acknowledgements while InfluxDB is down.
            "max_queued_messages 0",
            "max_queued_bytes 1073741824",
            f"log_dest file {self.log_file}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "log_timestamp true",
            f"pid_file {self.pid_file}",
        ]
        if os.geteuid() == 0:
            # As root mosquitto otherwise drops to user "mosquitto", which cannot
            # write the log or persistence file in our run directory.
            lines.append("user root")
        if self.deployment is None:
            lines += [f"listener {self.port} {self.host}", "allow_anonymous true"]
            if self.tls is not None:
                lines += [
                    "per_listener_settings false",
                    f"listener {self.tls_port} {self.host}",
                    f"cafile {self.tls.ca_file}",
                    f"certfile {self.tls.cert_file}",
                    f"keyfile {self.tls.key_file}",
                    f"require_certificate {'true' if self.tls.require_client_cert else 'false'}",
                ]
            self.config_file.write_text("\n".join(lines) + "\n")
            return
        # Mosquitto 2.0.11 with "max_queued_messages 0" (no limit) drops a client's connection right after it
        # answers one of its QoS 1 publishes "not authorized"; a large finite limit (the byte limit stays the
        # real bound) keeps a denied client connected.
        lines[lines.index("max_queued_messages 0")] = f"max_queued_messages {MAX_QUEUED_MESSAGES}"
        self.deployment.write_broker_files()
        broker_dir = self.deployment.folder / "broker"
        security = Listeners(self.host, self.port, self.cert_port).config_text(
            ca=self.deployment.ca_file, cert=broker_dir / "server.pem", key=broker_dir / "server.key",
            passwd=self.deployment.password_file, acl=self.deployment.acl_file, crl=broker_dir / "crl.pem")
        self.config_file.write_text("\n".join(lines) + "\n" + security)

    def _command(self) -> list[str]:
        return ["-c", str(self.config_file)]

    def _is_ready(self) -> bool:
        if self.deployment is None:
            return mqtt_broker_answers(self.host, self.port, timeout=0.5)
        probe = self.deployment.login(PROBE, "probe")
        return mqtt_login_accepted(self.host, self.port, self.ca_file, probe.username, probe.password(), timeout=0.5)


MAX_QUEUED_MESSAGES = 10_000_000


def _http(host: str, port: int, method: str, path: str, *, body: str | None = None,
          auth: tuple[str, str] | None = None, timeout: float = 1.0) -> int | None:
    """The status of one HTTP request, or None when the server does not answer."""
    # http.client rather than urllib: urllib would honour proxy variables.
    headers = {}
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    connection = HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    except (OSError, HTTPException):
        return None
    finally:
        connection.close()


def influx_pings(host: str, port: int, timeout: float = 1.0) -> bool:
    """True if an InfluxDB at host:port answers ``GET /ping`` with 204 (no login needed for that)."""
    return _http(host, port, "GET", "/ping", timeout=timeout) == 204


def influx_login_accepted(host: str, port: int, username: str, password: str, timeout: float = 1.0) -> bool:
    """True if an InfluxDB at host:port answers a query (``SHOW DATABASES``) made with this login."""
    query = "/query?" + urlencode({"q": "SHOW DATABASES"})
    return _http(host, port, "GET", query, auth=(username, password), timeout=timeout) == 200


class InfluxDB(_Service):
    """An InfluxDB 1.x server on 127.0.0.1 with its data in ``run_dir``, with authentication by default.

    Secured (the default): ``auth-enabled = true``; at the first start an admin
    user (``username``, all privileges) is created with a random password kept
    in ``password_file`` (mode 0600, in ``run_dir``; InfluxDB 1.x lets the
    first admin user be created while no user exists), and the readiness check
    is a query made with that login. ``influx_table()`` is the gateway config's
    ``[influx]`` table that logs in so (it names the password *file*).

    ``insecure=True`` runs without authentication and logs a warning: only for
    callers that say why they need it.
    """

    name = "influxd"
    start_timeout = 60.0
    stop_timeout = 10.0
    username = "admin"

    def __init__(
        self,
        run_dir: Path,
        port: int | None = None,
        *,
        rpc_port: int | None = None,
        binary: str | None = None,
        insecure: bool = False,
    ) -> None:
        if port is None or rpc_port is None:
            spare = [p for p in _free_ports(3) if p not in (port, rpc_port)]
            port = port if port is not None else spare.pop()
            rpc_port = rpc_port if rpc_port is not None else spare.pop()
        super().__init__(run_dir, port, binary)
        self.rpc_port = rpc_port
        self.insecure = insecure
        if insecure:
            _warn_insecure("influxdb")
            self.username = None
        elif not self.password_file.exists():
            # Made now, so that a client's config can name it before the server first starts.
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_private(self.password_file, (new_password() + "\n").encode())

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.run_dir / "influxdb.conf"

    @property
    def password_file(self) -> Path | None:
        """The admin password's file (first line); None without authentication."""
        return None if self.insecure else self.run_dir / "admin-password"

    def password(self) -> str | None:
        return read_password(None, self.password_file)

    def client_login(self) -> dict[str, str | None]:
        """``username`` and ``password`` for ``gateway.store.influx.InfluxClient``."""
        return {"username": self.username, "password": self.password()}

    def influx_table(self, db: str | None = None, user: str | None = None) -> str:
        """The lines of a gateway config's ``[influx]`` table (without the header) that reach this server, as the
        admin or as ``user`` (made by ``database_user``)."""
        login = (self.username, self.password_file) if user is None else (user, self.user_password_file(user))
        fields = {"url": self.url, "db": db, "username": login[0], "password_file": login[1]}
        return "".join(f"{key} = {json.dumps(str(value))}\n" for key, value in fields.items() if value is not None)

    def user_password_file(self, user: str) -> Path:
        return self.run_dir / "users" / f"{user}-password"

    def database_user(self, db: str, user: str) -> Path:
        """Make database ``db`` and a user with rights on it alone (not an admin); returns the user's password
        file (mode 0600). A user made before keeps its password."""
        if self.insecure:
            raise ServiceError("an InfluxDB without authentication has no users")
        password_file = self.user_password_file(user)
        if not password_file.exists():
            password_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_private(password_file, (new_password() + "\n").encode())
        with InfluxClient(self.url, db, **self.client_login()) as admin:   # statements go in the request body
            admin.create_database()
            try:
                admin.query(f"CREATE USER {quote_ident(user)} WITH PASSWORD "
                            f"{quote_string(password_file.read_text().strip())}")
            except InfluxRejected as exc:
                if "already exists" not in exc.message:
                    raise
            admin.query(f"GRANT ALL ON {quote_ident(db)} TO {quote_ident(user)}")
        return password_file

    def _write_config(self) -> None:
        run_dir = self.run_dir
        self.config_file.write_text(
            f"""\
reporting-disabled = true
bind-address = "{self.host}:{self.rpc_port}"

[meta]
  dir = "{run_dir / 'meta'}"

[data]
  dir = "{run_dir / 'data'}"
  wal-dir = "{run_dir / 'wal'}"
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "{self.host}:{self.port}"
  auth-enabled = {'false' if self.insecure else 'true'}
  log-enabled = false
  pprof-enabled = false

[logging]
  level = "warn"

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false

[[graphite]]
  enabled = false

[[collectd]]
  enabled = false

[[opentsdb]]
  enabled = false

[[udp]]
  enabled = false
"""
        )

    def _command(self) -> list[str]:
        return ["-config", str(self.config_file)]

    def _is_ready(self) -> bool:
        if not influx_pings(self.host, self.port, timeout=0.5):
            return False
        if self.insecure:
            return True
        password = self.password()
        if influx_login_accepted(self.host, self.port, self.username, password, timeout=2.0):
            return True
        # No user yet (a first start): InfluxDB takes the first admin user without a login. The password goes
        # in the request body, never into a URL.
        statement = f"CREATE USER \"{self.username}\" WITH PASSWORD '{password}' WITH ALL PRIVILEGES"
        status = _http(self.host, self.port, "POST", "/query", body=urlencode({"q": statement}), timeout=2.0)
        if status == 401:
            raise ServiceError(f"{self.name} on port {self.port} refuses the admin login in {self.password_file}")
        return influx_login_accepted(self.host, self.port, self.username, password, timeout=2.0)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.services",
        description="Run Mosquitto and InfluxDB on loopback until interrupted.",
    )
    parser.add_argument("--run-dir", type=Path, required=True, help="config, logs and data")
    parser.add_argument("--mqtt-port", type=int, default=None)
    parser.add_argument("--influx-port", type=int, default=None)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start both services, print their URLs, and stop them on SIGINT or SIGTERM."""
    args = _parse_args(argv)
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop_requested.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    mosquitto = Mosquitto(args.run_dir / "mosquitto", args.mqtt_port)
    influxdb = InfluxDB(args.run_dir / "influxdb", args.influx_port)
    try:
        mosquitto.start()
        influxdb.start()
    except ServiceError as exc:
        mosquitto.stop()
        influxdb.stop()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"mqtt: {mosquitto.url}", flush=True)
    print(f"influxdb: {influxdb.url}", flush=True)
    print(f"mqtt CA: {mosquitto.ca_file}; accounts: {mosquitto.deployment.folder} (gateway provision-* --dir)",
          flush=True)
    print(f"influxdb login: {influxdb.username}, password in {influxdb.password_file}", flush=True)
    try:
        while not stop_requested.wait(0.5):
            for service in (mosquitto, influxdb):
                if not service.is_running():
                    print(f"error: {service.name} exited unexpectedly", file=sys.stderr)
                    return 1
    finally:
        mosquitto.stop()
        influxdb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
