"""The box's hash chain and its seals: what makes its messages tamper-evident (``contract.chain``).

``ChainWriter`` links every seq-carrying message to the one before it (the
sha256 of its exact bytes) and signs the chain head with the box's Ed25519
key every ``every_n`` messages, or ``after_s`` seconds after the first
message not yet sealed, whichever comes first. It keeps no state on disk:
the spool persists the head in the same transaction as the message
(``edge.spool``), so a box that restarts goes on with its chain.

Any publisher can use it to produce a valid chained, sealed stream::

    writer = ChainWriter("box-1", "old-town", load_signer(Path("box.key")))
    payload = writer.chain(seq, detection.encode())       # link + advance; publish payload as is
    if writer.due():
        publish(Topic("old-town", "box-1", Kind.SEAL), writer.seal(ts_ms).encode())
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from common.signing import Signer
from contract.chain import GENESIS, Seal, digest, link, signed_seal_bytes

DEFAULT_SEAL_EVERY = 200      # messages
DEFAULT_SEAL_AFTER_S = 0.2    # seconds after the first message not yet sealed


class ChainWriter:
    """One box's chain head and seal schedule; thread-safe."""

    def __init__(self, box: str, district: str, signer: Signer, *, head_seq: int = 0, head: str = GENESIS,
                 every_n: int = DEFAULT_SEAL_EVERY, after_s: float = DEFAULT_SEAL_AFTER_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.box, self.district, self.signer = box, district, signer
        self.every_n, self.after_s, self.clock = every_n, after_s, clock
        self.head_seq, self.head = head_seq, head
        self._unsealed = 0
        self._first_unsealed_at = 0.0
        self._wanted = head_seq > 0    # a restarted box seals its head at once: what it re-sends is covered
        self._lock = threading.Lock()

    def link(self, payload: bytes) -> tuple[bytes, str]:
        """``payload`` linked to the head, and its hash; the head moves only with ``advance`` (once stored)."""
        with self._lock:
            linked = link(payload, self.head)
        return linked, digest(linked)

    def advance(self, seq: int, head: str) -> None:
        with self._lock:
            self.head_seq, self.head = seq, head
            if self._unsealed == 0:
                self._first_unsealed_at = self.clock()
            self._unsealed += 1

    def chain(self, seq: int, payload: bytes) -> bytes:
        """Link and advance in one step, for publishers that store nothing (benchmarks, tests)."""
        linked, head = self.link(payload)
        self.advance(seq, head)
        return linked

    def want_seal(self) -> None:
        """Seal the head at the next chance even if nothing new was linked (after re-sends, on start)."""
        with self._lock:
            self._wanted = self.head_seq > 0

    def due(self) -> bool:
        with self._lock:
            if self._wanted:
                return True
            return self._unsealed > 0 and (self._unsealed >= self.every_n
                                           or self.clock() - self._first_unsealed_at >= self.after_s)

    def seal_of(self, seq: int, payload: bytes, ts_ms: int) -> Seal:
        """A signed seal of an earlier message of the chain, by its exact bytes: it vouches for that message and,
        link by link, for those before it.

        Sent after re-sends. When a broker lost a run of messages, the box sends them again oldest first, a
        few at a time, and keeps them until confirmed; the gateway cannot verify them from the head's seal
        until every message between them and the head is there, and confirms nothing it has not verified. A
        seal of the newest message sent again vouches for them at once."""
        head = digest(payload)
        key = self.signer.key_id
        sig = self.signer.sign(signed_seal_bytes(self.box, self.district, seq, head, ts_ms, key))
        return Seal(box=self.box, district=self.district, seq=seq, head=head, ts=ts_ms, key=key, sig=sig)

    def seal(self, ts_ms: int) -> Seal:
        """A signed seal of the current head; the schedule starts over."""
        with self._lock:
            seq, head = self.head_seq, self.head
            self._unsealed, self._wanted = 0, False
        key = self.signer.key_id
        sig = self.signer.sign(signed_seal_bytes(self.box, self.district, seq, head, ts_ms, key))
        return Seal(box=self.box, district=self.district, seq=seq, head=head, ts=ts_ms, key=key, sig=sig)
