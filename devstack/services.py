"""Run real Mosquitto and InfluxDB 1.x servers on loopback for demos and tests.

Each service writes its own config into a run directory, runs the server in the
foreground as a child process in its own process group, and waits until the
server really answers (an MQTT CONNACK, an HTTP 204 from ``/ping``).  Data lives
in the run directory, so ``restart()`` keeps retained messages, sessions and
written points.  Anything still running when the interpreter exits is stopped.

Command line::

    python -m devstack.services --run-dir DIR [--mqtt-port N] [--influx-port N]
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.client import HTTPConnection, HTTPException
from pathlib import Path
from types import TracebackType
from typing import IO, Self

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


def _mqtt_connect_packet(client_id: str) -> bytes:
    """A minimal MQTT 3.1.1 CONNECT with a clean session and no credentials."""
    client = client_id.encode()
    variable_header = b"\x00\x04MQTT" + b"\x04" + b"\x02" + (10).to_bytes(2, "big")
    payload = len(client).to_bytes(2, "big") + client
    remaining = variable_header + payload
    assert len(remaining) < 128, "remaining length must fit in one byte here"
    return bytes([0x10, len(remaining)]) + remaining


MQTT_DISCONNECT = b"\xe0\x00"
MQTT_CONNACK_ACCEPTED = b"\x20\x02\x00\x00"


def mqtt_broker_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """True if an MQTT broker at host:port accepts an anonymous CONNECT."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(_mqtt_connect_packet(f"devstack-probe-{os.getpid()}"))
            reply = b""
            while len(reply) < 4:
                chunk = sock.recv(4 - len(reply))
                if not chunk:
                    return False
                reply += chunk
            with contextlib.suppress(OSError):
                sock.sendall(MQTT_DISCONNECT)
            return reply == MQTT_CONNACK_ACCEPTED
    except OSError:
        return False


@dataclass(frozen=True)
class TlsListener:
    """A second, TLS-only listener: server certificate, and the CA that signs client certificates."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    require_client_cert: bool = False


class Mosquitto(_Service):
    """A Mosquitto broker on 127.0.0.1 with persistence in ``run_dir``.

    With ``tls`` it also listens with TLS on ``tls_port`` (the plain port stays
    for the readiness check).
    """

    name = "mosquitto"

    def __init__(
        self, run_dir: Path, port: int | None = None, *, binary: str | None = None,
        tls: TlsListener | None = None,
    ) -> None:
        super().__init__(run_dir, port, binary)
        self.tls = tls
        self.tls_port = free_port() if tls else None

    @property
    def tls_url(self) -> str:
        if self.tls_port is None:
            raise ServiceError("this broker has no TLS listener")
        return f"mqtts://{self.host}:{self.tls_port}"

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.run_dir / "mosquitto.conf"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "mosquitto.log"

    @property
    def log_files(self) -> list[Path]:
        return [self.console_log, self.log_file]

    def _write_config(self) -> None:
        lines = [
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
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
        ]
        if self.tls is not None:
            lines += [
                "per_listener_settings false",
                f"listener {self.tls_port} {self.host}",
                f"cafile {self.tls.ca_file}",
                f"certfile {self.tls.cert_file}",
                f"keyfile {self.tls.key_file}",
                f"require_certificate {'true' if self.tls.require_client_cert else 'false'}",
            ]
        if os.geteuid() == 0:
            # As root mosquitto otherwise drops to user "mosquitto", which cannot
            # write the log or persistence file in our run directory.
            lines.append("user root")
        self.config_file.write_text("\n".join(lines) + "\n")

    def _command(self) -> list[str]:
        return ["-c", str(self.config_file)]

    def _is_ready(self) -> bool:
        return mqtt_broker_answers(self.host, self.port, timeout=0.5)


def influx_pings(host: str, port: int, timeout: float = 1.0) -> bool:
    """True if an InfluxDB at host:port answers ``GET /ping`` with 204."""
    # http.client rather than urllib: urllib would honour proxy variables.
    connection = HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", "/ping")
        return connection.getresponse().status == 204
    except (OSError, HTTPException):
        return False
    finally:
        connection.close()


class InfluxDB(_Service):
    """An InfluxDB 1.x server on 127.0.0.1 with its data in ``run_dir``."""

    name = "influxd"
    start_timeout = 60.0
    stop_timeout = 10.0

    def __init__(
        self,
        run_dir: Path,
        port: int | None = None,
        *,
        rpc_port: int | None = None,
        binary: str | None = None,
    ) -> None:
        if port is None or rpc_port is None:
            spare = [p for p in _free_ports(3) if p not in (port, rpc_port)]
            port = port if port is not None else spare.pop()
            rpc_port = rpc_port if rpc_port is not None else spare.pop()
        super().__init__(run_dir, port, binary)
        self.rpc_port = rpc_port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.run_dir / "influxdb.conf"

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
  auth-enabled = false
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
        return influx_pings(self.host, self.port, timeout=0.5)


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
