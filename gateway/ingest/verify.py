"""Verification of the boxes' hash chains and seals (``contract.chain``): the stage between check and apply.

    check -> verify -> apply

A chained message (one carrying ``prev``) is held until a valid seal of its
box vouches for it, then handed on marked ``verified``. A seal (the box's
Ed25519 signature over a seq and the sha256 of that message's exact bytes)
vouches for its head; each vouched message vouches, by its ``prev``, for the
one before it, so one seal verifies a whole run, whatever order the messages
and the seal arrive in. The walk back stops at a message already vouched
for, at the start of the chain (``GENESIS``), or at a seq not yet arrived,
whose expected hash is kept: when it arrives it is checked against it at
once. A dropped run the box announced with its links (a verified health
message's ``dropped_seqs``) is stepped over.

What fails is never passed on as verified:

- a message whose hash differs from the one the box's signed chain holds at
  its seq (forged, or altered on the way), and a seal that does not verify
  with the box's registered key, break the box's chain (``breaks``);
- a chained message no valid seal covers within ``seal_timeout_s``;
- an unchained message (older firmware), or one from a box without a key.

With ``require_verified`` these go to ``rejected`` with the reason; without
it they are passed on marked ``failed`` or ``unverified``. Repeats of a
verified message (QoS 1 duplicates, re-sends from the spool) are byte-identical
and verify against the kept hash. The state is bounded per box (the hashes
of the newest ``KNOWN_PER_BOX`` to twice that seqs, ``BRIDGES_PER_BOX`` dropped runs) and in
total (``max_pending`` held messages).

A held message is not yet seen by the seq tracker, so the box is not told it
is stored and keeps it in its spool: a gateway that restarts while holding
messages gets them again when the box re-sends (with a fresh seal).
"""

from __future__ import annotations

import logging
import time
from hashlib import sha256
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from common.signing import public_keys_in, verify_with
from contract import GENESIS, Detection, Health, Seal, SensorReading
from gateway.store import schema
from gateway.store.lineprotocol import Point
from gateway.store.schema import Rejected

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from gateway.config import VerifySettings
    from gateway.ingest.pipeline import Checked

log = logging.getLogger(__name__)

VERIFIED = "verified"
UNVERIFIED = "unverified"
FAILED = "failed"
KNOWN_PER_BOX = 4096
BRIDGES_PER_BOX = 256
KEYS_RELOAD_S = 10.0
_SEQ_MESSAGES = (Detection, SensorReading, Health)


# A message waiting for its seal: (checked item, its sha256, its prev); a tuple, made for every message.
_Held = tuple["Checked", str, str]


@dataclass(slots=True)
class BoxChain:
    """One box's verification state and counts (since the gateway started)."""

    box: str
    district: str
    key: Ed25519PublicKey | None = None
    pending: dict[int, list[_Held]] = field(default_factory=dict)   # seq -> messages waiting for a seal
    known: dict[int, str] = field(default_factory=dict)             # seq -> the hash the signed chain holds
    bridges: dict[int, tuple[int, str, str]] = field(default_factory=dict)   # to_seq -> (from_seq, last_hash, prev)
    verified: int = 0
    unverified: int = 0
    failed: int = 0
    breaks: int = 0
    seals: int = 0
    last_break: str = ""
    changed: bool = False

    def remember(self, seq: int, hash_: str) -> None:
        known = self.known
        known[seq] = hash_
        if len(known) > 2 * KNOWN_PER_BOX:   # keep the newest seqs, trimmed now and then (amortised O(1))
            self.known = {n: known[n] for n in sorted(known)[-KNOWN_PER_BOX:]}


class BoxKeys:
    """The boxes' public keys from a folder of ``BOX.pub`` files, read again (at most every ``KEYS_RELOAD_S``)
    when a box without one is heard."""

    def __init__(self, folder: Path | None, clock: Callable[[], float]) -> None:
        self.folder = folder
        self.clock = clock
        self._keys: dict[str, Ed25519PublicKey] = public_keys_in(folder) if folder else {}
        self._read_at = clock()

    def get(self, box: str) -> Ed25519PublicKey | None:
        key = self._keys.get(box)
        if key is None and self.folder is not None and self.clock() - self._read_at >= KEYS_RELOAD_S:
            self._keys = public_keys_in(self.folder)
            self._read_at = self.clock()
            key = self._keys.get(box)
        return key


