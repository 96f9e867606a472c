"""The chain verifier (gateway.ingest.verify) fed by the box's own chain writer (edge.chain) and spool."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from common.signing import generate_signer
from contract import Detection, DroppedSeqs, Health, Kind, Topic
from edge.chain import ChainWriter
from edge.spool import Spool
from gateway.config import VerifySettings
from gateway.ingest.pipeline import Checked, check
from gateway.ingest.verify import FAILED, UNVERIFIED, VERIFIED, Verifier
from gateway.store.schema import Rejected
from gateway.transport.incoming import Incoming

NOW = int(time.time() * 1000)
T0 = NOW - 600_000
BOX, DISTRICT = "box-1", "old-town"
BASE = dict(box=BOX, district=DISTRICT, camera="north", category="illegal_dumping", label="suitcase",
            score=0.7, bbox=(0.1, 0.5, 0.2, 0.7), zone="hotspot", track=4, dwell_s=120.0, lat=48.2085,
            lon=16.3731, model="nanodet-g-416", config="abcdef12")


def detection_bytes(seq: int, **changes) -> bytes:
    return Detection(**{**BASE, "id": f"d{seq}", "seq": seq, "ts": T0 + seq * 1000, **changes}).encode()


def incoming(kind: Kind, payload: bytes) -> Incoming:
    return Incoming(str(Topic(DISTRICT, BOX, kind)), payload, 0, 1, time.time())


class Box:
    """A box's chain without a spool: what a benchmark publisher would use."""

    def __init__(self, key_id: str = BOX) -> None:
        self.signer = generate_signer(key_id)
        self.writer = ChainWriter(BOX, DISTRICT, self.signer)
        self.seq = 0

    def detection(self, **changes) -> Incoming:
        self.seq += 1
        return incoming(Kind.DETECTION, self.writer.chain(self.seq, detection_bytes(self.seq, **changes)))

    def seal(self) -> Incoming:
        return incoming(Kind.SEAL, self.writer.seal(NOW).encode())


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    return tmp_path / "keys"


def verifier(keys: Path, *boxes: Box, require: bool = True, timeout_s: float = 10.0) -> Verifier:
    keys.mkdir(exist_ok=True)
    for box in boxes:
        (keys / f"{BOX}.pub").write_text(box.signer.public_entry() + "\n")
    return Verifier(VerifySettings(require_verified=require, keys_dir=keys, seal_timeout_s=timeout_s), time.time)


def admit(v: Verifier, *messages: Incoming, now_ms: int = NOW) -> list[Checked]:
    return v.admit([check(m, NOW) for m in messages], now_ms)


def seqs(out: list[Checked], mark: str = VERIFIED) -> list[int]:
    return [c.outcome.message.seq for c in out if c.verify == mark]


def reasons(out: list[Checked]) -> list[str]:
    return [c.outcome.reason for c in out if isinstance(c.outcome, Rejected)]


def test_a_seal_covers_the_range_before_it_and_nothing_after(keys):
    box = Box()
    v = verifier(keys, box)
    first = [box.detection() for _ in range(5)]
    assert admit(v, *first) == []   # held until sealed
    seal = box.seal()
    later = box.detection()
    out = admit(v, seal, later)
    assert sorted(seqs(out)) == [1, 2, 3, 4, 5]
    assert v.holding()   # seq 6 waits for the next seal
    assert seqs(admit(v, box.seal())) == [6]


def test_out_of_order_arrival_and_a_seal_before_its_messages(keys):
    box = Box()
    v = verifier(keys, box)
    messages = [box.detection() for _ in range(4)]
    seal = box.seal()
    assert seqs(admit(v, seal, messages[3])) == [4]     # the head verifies on arrival
    assert seqs(admit(v, messages[0])) == []             # its link to seq 2 is not here yet
    assert sorted(seqs(admit(v, messages[2], messages[1]))) == [1, 2, 3]
    assert not v.holding()


def test_qos1_duplicates_and_resends_after_confirmation_verify_against_the_kept_hash(keys):
    box = Box()
    v = verifier(keys, box)
    messages = [box.detection() for _ in range(3)]
    assert sorted(seqs(admit(v, *messages, box.seal()))) == [1, 2, 3]
    assert seqs(admit(v, messages[1], messages[1])) == [2, 2]   # byte-identical repeats: the pipeline dedupes them
    assert v.boxes[BOX].breaks == 0


