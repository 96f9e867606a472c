"""Box delivery benchmark: messages/s through the disk spool, to the broker and to the gateway's confirmation,
vs a bare paho publisher.

    .venv/bin/python bench/bench_outbox.py [--messages 2000] [--rounds 3]

All publish the same detection-sized QoS 1 messages to the same broker in the same run, alternating rounds:

* bare paho: a message counts when the broker acknowledged it (PUBACK);
* spool -> broker: the box's outbox freeing messages on the PUBACK (``confirm_timeout_s = 0``, the fallback
  mode, and what the box did before confirmed delivery); a message counts when it left the spool;
* spool -> gateway: the box's outbox in its normal mode, with `gateway run` and InfluxDB behind the broker; a
  message counts when it left the spool, that is once the gateway confirmed it stored in InfluxDB.

The spool stores and fsyncs every message before it is sent, which is what makes it survive a power cut; the
ratios are the price of that, and of waiting for the gateway.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.broker import BrokerAddress  # noqa: E402
from contract import Detection, Kind, Topic  # noqa: E402
from devstack.services import InfluxDB, Mosquitto  # noqa: E402
from edge.outbox import Outbox  # noqa: E402
from edge.sender import DeliveryPolicy  # noqa: E402

DISTRICT = "bench"


def detection(box: str, seq: int) -> bytes:
    """A real detection (about 420 bytes), so that the gateway stores it."""
    return Detection(id=uuid.uuid4().hex, box=box, district=DISTRICT, seq=seq, ts=int(time.time() * 1000),
                     camera="north", category="street_vending", label="person", score=0.8,
                     bbox=(0.1, 0.1, 0.2, 0.4), zone=f"zone-{seq // 4}", track=seq, dwell_s=60.0, lat=48.2,
                     lon=16.37, model="nanodet-g-416", config="abcdef12").encode()


def bare_paho(broker: Mosquitto, count: int) -> float:
    """A bare paho client on TLS with a login of its own, like the box's outbox."""
    client = broker.client("bench-bare")
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    acked = threading.Semaphore(0)
    client.on_publish = lambda *args: acked.release()
    address = BrokerAddress.parse(broker.url)
    client.connect(address.host, address.port)
    client.loop_start()
    payload = detection("bare", 1)
    started = time.perf_counter()
    for _ in range(count):
        client.publish("bench-bare/detection", payload, qos=1)   # a topic no gateway takes
    for _ in range(count):
        acked.acquire(timeout=60)
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return count / elapsed


def through_spool(broker: Mosquitto, count: int, spool: Path, box: str, *, confirmed: bool) -> float:
    policy = DeliveryPolicy(confirm_timeout_s=600.0 if confirmed else 0.0)
    login = broker.account(box, "box", district=DISTRICT)
    outbox = Outbox(spool, login.url, DISTRICT, box, credentials=login.credentials(), window=100, policy=policy)
    outbox.start()
    outbox.link.wait_connected(10)
    topic = Topic(DISTRICT, box, Kind.DETECTION)
    started = time.perf_counter()
    for _ in range(count):
        outbox.put(topic, lambda seq: detection(box, seq))
    deadline = time.monotonic() + 120
    while outbox.depth() and time.monotonic() < deadline:
        time.sleep(0.002)
    if outbox.depth():
        raise SystemExit(f"{box}: {outbox.depth()} messages still in the spool after 120 s")
    elapsed = time.perf_counter() - started
    outbox.close(5)
    return count / elapsed


def start_gateway(broker: Mosquitto, influx: InfluxDB, workdir: Path) -> subprocess.Popen:
    config = workdir / "gateway.toml"
    login = broker.login("bench-outbox", "gateway")
    config.write_text(f'[mqtt]\nshare_group = "bench-outbox"\n{login.toml(broker.url)}'
                      f'[influx]\n{influx.influx_table("bench_outbox")}')
    log_path = workdir / "gateway.log"
    with log_path.open("a") as log:
        child = subprocess.Popen([sys.executable, "-m", "gateway.cli", "run", "--config", str(config),
                                  "--db", "bench_outbox",
                                  "--evidence-dir", str(workdir / "evidence"), "--client-id", "bench-outbox"],
                                 stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.monotonic() + 60
    while "mqtt.connected" not in log_path.read_text():
        if child.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"gateway did not start:\n{log_path.read_text()[-2000:]}")
        time.sleep(0.05)
    time.sleep(0.3)
    return child


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Mosquitto(Path(tmp) / "mosquitto") as broker, \
            InfluxDB(Path(tmp) / "influxdb") as influx:
        gateway = start_gateway(broker, influx, Path(tmp))
        try:
            to_broker, to_gateway = [], []
            for round_no in range(1, args.rounds + 1):
                bare = bare_paho(broker, args.messages)
                puback = through_spool(broker, args.messages, Path(tmp) / f"p-{round_no}.db",
                                       f"puback-{round_no}", confirmed=False)
                confirmed = through_spool(broker, args.messages, Path(tmp) / f"c-{round_no}.db",
                                          f"confirmed-{round_no}", confirmed=True)
                to_broker.append(puback / bare)
                to_gateway.append(confirmed / bare)
                print(f"round {round_no}: bare paho {bare:8.0f} msg/s, spool -> broker {puback:8.0f} msg/s "
                      f"(ratio {puback / bare:.3f}), spool -> gateway confirmation {confirmed:8.0f} msg/s "
                      f"(ratio {confirmed / bare:.3f})", flush=True)
            print(f"spool -> broker / bare paho (median of {args.rounds}): {statistics.median(to_broker):.3f}")
            print(f"spool -> gateway confirmation / bare paho (median of {args.rounds}): "
                  f"{statistics.median(to_gateway):.3f}")
        finally:
            gateway.terminate()
            gateway.wait(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