class Verifier:
    """The chains of every box; ``admit`` takes a checked batch and returns what may be applied now."""

    def __init__(self, settings: VerifySettings, clock: Callable[[], float]) -> None:
        # A gateway with neither keys nor the requirement verifies nothing and marks nothing (as before chains).
        self.enabled = settings.require_verified or settings.keys_dir is not None
        self.require = settings.require_verified
        self.timeout_ms = int(settings.seal_timeout_s * 1000)
        self.max_pending = settings.max_pending
        self.keys = BoxKeys(settings.keys_dir, clock)
        self.boxes: dict[str, BoxChain] = {}
        self._deadlines: deque[tuple[int, BoxChain, int, str]] = deque()   # (arrived ms, box, seq, hash), oldest first
        self._held = 0   # messages in the boxes' pending (the deadlines of released ones stay until they pass)
        self._out: list[Checked] = []
        self.broken: set[str] = set()   # boxes whose chain ever broke (since start); their leads are flagged
        self.broke: list[str] = []      # boxes whose chain broke in the last admit

    @classmethod
    def permissive(cls) -> Verifier:
        """No keys, nothing required: every message passes at once, unmarked."""
        from gateway.config import VerifySettings

        return cls(VerifySettings(), time.time)

    def holding(self) -> bool:
        """Messages wait for a seal: the ingest must come back for them even when no new ones arrive."""
        return self._held > 0

    def admit(self, batch: list[Checked], now_ms: int) -> list[Checked]:
        if not self.enabled:
            return batch
        out = self._out = []
        self.broke = []
        boxes, deadlines = self.boxes, self._deadlines
        for item in batch:
            outcome = item.outcome
            if isinstance(outcome, Rejected):
                out.append(item)
                continue
            message = outcome.message
            if isinstance(message, _SEQ_MESSAGES):
                state = boxes.get(message.box)
                if state is None or state.key is None:
                    state = self._keyed(message.box, message.district)
                prev = message.prev
                if prev is None:
                    self._unchained(item, state, "carries no chain link (firmware without a signing key?)")
                elif state.key is None:
                    self._unchained(item, state, f"box {message.box} has no registered key")
                else:   # the hot path: one sha256, a look-up, and the message waits for its seal
                    seq, hash_ = message.seq, sha256(item.message.payload).hexdigest()
                    expected = state.known.get(seq)
                    if expected is not None:
                        self._seq_known(state, (item, hash_, prev), seq, expected)
                        continue
                    waiting = state.pending.get(seq)
                    if waiting is None:
                        state.pending[seq] = [(item, hash_, prev)]
                    else:
                        waiting.append((item, hash_, prev))
                    deadlines.append((now_ms, state, seq, hash_))
                    self._held += 1
                    if self._held > self.max_pending:
                        self._expire(None)
            elif isinstance(message, Seal):
                self._seal(item, message)
            else:
                out.append(item)
        self._expire(now_ms)
        if len(deadlines) > 4 * self._held + 10_000:
            self._compact()
        self._out = []
        return out

    def points(self, now_ms: int) -> list[Point]:
        """A ``box_chain`` point for each box whose counts changed since the last call."""
        found = []
        for state in self.boxes.values():
            if state.changed:
                state.changed = False
                found.append(schema.box_chain_point(state.box, state.district, state.verified, state.unverified,
                                                    state.failed, state.breaks, state.seals, state.last_break,
                                                    now_ms))
        return found

    # ------------------------------------------------------------------ messages

    def _keyed(self, box: str, district: str) -> BoxChain:
        """The box's state, with its key if one is registered (looked for again now and then)."""
        state = self.boxes.get(box)
        if state is None:
            state = self.boxes[box] = BoxChain(box, district)
        if state.key is None:
            state.key = self.keys.get(box)
        return state

    def _unchained(self, item: Checked, state: BoxChain, why: str) -> None:
        state.unverified += 1
        state.changed = True
        if self.require:
            self._out.append(_rejected(item, f"unverified: {why}; [verify] require_verified is true"))
        else:
            self._out.append(_marked(item, UNVERIFIED))

    def _seq_known(self, state: BoxChain, held: _Held, seq: int, expected: str) -> None:
        """A message whose seq the signed chain already holds: a repeat, one the chain expected, or a forgery."""
        if held[1] == expected:
            self._release(state, held)
            self._walk(state, seq - 1, held[2])
        else:
            self._fail(state, held[0], f"seq {seq}: sha256 {held[1]} is not the message the box's signed chain "
                                       f"holds there ({expected})")

    def _seal(self, item: Checked, seal: Seal) -> None:
        state = self._keyed(seal.box, seal.district)
        key = state.key
        if key is None and not self.require:
            return   # nothing to verify against: its messages pass unverified anyway
        if key is None:
            problem = f"seal of box {seal.box}, which has no registered key"
        elif seal.key != seal.box:
            problem = f"seal signed by key {seal.key!r}; box {seal.box} signs with its own key"
        elif not verify_with(key, seal.sig, seal.signed_bytes()):
            problem = f"seal of seq {seal.seq} does not verify with the key of box {seal.box}"
        else:
            state.seals += 1
            state.changed = True
            self._walk(state, seal.seq, seal.head)
            return
        self._break(state, problem)
        self._out.append(_rejected(item, problem))

    def _walk(self, state: BoxChain, seq: int, hash_: str) -> None:
        """``hash_`` is the signed chain's message at ``seq``: release it if it is here, and go back link by link.

        What it finds is released oldest first, as the box sent it, so the seq tracker sees no gaps."""
        found: list[_Held] = []
        self._walk_back(state, seq, hash_, found)
        for held in reversed(found):
            self._release(state, held)

    def _walk_back(self, state: BoxChain, seq: int, hash_: str, found: list[_Held]) -> None:
        while seq > 0 and hash_ != GENESIS:
            known = state.known.get(seq)
            if known is not None:
                if known != hash_:
                    self._break(state, f"seq {seq}: two signed messages (the chain forked)")
                    state.remember(seq, hash_)
                return
            state.remember(seq, hash_)
            waiting = state.pending.pop(seq, None)
            self._held -= len(waiting or ())
            match = None
            for held in waiting or ():
                if held[1] != hash_:
                    self._fail(state, held[0], f"seq {seq}: sha256 {held[1]} is not the message the box's signed "
                                               f"chain holds there ({hash_})")
                elif match is None:
                    match = held
                else:   # another copy of it (a QoS 1 duplicate, a re-send): verified as well, deduped downstream
                    found.append(held)
            if match is None:
                bridge = state.bridges.get(seq)
                if bridge is None or bridge[1] != hash_:
                    return   # not arrived yet: checked against the kept hash when it does
                seq, hash_ = bridge[0] - 1, bridge[2]
                continue
            found.append(match)
            seq, hash_ = seq - 1, match[2]

    def _release(self, state: BoxChain, held: _Held) -> None:
        state.verified += 1
        state.changed = True
        self._out.append(_marked(held[0], VERIFIED))
        message = held[0].outcome.message
        if isinstance(message, Health) and message.dropped_seqs:
            for dropped in message.dropped_seqs:
                if dropped.first_prev is None or dropped.last_hash is None:
                    continue
                state.bridges[dropped.to_seq] = (dropped.from_seq, dropped.last_hash, dropped.first_prev)
                if len(state.bridges) > BRIDGES_PER_BOX:
                    del state.bridges[next(iter(state.bridges))]
                if state.known.get(dropped.to_seq) == dropped.last_hash and dropped.from_seq - 1 not in state.known:
                    self._walk(state, dropped.from_seq - 1, dropped.first_prev)   # a walk that stopped at the run goes on

    def _fail(self, state: BoxChain, item: Checked, reason: str) -> None:
        state.failed += 1
        self._break(state, reason)
        log.warning("chain.failed box=%s reason=%s", state.box, reason[:200])
        self._out.append(_rejected(item, reason) if self.require else _marked(item, FAILED))

    def _break(self, state: BoxChain, reason: str) -> None:
        if state.box not in self.broken:
            self.broken.add(state.box)
            self.broke.append(state.box)
        state.breaks += 1
        state.last_break = reason[:500]
        state.changed = True
        log.warning("chain.broken box=%s district=%s reason=%s", state.box, state.district, reason[:200])

    def _compact(self) -> None:
        """Forget the deadlines of messages released meanwhile (amortised: done when they are most of them)."""
        self._deadlines = deque(entry for entry in self._deadlines if _is_held(entry[1], entry[2], entry[3]))

    def _expire(self, now_ms: int | None) -> None:
        """Held messages past their timeout (with ``now_ms`` None: the oldest one, the total being over the cap)."""
        deadlines = self._deadlines
        while deadlines and (now_ms is None or deadlines[0][0] <= now_ms - self.timeout_ms):
            _, state, seq, hash_ = deadlines.popleft()
            box = state.box
            waiting = state.pending.get(seq)
            held = next((h for h in waiting or () if h[1] == hash_), None)
            if held is None:
                continue   # released or failed meanwhile
            waiting.remove(held)
            self._held -= 1
            if not waiting:
                del state.pending[seq]
            state.unverified += 1
            state.changed = True
            reason = (f"unverified: no valid seal of box {box} covered seq {seq} within "
                      f"{self.timeout_ms / 1000:g} s")
            log.warning("chain.unsealed box=%s seq=%d", box, seq)
            self._out.append(_rejected(held[0], reason) if self.require else _marked(held[0], UNVERIFIED))
            if now_ms is None:
                return


def _is_held(state: BoxChain, seq: int, hash_: str) -> bool:
    return any(held[1] == hash_ for held in state.pending.get(seq, ()))


def _marked(item: Checked, mark: str) -> Checked:
    return type(item)(item.message, item.outcome, item.point, mark)


def _rejected(item: Checked, reason: str) -> Checked:
    return type(item)(item.message, Rejected(item.message.topic, reason, item.message.payload))
