"""Where a broker is and how to log in to it: addresses, credentials, the config table. No paho here."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from pydantic import Field, model_validator

from common.validation import Strict


class BrokerAddressError(ValueError):
    """A broker URL that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where the broker is: ``mqtt://host[:1883]`` or ``mqtts://host[:8883]`` (TLS)."""

    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> Self:
        scheme, sep, rest = url.partition("://")
        if not sep or scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise BrokerAddressError(f"broker URL {url!r} must start with mqtt:// or mqtts://")
        tls = scheme in ("mqtts", "ssl")
        hostport = rest.rstrip("/")
        host, colon, port_text = hostport.rpartition(":")
        if not colon or "]" in port_text:
            host, port_text = hostport, ""
        host = host.strip("[]")
        if not host:
            raise BrokerAddressError(f"broker URL {url!r} has no host")
        try:
            port = int(port_text) if port_text else (8883 if tls else 1883)
        except ValueError:
            raise BrokerAddressError(f"broker URL {url!r} has a bad port {port_text!r}") from None
        if not 0 < port < 65536:
            raise BrokerAddressError(f"broker URL {url!r} has a port out of range")
        return cls(host, port, tls)


@dataclass(frozen=True)
class Credentials:
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


def check_no_credentials_in_url(url: str) -> None:
    """A URL with ``user:password@`` would put the password into every log line that names the server."""
    scheme, sep, rest = url.partition("://")
    if "@" in (rest.split("/", 1)[0] if sep else url):
        raise ValueError("the URL holds credentials: give username and password_env or password_file instead")


class InsecureAccessError(ValueError):
    """A config that would reach a broker or database in plain text or anonymously without saying so;
    ``problems`` lists ``key.path: message`` lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def allow_or_refuse(problems: list[str], insecure: bool, key: str, log) -> None:
    """Refuse ``problems`` unless the config's ``{key}.insecure`` allows them; then log them as a warning."""
    if not problems:
        return
    if not insecure:
        raise InsecureAccessError([*problems, f"{key}.insecure: set true to allow this explicitly"])
    log.warning("%s.insecure %s (%s.insecure = true)", key, "; ".join(problems), key)


def read_password(password_env: str | None, password_file: Path | None) -> str | None:
    """The password from an environment variable, or the first line of a file; None when neither is set."""
    if password_env:
        return os.environ.get(password_env)
    if password_file:
        return password_file.read_text().splitlines()[0].strip()
    return None


class BrokerSettings(Strict):
    """How to reach and log in to a broker, as a config table."""

    url: str = Field("mqtt://127.0.0.1:1883", description="Broker URL, mqtt://host:port or mqtts://host:port (TLS).")
    username: str | None = Field(None, description="Broker user name.")
    password_env: str | None = Field(None, description="Environment variable holding the password.")
    password_file: Path | None = Field(None, description="File holding the password (first line).")
    ca_file: Path | None = Field(None, description="CA bundle for mqtts:// brokers.")
    cert_file: Path | None = Field(None, description="Client certificate, for brokers that require one.")
    key_file: Path | None = Field(None, description="Private key of the client certificate.")
    insecure: bool = Field(False, description=(
        "Allow a plain-text mqtt:// broker or a login with neither username nor cert_file (anonymous). An explicit "
        "choice, logged as a warning at start; without it the box and the gateway refuse such a broker."))

    @model_validator(mode="after")
    def _certificate_with_key(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        if self.password_env and self.password_file:
            raise ValueError("password_env and password_file: give one of them")
        check_no_credentials_in_url(self.url)
        return self

    def security_problems(self, url: str | None = None, key: str = "mqtt") -> list[str]:
        """What is not secure about reaching ``url`` (default ``self.url``) with these settings: plain text,
        no login."""
        url = url or self.url
        problems = []
        if not BrokerAddress.parse(url).tls:
            problems.append(f"{key}.url: {url} is plain text; use mqtts:// with ca_file")
        if not self.username and self.cert_file is None:
            problems.append(f"{key}.username: no login (anonymous); give username and password_file, or cert_file "
                            "and key_file")
        return problems

    def check_secure(self, log, url: str | None = None, key: str = "mqtt") -> None:
        """Raise ``InsecureAccessError`` for a plain-text or anonymous broker unless ``insecure`` allows it (then
        log it)."""
        allow_or_refuse(self.security_problems(url, key), self.insecure, key, log)

    def credentials(self) -> Credentials:
        """The credentials these settings name, the password read now."""
        def text(path: Path | None) -> str | None:
            return str(path) if path else None

        return Credentials(self.username, read_password(self.password_env, self.password_file),
                           text(self.ca_file), text(self.cert_file), text(self.key_file))
