"""The signed config change, as it travels on ``city/{district}/{box}/config`` (retained, operator -> box).

    {"v": 1, "body": "<ChangeBody as JSON text>", "key": "<key id>", "sig": "<base64 Ed25519 signature>"}

The signature covers ``SIGNED_PREFIX + body`` (the body's exact UTF-8 bytes,
so no canonical JSON is needed). The body names the box and district it is
for (a change signed for one box is useless on another), a ``counter`` that
only goes up per box, and either a ``patch`` (the JSON patch over the box's
file config, as in the README) or ``reset = true`` (back to the file config).

Only the encoding lives here; signing and verifying are ``common.signing``.
"""

from __future__ import annotations

import json
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from contract.errors import ContractError
from contract.topics import NAME_PATTERN

SIGNED_PREFIX = b"streetwatch config change v1\n"
MAX_COUNTER = 2**63 - 1


class ChangeBody(BaseModel):
    """What the operator signed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    box: str = Field(pattern=NAME_PATTERN)
    district: str = Field(pattern=NAME_PATTERN)
    counter: int = Field(ge=1, le=MAX_COUNTER, description="Only goes up per box; an older one is refused.")
    ts: int = Field(ge=0, description="When it was signed, epoch ms (informational).")
    patch: dict[str, Any] | None = None
    reset: bool = False

    @model_validator(mode="after")
    def _patch_or_reset(self) -> Self:
        if self.reset == (self.patch is not None):
            raise ValueError("a change holds either a patch or reset = true")
        return self


class SignedChange(BaseModel):
    """The envelope on the wire."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    body: str = Field(min_length=2)
    key: str = Field(min_length=1, max_length=64)
    sig: str = Field(min_length=1, max_length=200)

    def signed_bytes(self) -> bytes:
        return SIGNED_PREFIX + self.body.encode()

    def change(self) -> ChangeBody:
        try:
            return ChangeBody.model_validate_json(self.body)
        except ValidationError as exc:
            raise ContractError("change body: " + "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}"
                for e in exc.errors(include_url=False))) from None

    def encode(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        try:
            return cls.model_validate_json(payload)
        except ValidationError as exc:
            raise ContractError("; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}"
                for e in exc.errors(include_url=False))) from None


def looks_signed(payload: bytes) -> bool:
    """True when the payload is an envelope (it has ``sig`` at the top), not a bare patch."""
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and "sig" in data and "body" in data


def body_text(body: ChangeBody) -> str:
    return body.model_dump_json(exclude_none=True)
