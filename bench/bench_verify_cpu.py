"""What verifying the boxes' chains costs the gateway, per detection: check + verify + apply, without services.

    .venv/bin/python bench/bench_verify_cpu.py

The stream of bench_ingest_cpu.py (20,000 detections of 8 boxes, batches of 500), produced four ways:

    off          unchained, a gateway without [verify] (nothing checked, nothing marked)
    unchained    unchained, a gateway with keys_dir (each message marked unverified)
    sealed/20    chained by edge.chain.ChainWriter, a seal every 20 messages per box (a box sending 100/s
                 with the default seal_after_s = 0.2 s), require_verified = true
    sealed/200   the same, a seal every 200 messages (the default seal_every)

Best of 3 runs of process CPU time; the sealed rows include the seals' own messages and one Ed25519
verification per seal.
"""

import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.signing import generate_signer  # noqa: E402
from bench_ingest_cpu import COUNT, detection_stream  # noqa: E402
from contract import Kind, Topic  # noqa: E402
from edge.chain import ChainWriter  # noqa: E402
from gateway.config import VerifySettings  # noqa: E402
from gateway.dedupe.leads import LeadBook  # noqa: E402
from gateway.dedupe.routing import Router  # noqa: E402
from gateway.dedupe.seqgaps import SeqTracker  # noqa: E402
from gateway.ingest.pipeline import Pipeline, check  # noqa: E402
from gateway.ingest.verify import Verifier  # noqa: E402
from gateway.store.evidence import EvidenceStore  # noqa: E402
from gateway.transport.incoming import Incoming  # noqa: E402

BATCH, BOXES = 500, 8


def stream(now: int, keys: Path | None, seal_every: int | None) -> list[Incoming]:
    writers = {}
    if seal_every:
        keys.mkdir(exist_ok=True)
        for n in range(BOXES):
            signer = generate_signer(f"box-{n}")
            (keys / f"box-{n}.pub").write_text(signer.public_entry())
            writers[f"box-{n}"] = ChainWriter(f"box-{n}", "bench", signer, every_n=seal_every, after_s=3600)
    found = []
    for i, box, seq, payload in detection_stream(now, BOXES):
        writer = writers.get(box)
        if writer is not None:
            payload = writer.chain(seq, payload)
        found.append(Incoming(str(Topic("bench", box, Kind.DETECTION)), payload, i, 1, time.time()))
        if writer is not None and writer.due():
            seal = writer.seal(now).encode()
            found.append(Incoming(str(Topic("bench", box, Kind.SEAL)), seal, i, 1, time.time()))
    return found


def run(name: str, keys: Path | None, seal_every: int | None, require: bool) -> None:
    now = int(time.time() * 1000)
    messages = stream(now, keys, seal_every)
    best = float("inf")
    for _ in range(3):
        with tempfile.TemporaryDirectory() as tmp:
            verifier = Verifier(VerifySettings(require_verified=require, keys_dir=keys), time.time)
            pipeline = Pipeline(LeadBook(), SeqTracker(), EvidenceStore(Path(tmp)), Router({}, []), Counter(),
                                verifier)
            started = time.process_time()
            for start in range(0, len(messages), BATCH):
                pipeline.apply([check(m, now) for m in messages[start:start + BATCH]], now)
            best = min(best, time.process_time() - started)
            assert not verifier.holding() or seal_every is None or len(messages) % BATCH, "messages left unsealed"
            if seal_every:
                assert sum(state.verified for state in verifier.boxes.values()) >= COUNT - BOXES * seal_every
    print(f"{name:<12} {best / COUNT * 1e6:6.1f} us per detection ({len(messages) - COUNT} seals)")


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        keys = Path(tmp) / "keys"
        keys.mkdir()
        run("off", None, None, False)
        run("unchained", keys, None, False)
        run("sealed/20", Path(tmp) / "keys20", 20, True)
        run("sealed/200", Path(tmp) / "keys200", 200, True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
