"""A box stand-in for delivery tests: puts N detections through a real Outbox.

    python tests/edge/outbox_writer.py SPOOL MQTT_URL COUNT [--rate PER_S] [--box NAME]
        [--confirm-timeout S] [--resend-after S] [--drain-timeout S] [--page-limit PAGES]
        [--mqtt-config mqtt.toml]

Prints "put SEQ" after each message is in the spool and "drained" when the
spool is empty: with a gateway, once it confirmed everything stored; with
``--confirm-timeout 0``, once the broker acknowledged everything. Killing it
at any point must lose nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from common.broker import BrokerSettings, Credentials
from contract import Detection, Kind, Topic
from edge.outbox import Outbox
from edge.sender import DeliveryPolicy

DISTRICT, BOX = "test-district", "writer-box"


def detection(seq: int, box: str = BOX) -> bytes:
    return Detection(id=f"{box}-{seq}", box=box, district=DISTRICT, seq=seq, ts=int(time.time() * 1000),
                     camera="cam", category="illegal_dumping", label="static_object", score=0.5,
                     bbox=(0.1, 0.1, 0.2, 0.2), zone="hotspot", track=1, dwell_s=1.0, lat=48.2, lon=16.3,
                     model="test", config="abcdef12").encode()


def box_credentials(mqtt_config: Path | None) -> Credentials:
    """The login the ``[mqtt]`` table of ``mqtt_config`` names (none without a file)."""
    if mqtt_config is None:
        return Credentials()
    return BrokerSettings.model_validate(tomllib.loads(mqtt_config.read_text())["mqtt"]).credentials()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("spool", type=Path)
    parser.add_argument("mqtt_url")
    parser.add_argument("count", type=int)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--box", default=BOX)
    parser.add_argument("--confirm-timeout", type=float, default=0.0, help="0: free on PUBACK (no gateway)")
    parser.add_argument("--resend-after", type=float, default=1.0)
    parser.add_argument("--mqtt-config", type=Path, help="The box's [mqtt] table (its login: mqtt.toml).")
    parser.add_argument("--drain-timeout", type=float, default=60.0)
    parser.add_argument("--page-limit", type=int)
    args = parser.parse_args()
    policy = DeliveryPolicy(resend_after_s=args.resend_after, resend_max_s=max(args.resend_after, 4.0),
                            confirm_timeout_s=args.confirm_timeout)
    outbox = Outbox(args.spool, args.mqtt_url, DISTRICT, args.box, credentials=box_credentials(args.mqtt_config),
                    window=20, policy=policy,
                    page_limit=args.page_limit)
    outbox.start()
    topic = Topic(DISTRICT, args.box, Kind.DETECTION)
    already = outbox.spool.last_seq()
    for _ in range(max(0, args.count - already)):
        seq = outbox.put(topic, lambda seq: detection(seq, args.box))
        print(f"put {seq}", flush=True)
        time.sleep(1 / args.rate)
    print("all put", flush=True)
    delivered = outbox.close(drain_timeout_s=args.drain_timeout)
    print("drained" if delivered else "not drained", flush=True)
    return 0 if delivered else 1


def wait_for_line(process: subprocess.Popen, prefix: str, timeout_s: float = 30) -> str:
    """For a test running this script: the first line it prints that starts with ``prefix``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith(prefix):
            return line
        if not line and process.poll() is not None:
            break
    raise AssertionError(f"writer never printed {prefix!r}")


if __name__ == "__main__":
    sys.exit(main())