def test_copies_of_a_message_waiting_for_its_seal_all_verify(keys):
    """Re-sent while the seal that covers them was lost (a broker crash): several copies wait, one seal comes."""
    box = Box()
    v = verifier(keys, box)
    messages = [box.detection() for _ in range(3)]
    assert admit(v, *messages, messages[1], messages[1], messages[2]) == []
    out = admit(v, box.seal())
    assert sorted(seqs(out)) == [1, 2, 2, 2, 3, 3] and reasons(out) == []
    assert v.boxes[BOX].breaks == 0 and v.boxes[BOX].failed == 0 and not v.holding()


def test_resend_from_the_spool_is_byte_identical(tmp_path, keys):
    spool = Spool(tmp_path / "spool.db")
    signer = generate_signer(BOX)
    writer = ChainWriter(BOX, DISTRICT, signer, head_seq=spool.chain_head()[0], head=spool.chain_head()[1])
    spool.attach_chain(writer)
    for _ in range(3):
        spool.append("t", detection_bytes)
    sent = spool.after(0, 10)
    assert [m.payload for m in spool.seq_rows(1, 3, 10)] == [m.payload for m in sent]   # what a re-send publishes
    (keys.mkdir(), (keys / f"{BOX}.pub").write_text(signer.public_entry()))
    v = Verifier(VerifySettings(require_verified=True, keys_dir=keys), time.time)
    first = admit(v, *(incoming(Kind.DETECTION, m.payload) for m in sent),
                  incoming(Kind.SEAL, writer.seal(NOW).encode()))
    assert sorted(seqs(first)) == [1, 2, 3]
    assert seqs(admit(v, *(incoming(Kind.DETECTION, m.payload) for m in spool.seq_rows(1, 3, 10)))) == [1, 2, 3]
    spool.close()


def test_a_box_restart_goes_on_with_its_chain_from_the_spool(tmp_path, keys):
    signer = generate_signer(BOX)
    (keys.mkdir(), (keys / f"{BOX}.pub").write_text(signer.public_entry()))
    v = Verifier(VerifySettings(require_verified=True, keys_dir=keys), time.time)
    payloads = []
    for _ in range(2):   # two runs of the box, the spool kept
        spool = Spool(tmp_path / "spool.db")
        head_seq, head = spool.chain_head()
        writer = ChainWriter(BOX, DISTRICT, signer, head_seq=head_seq, head=head)
        assert writer.due() == (head_seq > 0)   # a restarted box seals its head at once
        spool.attach_chain(writer)
        for _ in range(3):
            spool.append("t", detection_bytes)
        payloads += [m.payload for m in spool.after(0, 10)[-3:]]
        spool.close()
    out = admit(v, *(incoming(Kind.DETECTION, p) for p in payloads), incoming(Kind.SEAL, writer.seal(NOW).encode()))
    assert sorted(seqs(out)) == [1, 2, 3, 4, 5, 6]   # one seal after the restart vouches for the run before it


def test_policy_drops_announced_with_their_hashes_do_not_cut_the_chain(tmp_path, keys):
    spool = Spool(tmp_path / "spool.db")
    signer = generate_signer(BOX)
    writer = ChainWriter(BOX, DISTRICT, signer)
    spool.attach_chain(writer)
    spool.append("d", detection_bytes)                                    # 1
    for _ in range(3):                                                    # 2..4, telemetry
        spool.append("h", lambda seq: Health(box=BOX, district=DISTRICT, seq=seq, ts=T0, uptime_s=1.0,
                                             config="abcdef12").encode(), telemetry=True)
    spool.append("d", detection_bytes)                                    # 5
    kept = {m.seq: m.payload for m in spool.after(0, 10)}
    spool._lock.acquire()
    try:
        spool._drop_oldest(spool_class("TELEMETRY"), "test")             # the size policy gives up 2..4
    finally:
        spool._lock.release()
    [(kind, first, last, prev, last_hash)] = spool.dropped_links()
    assert (kind, first, last) == ("telemetry", 2, 4) and prev is not None and last_hash is not None
    dropped = [DroppedSeqs(kind=kind, from_seq=first, to_seq=last, first_prev=prev, last_hash=last_hash)]
    spool.append("h", lambda seq: Health(box=BOX, district=DISTRICT, seq=seq, ts=T0, uptime_s=2.0, config="abcdef12",
                                         dropped_seqs=dropped).encode(), telemetry=True)   # 6 announces them
    announcing = spool.after(0, 10)[-1].payload
    (keys.mkdir(), (keys / f"{BOX}.pub").write_text(signer.public_entry()))
    v = Verifier(VerifySettings(require_verified=True, keys_dir=keys), time.time)
    out = admit(v, incoming(Kind.DETECTION, kept[1]), incoming(Kind.DETECTION, kept[5]),
                incoming(Kind.HEALTH, announcing), incoming(Kind.SEAL, writer.seal(NOW).encode()))
    assert sorted(seqs(out)) == [1, 5, 6]   # seq 1 verified across the dropped run
    assert not v.holding() and v.boxes[BOX].breaks == 0
    spool.close()


