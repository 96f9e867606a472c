"""Which config changes a box lets through: signed by an operator key it trusts, newer than the last one.

A change on the ``config`` topic is a ``contract.configpatch.SignedChange``:
a body (box, district, counter, patch or reset) signed with Ed25519 by an
operator key listed in the box's ``[remote_config] trusted_keys``. The gate
refuses, with the reason sent back on ``config/ack``:

- an unsigned patch, when the box trusts keys;
- a key it does not trust, or a signature that does not verify;
- a change for another box or district;
- a counter not above the last applied one (a replayed or older change).

The same change seen again (the retained message redelivered after a
reconnect: same counter, same bytes) is ``AlreadyApplied``: no change, no
answer. The last applied counter and the change's digest are kept on disk
beside the spool, so a restart does not reopen the door to older changes.

How a box with no trusted keys behaves is its config's explicit choice:
``accept_unsigned = true`` takes bare JSON patches as before signing existed
(logged as a warning at start); otherwise every live change is refused
(logged at start), and the box runs on its file config.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from pydantic import Field, field_validator, model_validator

from common.signing import BadSignature, KeyRing, SigningError, parse_public_entry
from common.validation import Strict
from contract import ContractError
from contract.configpatch import SignedChange, looks_signed

log = logging.getLogger(__name__)


class RemoteConfigSettings(Strict):
    """``[remote_config]``: whose config changes the box takes."""

    trusted_keys: list[str] = Field(default_factory=list, description=(
        "Operator public keys, NAME:BASE64 (the operator.pub line from provisioning). With any listed, every live "
        "change must be signed by one of them."))
    accept_unsigned: bool = Field(False, description=(
        "Without trusted_keys: true takes unsigned JSON patches (anyone who may publish on the config topic can "
        "change the box), false refuses every live change. Must be false when keys are listed."))

    @field_validator("trusted_keys")
    @classmethod
    def _keys_parse(cls, entries: list[str]) -> list[str]:
        for index, entry in enumerate(entries):
            try:
                parse_public_entry(entry)
            except SigningError as exc:
                raise ValueError(f"entry {index}: {exc}") from None
        return entries

    @model_validator(mode="after")
    def _signed_or_unsigned(self) -> Self:
        if self.trusted_keys and self.accept_unsigned:
            raise ValueError("accept_unsigned must be false when trusted_keys are listed: a box that trusts keys "
                             "takes signed changes only")
        return self


class ChangeRefused(ValueError):
    """A change the gate does not let through; the message is the reason on ``config/ack``."""


class AlreadyApplied(Exception):
    """The change in force, seen again: nothing to do and nothing to answer."""


@dataclass(frozen=True)
class Opened:
    """A change let through: the JSON patch to apply (``{}`` for a reset to the file config)."""

    patch: bytes
    counter: int | None       # None: an unsigned patch on a box that accepts them
    digest: str
    reset: bool = False
    key: str | None = None


class PatchGate:
    def __init__(self, settings: RemoteConfigSettings, box: str, district: str, state_file: Path) -> None:
        self.settings = settings
        self.keys = KeyRing(settings.trusted_keys)
        self.box = box
        self.district = district
        self.state_file = state_file
        self.counter = 0
        self.digest = ""
        try:
            state = json.loads(state_file.read_text())
            self.counter, self.digest = int(state["counter"]), str(state["digest"])
        except FileNotFoundError:
            pass
        except (ValueError, KeyError, TypeError):
            log.error("config.gate_state_unreadable file=%s: refusing changes until one newer than any is signed",
                      state_file)
            self.counter = 2**63 - 1

    def describe(self) -> None:
        """Say at start how this box treats live changes (the choice is the config's, so it is logged)."""
        if self.keys:
            log.info("config.signed_changes_required keys=%s last_counter=%d", ",".join(self.keys.key_ids),
                     self.counter)
        elif self.settings.accept_unsigned:
            log.warning("config.unsigned_changes_accepted: [remote_config] accept_unsigned = true, so anyone who may "
                        "publish on this box's config topic can change it")
        else:
            log.warning("config.live_changes_off: [remote_config] lists no trusted_keys and does not accept "
                        "unsigned changes; every change on the config topic is refused")

    def trusts_remembered(self) -> bool:
        """Whether the change kept on disk may be applied at start: one this gate let through. A box whose config
        now trusts keys but that never applied a signed change, or whose live changes are off, starts from its
        file config, whatever an earlier firmware or setting kept."""
        return self.settings.accept_unsigned or (bool(self.keys) and self.counter > 0)

    def open(self, payload: bytes) -> Opened:
        digest = hashlib.sha256(payload).hexdigest()
        if not looks_signed(payload):
            if self.keys:
                raise ChangeRefused("unsigned change: this box takes only changes signed by a trusted operator key")
            if self.settings.accept_unsigned:
                return Opened(payload, None, digest)
            raise ChangeRefused("live changes are off: this box's [remote_config] lists no trusted_keys")
        if not self.keys:
            raise ChangeRefused("signed change, but this box's [remote_config] lists no trusted_keys to check it")
        try:
            envelope = SignedChange.decode(payload)
            self.keys.verify(envelope.key, envelope.sig, envelope.signed_bytes())
            body = envelope.change()
        except (ContractError, BadSignature) as exc:
            raise ChangeRefused(str(exc)) from None
        if (body.box, body.district) != (self.box, self.district):
            raise ChangeRefused(f"change is for box {body.box} in {body.district}, not this box")
        if body.counter == self.counter and digest == self.digest:
            raise AlreadyApplied()
        if body.counter <= self.counter:
            raise ChangeRefused(f"counter {body.counter} is not above the last applied {self.counter} "
                                "(a replayed or older change)")
        patch = b"{}" if body.reset else json.dumps(body.patch).encode()
        return Opened(patch, body.counter, digest, reset=body.reset, key=envelope.key)

    def applied(self, opened: Opened) -> None:
        """Record a signed change as in force (unsigned ones carry no counter)."""
        if opened.counter is None:
            return
        self.counter, self.digest = opened.counter, opened.digest
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        temp = self.state_file.with_suffix(".tmp")
        temp.write_text(json.dumps({"counter": self.counter, "digest": self.digest}))
        with temp.open("rb") as f:
            os.fsync(f.fileno())
        temp.replace(self.state_file)
