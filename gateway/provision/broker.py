"""What Mosquitto (2.0) reads to know who may do what: the password file, the ACL file and the listeners.

Why plain password + ACL files and not the dynamic-security plugin: the files
are written whole from the deployment's account list, so they are exactly
reproducible, reviewable in a diff, and written without a running broker or
an admin login; a reload (SIGHUP) makes Mosquitto 2.0.11 re-read both, drop
every connected password client whose entry is gone, and re-read the CRL of
the certificate listener. ``%u``/``%c`` ACL patterns fill whole topic levels
only, so they cannot pin a box to its district: every account gets its own
``user`` block with literal topics instead.

The password file holds Mosquitto's own hash, the format ``mosquitto_passwd``
writes (``$7$``: PBKDF2-HMAC-SHA512, salt and hash base64), made with the
standard library's ``hashlib.pbkdf2_hmac``. Passwords are random 256-bit
strings, so the iteration count (Mosquitto's default, 101) is not what keeps
them from being guessed.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path

from contract import Kind, subscription

PBKDF2_ITERATIONS = 101     # what mosquitto_passwd 2.0 writes
SALT_BYTES = 12

BOX_WRITES = (Kind.DETECTION, Kind.SENSOR, Kind.HEALTH, Kind.STATUS, Kind.CONFIG_ACK, Kind.EVIDENCE, Kind.SEAL)
GATEWAY_READS = (Kind.DETECTION, Kind.SENSOR, Kind.HEALTH, Kind.STATUS, Kind.EVIDENCE, Kind.SEAL)
# What the gateway sends a box (the contract's confirmations and resend requests) and the box must read.
GATEWAY_WRITES = (Kind.CONFIRM, Kind.RESEND)
BOX_READS = (Kind.CONFIG, *GATEWAY_WRITES)


def new_password() -> str:
    return secrets.token_urlsafe(32)


def password_line(username: str, password: str, *, salt: bytes | None = None) -> str:
    """One line of a Mosquitto password file, as ``mosquitto_passwd`` would write it."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    return f"{username}:$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def read_password_file(path: Path) -> dict[str, str]:
    """username -> the rest of its line (the hash)."""
    if not path.exists():
        return {}
    entries = {}
    for line in path.read_text().splitlines():
        name, sep, rest = line.partition(":")
        if sep:
            entries[name] = rest
    return entries


def write_password_file(path: Path, entries: dict[str, str]) -> None:
    from gateway.provision.pki import write_private

    write_private(path, "".join(f"{name}:{rest}\n" for name, rest in sorted(entries.items())).encode())


@dataclass(frozen=True)
class Grant:
    """One account's rights, as literal topic filters."""

    user: str
    comment: str
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    readwrite: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        out = [f"# {self.comment}", f"user {self.user}"]
        out += [f"topic write {t}" for t in self.write]
        out += [f"topic read {t}" for t in self.read]
        out += [f"topic readwrite {t}" for t in self.readwrite]
        return out


def box_grant(box: str, district: str) -> Grant:
    """Publish only under its own ``city/{district}/{box}/…``; read only its own config (operator -> box) and its
    own confirmations and resend requests (gateway -> box)."""
    writes = tuple(subscription(kind, district, box) for kind in BOX_WRITES)
    reads = tuple(subscription(kind, district, box) for kind in BOX_READS)
    return Grant(box, f"box {box}, district {district}", read=reads, write=writes)


def gateway_grant(name: str, districts: list[str]) -> Grant:
    """Read what the gateway ingests, from every district or from its own; write only the confirmations and
    resend requests the contract has it send to those districts' boxes."""
    scope = districts or ["+"]
    reads = tuple(subscription(kind, district) for district in scope for kind in GATEWAY_READS)
    writes = tuple(subscription(kind, district) for district in scope for kind in GATEWAY_WRITES)
    return Grant(name, f"gateway {name}, districts {','.join(districts) or 'all'}", read=reads, write=writes)


def operator_grant(name: str, districts: list[str]) -> Grant:
    """Write (and read back) the retained config of the boxes of its districts; read their acks and status."""
    scope = districts or ["+"]
    return Grant(name, f"operator {name}, districts {','.join(districts) or 'all'}",
                 readwrite=tuple(subscription(Kind.CONFIG, d) for d in scope),
                 read=tuple(subscription(kind, d) for d in scope for kind in (Kind.CONFIG_ACK, Kind.STATUS)))


def acl_text(grants: list[Grant]) -> str:
    lines = ["# Written by `gateway provision-*` from accounts.json; changes here are overwritten.",
             "# No topic is open to everyone: there is no pattern line and no anonymous access.", ""]
    for grant in grants:
        lines += grant.lines() + [""]
    return "\n".join(lines)


@dataclass(frozen=True)
class Listeners:
    """Where the broker listens: a TLS port for password logins, one for client certificates."""

    host: str
    port: int
    cert_port: int

    def config_text(self, *, ca: Path, cert: Path, key: Path, passwd: Path, acl: Path, crl: Path) -> str:
        """The security part of a mosquitto.conf; the rest (persistence, logging) is the operator's."""
        tls = [f"cafile {ca}", f"certfile {cert}", f"keyfile {key}", "tls_version tlsv1.2",
               # A client's id is its user name: no account can take over another's session by its client id.
               "use_username_as_clientid true"]
        return "\n".join([
            "# Written by `gateway provision-*`; changes here are overwritten.",
            "per_listener_settings false",
            "allow_anonymous false",
            f"password_file {passwd}",
            f"acl_file {acl}",
            f"listener {self.port} {self.host}",
            *tls,
            "require_certificate false",
            f"listener {self.cert_port} {self.host}",
            *tls,
            "require_certificate true",
            "use_identity_as_username true",
            f"crlfile {crl}",
            "",
        ])