def spool_class(name: str):
    from edge.spool import Class

    return Class[name]


def test_a_seal_signed_with_another_key_verifies_nothing(keys):
    box, impostor = Box(), Box()
    v = verifier(keys, box, timeout_s=1.0)
    impostor.writer = ChainWriter(BOX, DISTRICT, impostor.signer)   # same box name, its own key
    message = impostor.detection()
    out = admit(v, message, impostor.seal())
    assert seqs(out) == [] and reasons(out) == [f"seal of seq 1 does not verify with the key of box {BOX}"]
    assert v.boxes[BOX].breaks == 1
    expired = admit(v, now_ms=NOW + 1_001)
    assert reasons(expired) == [f"unverified: no valid seal of box {BOX} covered seq 1 within 1 s"]


def test_a_broken_link_fails_the_forged_message_and_flags_the_box(keys):
    box = Box()
    v = verifier(keys, box)
    genuine = [box.detection() for _ in range(3)]
    forged = incoming(Kind.DETECTION, detection_bytes(2, zone="elsewhere", prev=_prev(genuine[1])))
    out = admit(v, genuine[0], forged, genuine[1], genuine[2], box.seal())
    assert sorted(seqs(out)) == [1, 2, 3]
    [reason] = reasons(out)
    assert reason.startswith("seq 2: sha256 ") and "is not the message the box's signed chain holds there" in reason
    assert v.boxes[BOX].failed == 1 and v.boxes[BOX].breaks == 1
    # A forgery arriving after its seq was verified fails at once.
    late = admit(v, incoming(Kind.DETECTION, detection_bytes(3, zone="elsewhere", prev=_prev(genuine[2]))))
    assert reasons(late) and v.boxes[BOX].failed == 2


def test_without_require_verified_failures_and_old_firmware_pass_marked(keys):
    box = Box()
    v = verifier(keys, box, require=False, timeout_s=1.0)
    old = incoming(Kind.DETECTION, detection_bytes(1))   # no chain link: older firmware
    assert seqs(admit(v, old), UNVERIFIED) == [1]
    chained = box.detection()
    assert admit(v, chained) == []
    assert seqs(admit(v, now_ms=NOW + 2_000), UNVERIFIED) == [1]   # no seal in time
    box.detection()
    forged = incoming(Kind.DETECTION, detection_bytes(2, zone="elsewhere", prev=_prev(chained)))
    assert seqs(admit(v, forged, box.seal()), FAILED) == [2]


def test_with_require_verified_old_firmware_goes_to_rejected(keys):
    v = verifier(keys, Box())
    out = admit(v, incoming(Kind.DETECTION, detection_bytes(1)))
    assert reasons(out) == ["unverified: carries no chain link (firmware without a signing key?); "
                            "[verify] require_verified is true"]


def test_state_stays_bounded(keys):
    box = Box()
    v = verifier(keys, box)
    v.max_pending = 100
    admit(v, *(box.detection() for _ in range(150)))
    assert len(v._deadlines) == 100 and sum(len(x) for x in v.boxes[BOX].pending.values()) == 100
    admit(v, *(box.detection(ts=T0) for _ in range(5000)), box.seal())
    assert len(v.boxes[BOX].known) <= 2 * 4096


def _prev(message: Incoming) -> str:
    from contract.chain import prev_of

    return prev_of(message.payload)


def test_deadlines_of_released_messages_do_not_pile_up(keys):
    box = Box()
    v = verifier(keys, box)
    for _ in range(30):
        admit(v, *(box.detection(ts=T0) for _ in range(500)), box.seal())
    assert not v.holding() and len(v._deadlines) <= 10_000 + 500
