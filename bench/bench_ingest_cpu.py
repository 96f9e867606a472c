"""Per-detection cost of the gateway's check and apply, without services: a paired comparison of two trees.

    .venv/bin/python bench/bench_ingest_cpu.py [TREE]      # TREE: a checkout to measure (default: this one)

20,000 detections of 8 boxes (4 sightings per incident) through ``check`` and ``Pipeline.apply`` in batches of
500, best of 3 runs; prints microseconds per detection. Run it alternately on two trees (for example one
copied with ``git archive``) to compare code without the noise of the services that bench_gateway.py starts.
"""

import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]))

from contract import Detection, Kind, Topic  # noqa: E402
from gateway.dedupe.leads import LeadBook  # noqa: E402
from gateway.dedupe.routing import Router  # noqa: E402
from gateway.dedupe.seqgaps import SeqTracker  # noqa: E402
from gateway.ingest.pipeline import Pipeline, check  # noqa: E402
from gateway.store.evidence import EvidenceStore  # noqa: E402
from gateway.transport.incoming import Incoming  # noqa: E402

COUNT, BATCH = 20_000, 500


def detection_stream(now: int, boxes: int = 8) -> Iterator[tuple[int, str, int, bytes]]:
    """(index, box, seq, payload) of COUNT detections: incidents of 4 sightings, ``boxes`` boxes in turn."""
    seqs: Counter[str] = Counter()
    for i in range(COUNT):
        box = f"box-{(i // 4) % boxes}"
        seqs[box] += 1
        det = Detection(id=f"d{i}", box=box, district="bench", seq=seqs[box], ts=now - 600_000 + i, camera="north",
                        category="street_vending", label="person", score=0.7, bbox=(0.1, 0.5, 0.2, 0.7),
                        zone=f"zone-{i // 4}", track=i // 4, dwell_s=60.0, lat=48.0 + (i // 4 % 1000) * 0.001,
                        lon=17.0 + (i // 4000) * 0.001, model="nanodet-g-416", config="abcdef12")
        yield i, box, seqs[box], det.encode()


def messages(now: int) -> list[Incoming]:
    return [Incoming(str(Topic("bench", box, Kind.DETECTION)), payload, i, 1, time.time())
            for i, box, _, payload in detection_stream(now)]


def main() -> int:
    now = int(time.time() * 1000)
    batch = messages(now)
    best = float("inf")
    for _ in range(3):
        with tempfile.TemporaryDirectory() as tmp:
            pipeline = Pipeline(LeadBook(), SeqTracker(), EvidenceStore(Path(tmp)), Router({}, []), Counter())
            started = time.perf_counter()
            for start in range(0, COUNT, BATCH):
                pipeline.apply([check(m, now) for m in batch[start:start + BATCH]], now)
            best = min(best, time.perf_counter() - started)
    import gateway
    print(f"{Path(gateway.__file__).parents[1]}: check + apply {best / COUNT * 1e6:.1f} us per detection "
          f"(best of 3, {COUNT} detections in batches of {BATCH})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
