"""Box delivery benchmark: messages/s through the disk spool to Mosquitto vs a bare paho publisher.

    .venv/bin/python bench/bench_outbox.py [--messages 2000] [--rounds 3]

Both publish the same detection-sized QoS 1 messages to the same broker in the
same run, alternating rounds; a message counts when the broker acknowledged it.
The spool stores and fsyncs every message before it is sent, which is what
makes it survive a power cut; the ratio is the price of that.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devstack.services import Mosquitto  # noqa: E402
from contract import Kind, Topic  # noqa: E402
from edge.outbox import Outbox  # noqa: E402

PAYLOAD = b"x" * 420   # about the size of an encoded detection
TOPIC = Topic("bench", "box-1", Kind.DETECTION)


def bare_paho(url: str, count: int) -> float:
    host, port = url.removeprefix("mqtt://").split(":")
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bare", protocol=paho.MQTTv5)
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    acked = threading.Semaphore(0)
    client.on_publish = lambda *args: acked.release()
    client.connect(host, int(port))
    client.loop_start()
    started = time.perf_counter()
    for _ in range(count):
        client.publish(str(TOPIC), PAYLOAD, qos=1)
    for _ in range(count):
        acked.acquire(timeout=60)
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return count / elapsed


def through_spool(url: str, count: int, spool: Path) -> float:
    outbox = Outbox(spool, url, "bench", "box-1", window=100)
    outbox.start()
    outbox.link.wait_connected(10)
    started = time.perf_counter()
    for _ in range(count):
        outbox.put(TOPIC, lambda seq: PAYLOAD)
    while outbox.depth():
        time.sleep(0.002)
    elapsed = time.perf_counter() - started
    outbox.close(5)
    return count / elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Mosquitto(Path(tmp) / "mosquitto") as broker:
        ratios = []
        for round_no in range(1, args.rounds + 1):
            bare = bare_paho(broker.url, args.messages)
            spooled = through_spool(broker.url, args.messages, Path(tmp) / f"spool-{round_no}.db")
            ratios.append(spooled / bare)
            print(f"round {round_no}: bare paho {bare:8.0f} msg/s, through the spool {spooled:8.0f} msg/s, "
                  f"ratio {spooled / bare:.3f}")
        print(f"spool / bare paho (median of {args.rounds}): {statistics.median(ratios):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
