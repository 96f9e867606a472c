"""The hash chain over each box's messages, and the seal that signs its head (optional v1 additions).

Every message that carries a ``seq`` (detection, sensor reading, health)
carries ``prev`` too: the sha256 of the exact bytes the box published as the
message with the seq before it (``GENESIS`` for the first message of a
chain). The box appends ``"prev":"<hex>"`` as the last field of the JSON it
built (``link``), so the bytes are fixed once spooled: a re-send is
byte-identical and the gateway hashes what it received (``digest``).

Every so many messages or seconds the box signs the chain head with its own
Ed25519 key and publishes a ``Seal`` on ``city/{district}/{box}/seal``: the
head's seq and hash. The signature covers ``SEAL_PREFIX`` and the seal's
fields (``Seal.signed_bytes``), so no canonical JSON is needed. One valid
seal vouches for its head and, link by link, for every message before it.
Signing and verifying are ``common.signing``; only the encoding lives here.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated

from pydantic import Field

from contract.errors import ContractError
from contract.payloads import SHA256_PATTERN, Count, EpochMs, Message, Name

GENESIS = "0" * 64
SEAL_PREFIX = b"streetwatch chain seal v1\n"
_PREV_FIELD = b',"prev":"'
_PREV_TAIL = re.compile(rb',"prev":"([0-9a-f]{64})"\}$')

Sha256 = Annotated[str, Field(pattern=SHA256_PATTERN)]


def digest(payload: bytes) -> str:
    """The chain hash of a message: sha256 over the exact bytes published, hex."""
    return hashlib.sha256(payload).hexdigest()


def link(payload: bytes, prev: str) -> bytes:
    """``payload`` (a JSON object without ``prev``) with ``"prev": prev`` appended as its last field."""
    if not payload.endswith(b"}") or len(payload) < 3 or _PREV_FIELD in payload:
        raise ContractError("only a JSON object without a prev field can be linked")
    return payload[:-1] + _PREV_FIELD + prev.encode() + b'"}'


def prev_of(payload: bytes) -> str | None:
    """The ``prev`` a linked payload carries (it is its last field), without parsing the JSON."""
    found = _PREV_TAIL.search(payload)
    return found.group(1).decode() if found else None


class Seal(Message):
    """Box -> gateway on ``seal``: the box's signature over its chain head."""

    box: Name
    district: Name
    seq: Count = Field(description="Seq of the chain head: the last message the box linked before sealing.")
    head: Sha256 = Field(description="sha256 of that message's exact bytes.")
    ts: EpochMs = Field(description="When the seal was made, epoch ms.")
    key: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")] = Field(
        description="Id of the box key that signed it (the box's name, as provisioned).")
    sig: Annotated[str, Field(min_length=1, max_length=200)] = Field(description="base64 Ed25519 signature.")

    def signed_bytes(self) -> bytes:
        return signed_seal_bytes(self.box, self.district, self.seq, self.head, self.ts, self.key)


def signed_seal_bytes(box: str, district: str, seq: int, head: str, ts: int, key: str) -> bytes:
    return SEAL_PREFIX + f"{district}/{box}/{seq}/{head}/{ts}/{key}".encode()
