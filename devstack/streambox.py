"""A box that sends a known stream, for the fault-injection suite: the box's own outbox (spool, sender, MQTT link).

    python -m devstack.streambox SPOOL MQTT_URL BOX COUNT --base-ts MS [--rate PER_S] [--page-limit PAGES]
        [--resend-after S] [--confirm-timeout S] [--health-every S] [--drain-timeout S] [--mqtt-config mqtt.toml]
        [--security-config security.toml]

The detection of ``seq`` n has id ``{box}-{n}`` and belongs to incident ``(n - 1) // 4`` (health messages take
seqs too, so an incident has up to four sightings), in a zone of its own 110 m from the next, so a gateway
makes exactly one street-vending lead of every incident of which at least two sightings are stored. A health message every ``--health-every`` seconds carries the delivery
fields (last seq, delivery mode, seqs dropped by the spool's size policy). Restarted on the same spool, the box
carries on where it was. Prints ``put SEQ``, then ``all put``, then ``drained`` or ``not drained``.
"""

from __future__ import annotations

import argparse
import sys
import time
import tomllib
from pathlib import Path

from common.logs import configure_logging
from common.broker import BrokerSettings, Credentials
from common.signing import Signer, load_signer
from contract import Detection, Health, Kind, Topic
from edge.outbox import Outbox
from edge.sender import DeliveryPolicy

DISTRICT = "faults"
SIGHTINGS = 4


def incident_of(seq: int) -> int:
    return (seq - 1) // SIGHTINGS


def zone_of(box: str, seq: int) -> str:
    return f"{box}-z{incident_of(seq)}"


def detection(box: str, seq: int, base_ts: int) -> bytes:
    incident = incident_of(seq)
    return Detection(id=f"{box}-{seq}", box=box, district=DISTRICT, seq=seq, ts=base_ts + seq * 10,
                     camera="cam", category="street_vending", label="person", score=0.8,
                     bbox=(0.1, 0.1, 0.2, 0.4), zone=zone_of(box, seq), track=incident, dwell_s=60.0,
                     lat=48.0 + incident * 0.001, lon=16.0 + (sum(map(ord, box)) % 100) * 0.01, model="stream",
                     config="abcdef12").encode()


def box_credentials(mqtt_config: Path | None) -> Credentials:
    """The login the ``[mqtt]`` table of ``mqtt_config`` names (none without a file)."""
    if mqtt_config is None:
        return Credentials()
    return BrokerSettings.model_validate(tomllib.loads(mqtt_config.read_text())["mqtt"]).credentials()


def box_signer(security_config: Path | None) -> Signer | None:
    """The signing key the ``[security]`` table of ``security_config`` names (none without a file)."""
    if security_config is None:
        return None
    return load_signer(Path(tomllib.loads(security_config.read_text())["security"]["signing_key_file"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.streambox")
    parser.add_argument("spool", type=Path)
    parser.add_argument("mqtt_url")
    parser.add_argument("box")
    parser.add_argument("count", type=int)
    parser.add_argument("--base-ts", type=int, required=True)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--page-limit", type=int)
    parser.add_argument("--resend-after", type=float, default=2.0)
    parser.add_argument("--confirm-timeout", type=float, default=600.0)
    parser.add_argument("--health-every", type=float, default=1.0)
    parser.add_argument("--mqtt-config", type=Path, help="The box's [mqtt] table (its login: mqtt.toml).")
    parser.add_argument("--security-config", type=Path, help=(
        "The box's [security] table (its signing key: security.toml): chain and seal what it sends."))
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    configure_logging("INFO")
    policy = DeliveryPolicy(resend_after_s=args.resend_after, resend_max_s=max(args.resend_after, 8.0),
                            confirm_timeout_s=args.confirm_timeout)
    outbox = Outbox(args.spool, args.mqtt_url, DISTRICT, args.box, credentials=box_credentials(args.mqtt_config),
                    window=50, policy=policy,
                    page_limit=args.page_limit, keepalive_s=5, signer=box_signer(args.security_config))
    outbox.start()
    started = time.monotonic()
    topic = Topic(DISTRICT, args.box, Kind.DETECTION)
    health_topic = Topic(DISTRICT, args.box, Kind.HEALTH)
    next_health = 0.0

    def health() -> None:
        delivery, depth, dropped = outbox.delivery_health(), outbox.depth(), outbox.spool.dropped() or None
        uptime_s = round(time.monotonic() - started, 1)
        outbox.put(health_topic, lambda seq: Health(   # built under the spool's lock: no spool calls in here
            box=args.box, district=DISTRICT, seq=seq, ts=int(time.time() * 1000), uptime_s=uptime_s,
            config="abcdef12", spool_depth=depth, spool_dropped=dropped, **delivery).encode(), telemetry=True)

    done = _detections_put(args.spool)   # health takes seqs too: the stream ends when COUNT detections are out
    while done < args.count:
        if time.monotonic() >= next_health:
            health()
            next_health = time.monotonic() + args.health_every
        seq = outbox.put(topic, lambda seq: detection(args.box, seq, args.base_ts))
        done += 1
        _note_detection(args.spool, done, seq)
        print(f"put {seq}", flush=True)
        time.sleep(1 / args.rate)
    print("all put", flush=True)
    deadline = time.monotonic() + args.drain_timeout
    while outbox.depth() and time.monotonic() < deadline:
        if time.monotonic() >= next_health:
            health()
            next_health = time.monotonic() + args.health_every
        time.sleep(0.1)
    delivered = outbox.close(drain_timeout_s=5)
    print("drained" if delivered else "not drained", flush=True)
    return 0 if delivered else 1


def _detections_put(spool: Path) -> int:
    """How many detections this box put before a restart (kept beside its spool)."""
    ledger = spool.with_suffix(".detections")
    lines = ledger.read_text().split("\n") if ledger.exists() else []
    done = [line.split()[0] for line in lines if line.strip()]
    return int(done[-1]) if done else 0


def _note_detection(spool: Path, done: int, seq: int) -> None:
    ledger = spool.with_suffix(".detections")
    with ledger.open("a") as f:
        f.write(f"{done} {seq}\n")


if __name__ == "__main__":
    sys.exit(main())
