"""Ed25519 keys for signed operator actions and box chain seals: the one module that signs and verifies
(``cryptography``).

An operator signs with a private key kept in a PEM file (PKCS#8, mode 0600);
a box trusts public keys written in its firmware config as
``"NAME:BASE64"`` (the 32 raw bytes of the key, base64), where ``NAME`` is
the key's id, sent along with every signature so the box knows which key to
try. Keys are read from files and never logged; ``KeyRing`` logs key ids only.

A box signs its chain seals (``contract.chain``) with a key of its own, made
by ``gateway provision-box`` in the same PEM format; the gateway finds the
public halves as ``NAME.pub`` files (one ``NAME:BASE64`` line) in a folder
(``public_keys_in``).

    SigningError            a key cannot be read or used
    BadSignature            a signature does not verify, or names an unknown key
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from common.files import open_private, private_dir

KEY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_KEY_ID_RE = re.compile(KEY_ID_PATTERN)


class SigningError(ValueError):
    """A key cannot be read or used; the message names the file or the key id, never the key."""


class BadSignature(ValueError):
    """A signature that does not verify, or that names a key this side does not trust."""


@dataclass(frozen=True)
class Signer:
    """An operator's private key and the id the box knows its public key by."""

    key_id: str
    _key: Ed25519PrivateKey

    def sign(self, data: bytes) -> str:
        return base64.b64encode(self._key.sign(data)).decode()

    def public_entry(self) -> str:
        """The ``NAME:BASE64`` line for a box's ``trusted_keys``."""
        raw = self._key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return f"{self.key_id}:{base64.b64encode(raw).decode()}"

    def __repr__(self) -> str:  # never show the key
        return f"Signer(key_id={self.key_id!r})"


def check_key_id(key_id: str) -> str:
    if not _KEY_ID_RE.fullmatch(key_id):
        raise SigningError(f"key id {key_id!r} does not match {KEY_ID_PATTERN}")
    return key_id


def generate_signer(key_id: str) -> Signer:
    return Signer(check_key_id(key_id), Ed25519PrivateKey.generate())


def write_private_key(signer: Signer, path: Path) -> None:
    """PEM (PKCS#8, unencrypted) in a file only its owner may read, created that way (no window)."""
    pem = signer._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    private_dir(path.parent)
    with open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL) as f:
        f.write(f"# key-id: {signer.key_id}\n".encode() + pem)


def load_signer(path: Path, key_id: str | None = None) -> Signer:
    """A private key from its file; the key id from ``key_id`` or the file's ``# key-id:`` line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningError(f"cannot read key file {path}: {exc.strerror}") from None
    if key_id is None:
        first = data.split(b"\n", 1)[0].decode(errors="replace")
        if not first.startswith("# key-id:"):
            raise SigningError(f"key file {path} names no key id (first line '# key-id: NAME'); give one")
        key_id = first.removeprefix("# key-id:").strip()
    pem = data[data.index(b"-----BEGIN"):] if b"-----BEGIN" in data else data
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise SigningError(f"key file {path} holds no unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"key file {path} holds no Ed25519 key")
    return Signer(check_key_id(key_id), key)


def parse_public_entry(entry: str) -> tuple[str, Ed25519PublicKey]:
    """``NAME:BASE64`` -> (key id, public key); SigningError says what is wrong with it."""
    key_id, sep, text = entry.partition(":")
    if not sep:
        raise SigningError("a trusted key is written NAME:BASE64")
    check_key_id(key_id)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SigningError(f"trusted key {key_id!r} is not base64") from None
    if len(raw) != 32:
        raise SigningError(f"trusted key {key_id!r} is not a 32-byte Ed25519 public key")
    return key_id, Ed25519PublicKey.from_public_bytes(raw)


class KeyRing:
    """The public keys a box trusts, by id."""

    def __init__(self, entries: list[str]) -> None:
        self._keys = dict(parse_public_entry(entry) for entry in entries)

    def __bool__(self) -> bool:
        return bool(self._keys)

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def verify(self, key_id: str, signature: str, data: bytes) -> None:
        key = self._keys.get(key_id)
        if key is None:
            raise BadSignature(f"signed by key {key_id!r}, which this box does not trust")
        try:
            raw = base64.b64decode(signature, validate=True)
            key.verify(raw, data)
        except (binascii.Error, ValueError, InvalidSignature):
            raise BadSignature(f"signature does not verify with key {key_id!r}") from None


def verify_with(key: Ed25519PublicKey, signature: str, data: bytes) -> bool:
    """Whether ``signature`` (base64) is ``key``'s over ``data``; never raises on bad input."""
    try:
        key.verify(base64.b64decode(signature, validate=True), data)
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


def public_keys_in(folder: Path) -> dict[str, Ed25519PublicKey]:
    """The public keys of a folder of ``NAME.pub`` files, by key id; a file that does not parse is skipped (the
    caller logs the names it lacks). The key id must be the file's name."""
    keys: dict[str, Ed25519PublicKey] = {}
    try:
        files = sorted(folder.glob("*.pub"))
    except OSError:
        return keys
    for path in files:
        try:
            key_id, key = parse_public_entry(path.read_text().strip())
        except (OSError, SigningError):
            continue
        if key_id == path.stem:
            keys[key_id] = key
    return keys
