"""A box stand-in for delivery tests: puts N detections through a real Outbox.

    python tests/edge/outbox_writer.py SPOOL MQTT_URL COUNT [--rate PER_S]

Prints "put SEQ" after each message is in the spool and "drained" when the
spool is empty. Killing it at any point must lose nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

from contract import Detection, Kind, Topic
from edge.outbox import Outbox

DISTRICT, BOX = "test-district", "writer-box"


def detection(seq: int) -> bytes:
    return Detection(id=uuid.uuid4().hex, box=BOX, district=DISTRICT, seq=seq, ts=int(time.time() * 1000),
                     camera="cam", category="illegal_dumping", label="static_object", score=0.5,
                     bbox=(0.1, 0.1, 0.2, 0.2), zone="hotspot", track=1, dwell_s=1.0, lat=48.2, lon=16.3,
                     model="test", config="abcdef12").encode()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("spool", type=Path)
    parser.add_argument("mqtt_url")
    parser.add_argument("count", type=int)
    parser.add_argument("--rate", type=float, default=200.0)
    args = parser.parse_args()
    outbox = Outbox(args.spool, args.mqtt_url, DISTRICT, BOX, window=20)
    outbox.start()
    topic = Topic(DISTRICT, BOX, Kind.DETECTION)
    already = outbox.spool.last_seq()
    for _ in range(max(0, args.count - already)):
        seq = outbox.put(topic, detection)
        print(f"put {seq}", flush=True)
        time.sleep(1 / args.rate)
    delivered = outbox.close(drain_timeout_s=60)
    print("drained" if delivered else "not drained", flush=True)
    return 0 if delivered else 1


if __name__ == "__main__":
    sys.exit(main())
