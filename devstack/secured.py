"""A Mosquitto broker secured by a provisioned deployment: TLS only, no anonymous login, the ACL on.

Its ``mosquitto.conf`` is the devstack broker's (persistence, queue limits,
logging) with the deployment's ``broker/security.conf`` in place of the open
plain listener. The readiness check makes a TLS connection that verifies the
deployment's CA and counts any CONNACK as an answer: an anonymous probe is
refused, which shows the broker is up and closed.

``reload()`` sends SIGHUP: Mosquitto re-reads the password file, the ACL file
and the CRL, and drops connected password clients whose entry is gone.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
from pathlib import Path

from devstack.services import Mosquitto, ServiceError, _mqtt_connect_packet


def tls_broker_answers(host: str, port: int, ca_file: Path, timeout: float = 1.0) -> bool:
    """True if a broker at host:port completes a verified TLS handshake and answers CONNECT with a CONNACK."""
    context = ssl.create_default_context(cafile=str(ca_file))
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=host) as sock:
            sock.settimeout(timeout)
            sock.sendall(_mqtt_connect_packet(f"devstack-probe-{os.getpid()}"))
            reply = sock.recv(4)
            return len(reply) >= 2 and reply[0] == 0x20
    except (OSError, ssl.SSLError):
        return False


MAX_QUEUED_MESSAGES = 10_000_000


class SecuredMosquitto(Mosquitto):
    """A broker whose listeners, logins and ACL come from a deployment folder (``gateway.provision``)."""

    def __init__(self, run_dir: Path, deployment_dir: Path, *, binary: str | None = None) -> None:
        from json import loads

        place = loads((Path(deployment_dir) / "accounts.json").read_text())["broker"]
        super().__init__(run_dir, place["port"], binary=binary)
        self.deployment_dir = Path(deployment_dir).resolve()
        self.cert_port = place["cert_port"]

    @property
    def url(self) -> str:
        return f"mqtts://{self.host}:{self.port}"

    @property
    def cert_url(self) -> str:
        return f"mqtts://{self.host}:{self.cert_port}"

    def _write_config(self) -> None:
        super()._write_config()
        lines = self.config_file.read_text().splitlines()
        kept = [line for line in lines if not line.startswith(("listener ", "allow_anonymous "))]
        # Mosquitto 2.0.11 with "max_queued_messages 0" (no limit) drops a client's connection right after it
        # answers one of its QoS 1 publishes "not authorized"; a large finite limit (the byte limit stays the
        # real bound) keeps a denied client connected, as the ACL tests need.
        kept = [f"max_queued_messages {MAX_QUEUED_MESSAGES}" if line.startswith("max_queued_messages ") else line
                for line in kept]
        security = (self.deployment_dir / "broker" / "security.conf").read_text()
        self.config_file.write_text("\n".join(kept) + f"\npid_file {self.pid_file}\n" + security)

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "mosquitto.pid"

    def _is_ready(self) -> bool:
        return tls_broker_answers(self.host, self.port, self.deployment_dir / "ca" / "ca.pem", timeout=0.5)

    def reload(self) -> None:
        """SIGHUP: re-read the password file, the ACL and the CRL."""
        if self._process is None or self._process.poll() is not None:
            raise ServiceError("the broker is not running")
        os.kill(self._process.pid, signal.SIGHUP)
