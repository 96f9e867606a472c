"""Gateway benchmark: throughput against a bare subscriber, lead latency, memory per lead.

    python bench/bench_gateway.py [--detections N] [--rounds K] [--rate R] [--seconds S] [--leads L] [--plain]
                                  [--insecure] [--places P]

Starts its own Mosquitto and InfluxDB (devstack) and, on that one broker:

1. throughput: a backlog of N detections (QoS 1) waits on the broker for a
   persistent session, then is drained (a) by a bare paho QoS 1 subscriber
   that only counts and (b) by `gateway run` (validated, deduped, written to
   InfluxDB before the acknowledgement), each in its own process, each timed
   from its MQTT connection to the last message counted, or stored (polled
   every 50 ms). A backlog keeps the publisher's CPU out of the measurement.
   K rounds of (a) then (b), so that both meet the same machine; prints both
   rates and their ratio per round, the median ratio (target >= 0.8), and the
   CPU time per detection that the gateway, InfluxDB and Mosquitto spent in
   each drain. The backlog's incidents have 4 sightings each, and each
   incident is in a zone of its own: a new lead, and two new InfluxDB series
   (its detections' and its lead's), per 4 detections, the worst case for
   InfluxDB. ``--places P`` puts the incidents at P places instead (a box's
   zones, as its config names them), so that a place's sightings are one
   lead, as they are on a street;
2. latency: detections in pairs (the second opens a lead) at R per second for
   S seconds; the time from publishing the second detection until InfluxDB
   shows the lead, found by polling every 50 ms (so it overstates by up to
   50 ms). Prints p50, p99 and max (target p99 <= 0.5 s);
3. memory: a LeadBook in a fresh process holding L open leads; prints the
   resident set and bytes per lead.

devstack's Mosquitto queues for slow consumers without Mosquitto's default
cap of 1000 messages, which would otherwise make the throughput run measure
drops. ``--plain`` runs the gateway on plain paho's receive path instead of
its fast one (``STREETWATCH_MQTT_PLAIN=1``). The whole run stops itself after
``--budget`` seconds (default 180).

Like devstack, the benchmark runs secured by default: Mosquitto with its TLS
listener, password logins and the ACL made by the provisioning code, every
client (each of the 8 boxes publishing its own detections, the bare
subscriber, each gateway run) over TLS with an account of its own (a
persistent session each: the broker makes the user name the client id), and
InfluxDB with a login. The boxes chain and seal what they send with their
provisioned keys (``edge.chain.ChainWriter``: every 200 messages or 0.2 s,
as a box does), and each gateway run requires verified messages
(``[verify] require_verified = true``), so a detection is stored and counts
only once a seal vouches for it. ``--insecure`` runs plain, anonymous
servers and unchained messages instead, to see what all of that costs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.broker import BrokerAddress, BrokerSettings, Credentials  # noqa: E402
from common.mqtt import build_client  # noqa: E402
from common.signing import load_signer  # noqa: E402
from contract import Detection, Kind, Topic  # noqa: E402
from devstack.services import InfluxDB, Mosquitto  # noqa: E402
from edge.chain import ChainWriter  # noqa: E402
from gateway.dedupe.leads import LeadBook, lead_id_for  # noqa: E402
from gateway.store.influx import InfluxClient, InfluxError  # noqa: E402
from gateway.transport.link import PLAIN_ENV  # noqa: E402

DETECTION_TOPIC_FILTER = "city/+/+/detection"
POLL_S = 0.05
BOXES = [f"box-{n}" for n in range(8)]
BARE_ACCOUNT = "bench-bare"


# --------------------------------------------------------------------------- the services, secured or not


@dataclass(frozen=True)
class Access:
    """How the benchmark's clients reach the broker and InfluxDB: secured (devstack's default: TLS, a login
    per client, the ACL; InfluxDB with a login) or, with ``--insecure``, plain and anonymous."""

    broker: Mosquitto
    influx: InfluxDB
    workdir: Path

    @property
    def url(self) -> str:
        return self.broker.url

    @property
    def secure(self) -> bool:
        return not self.broker.insecure

    def account(self, name: str, kind: str = "gateway") -> Path | None:
        """A file with the ``[mqtt]`` table of account ``name`` (made on first use; None on a plain broker)."""
        if not self.secure:
            return None
        path = self.workdir / "accounts" / f"{name}.toml"
        if not path.exists():
            login = self.broker.login(name, kind, district="bench" if kind == "box" else None)
            path.parent.mkdir(exist_ok=True)
            path.write_text("[mqtt]\n" + login.toml(self.url))
        return path

    def client(self, client_id: str, account: str | None, kind: str = "gateway") -> paho.Client:
        return mqtt_client(self.url, client_id, None if account is None else self.account(account, kind))

    def chains(self) -> Chains | None:
        """A fresh chain per box, each sealed with the box's provisioned key (None on a plain broker)."""
        if not self.secure:
            return None
        for box in BOXES:
            self.account(box, "box")
        deployment = self.broker.deployment.deployment
        return Chains({box: ChainWriter(box, "bench", load_signer(deployment.bundle(box) / "box.key"))
                       for box in BOXES})

    def influx_client(self, db: str, **options) -> InfluxClient:
        return InfluxClient(self.influx.url, db, **self.influx.client_login(), **options)

    def gateway_config(self, db: str, account: str) -> str:
        """A gateway config's ``[mqtt]`` and ``[influx]`` tables for a run on database ``db``."""
        # Its own share group: an earlier run's persistent session would otherwise get a share of the messages.
        share = f'share_group = "{db.replace("_", "-")}"\n'
        if not self.secure:
            return (f'[mqtt]\ninsecure = true\nurl = "{self.url}"\n{share}'
                    f'[influx]\ninsecure = true\nurl = "{self.influx.url}"\ndb = "{db}"\n')
        for box in BOXES:
            self.account(box, "box")       # each box's key is in keys_dir before the gateway starts
        keys = self.broker.deployment.deployment.box_keys
        verify = f'[verify]\nrequire_verified = true\nkeys_dir = "{keys}"\n'
        return f'{self.account(account).read_text()}{share}{verify}[influx]\n{self.influx.influx_table(db)}'


def mqtt_client(url: str, client_id: str, account: Path | None) -> paho.Client:
    """A paho MQTT 5 client, not connected: plain, or with the TLS and login of ``account`` (its [mqtt] table)."""
    credentials = Credentials()
    if account is not None:
        table = tomllib.loads(account.read_text())["mqtt"]
        table.pop("client_id", None)   # the broker takes the user name as the client id
        credentials = BrokerSettings.model_validate(table).credentials()
    return build_client(client_id, BrokerAddress.parse(url), credentials)


class Chains:
    """What the boxes' outboxes do to each message on a secured set-up: chain it to the box's previous one,
    and seal the chain head every 200 messages or 0.2 s (edge.chain.ChainWriter)."""

    def __init__(self, writers: dict[str, ChainWriter]) -> None:
        self.writers = writers

    def chained(self, box: str, seq: int, payload: bytes) -> list[tuple[str, bytes]]:
        """The message as the box sends it, then its box's seal when one is due."""
        writer = self.writers[box]
        messages = [(str(Topic("bench", box, Kind.DETECTION)), writer.chain(seq, payload))]
        if writer.due():
            messages.append(self.seal(box))
        return messages

    def seal(self, box: str) -> tuple[str, bytes]:
        return str(Topic("bench", box, Kind.SEAL)), self.writers[box].seal(now_ms()).encode()

    def final_seals(self) -> list[tuple[str, bytes]]:
        return [self.seal(box) for box, writer in self.writers.items() if writer.head_seq > 0]


# --------------------------------------------------------------------------- workload


def detections(count: int, start_ms: int, prefix: str, chains: Chains | None = None,
               per_incident: int = 4, places: int = 0) -> list[tuple[str, bytes]]:
    """``count`` detections: incidents of ``per_incident`` sightings each, ~110 m apart, 8 boxes; with
    ``chains``, chained and sealed as the boxes send them (the seals among them).

    Each incident is in a zone of its own, so each is a lead. With ``places``, the incidents take turns
    at that many places (a box's zone, ``places / 8`` zones per box), so that the sightings of one place
    within the merge gap are one lead, as a box's configured zones make them."""
    messages = []
    seqs = dict.fromkeys((f"box-{n}" for n in range(8)), 0)
    for index in range(count):
        incident, repeat = divmod(index, per_incident)
        place = incident % places if places else incident
        box = f"box-{place % 8}"
        seqs[box] += 1
        det = Detection(id=f"{prefix}-{index}", box=box, district="bench", seq=seqs[box], ts=start_ms + index,
                        camera="north", category="street_vending", label="person", score=0.7,
                        bbox=(0.1, 0.5, 0.2, 0.7), zone=f"zone-{place // 8 if places else incident}",
                        track=incident, dwell_s=60.0,
                        lat=48.0 + (place % 1000) * 0.001, lon=16.0 + (place // 1000) * 0.001,
                        model="nanodet-g-416", config="abcdef12")
        if chains is None:
            messages.append((str(Topic("bench", box, Kind.DETECTION)), det.encode()))
        else:
            messages += chains.chained(box, seqs[box], det.encode())
    return messages + ([] if chains is None else chains.final_seals())


class Publisher:
    """Publishes detections with QoS 1: one client for every box on the plain broker; on the secured one a
    client per box, logged in as that box, since a box may publish only under its own topics."""

    def __init__(self, access: Access, name: str) -> None:
        self.access = access
        self.name = name
        self._clients: dict[str, paho.Client] = {}

    def publish(self, topic: str, payload: bytes) -> paho.MQTTMessageInfo:
        box = Topic.parse(topic).box if self.access.secure else ""
        client = self._clients.get(box)
        if client is None:
            client = self._clients[box] = self.access.client(box or self.name, box or None, "box")
            client.max_inflight_messages_set(1000)
            client.max_queued_messages_set(0)
            address = BrokerAddress.parse(self.access.url)
            client.connect(address.host, address.port)
            client.loop_start()
        return client.publish(topic, payload, qos=1)

    def close(self) -> None:
        for client in self._clients.values():
            client.disconnect()
            client.loop_stop()


def publish_fast(access: Access, messages: list[tuple[str, bytes]]) -> float:
    """Publish everything with QoS 1; returns the wall time of the first publish."""
    client = Publisher(access, f"bench-pub-{os.getpid()}-{time.monotonic_ns()}")
    started = time.time()
    infos = [client.publish(topic, payload) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(timeout=60)
    client.close()
    return started


# --------------------------------------------------------------------------- 1. throughput


def count_subscriber(url: str, expected: int, client_id: str, account: Path | None) -> None:
    """Child process: a bare QoS 1 subscriber with a persistent session (``account``: its mqtt.toml on the
    secured broker).

    With ``expected`` 0 it only subscribes and leaves (the broker then keeps
    a backlog for it); otherwise it prints when it connected and when the
    ``expected``-th message arrived.
    """
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    address = BrokerAddress.parse(url)
    done = threading.Event()
    state = {"count": 0, "connected": 0.0, "last": 0.0}

    def on_connect(client, userdata, flags, reason_code, properties) -> None:
        state["connected"] = time.time()
        client.subscribe(DETECTION_TOPIC_FILTER, qos=1)

    def on_subscribe(client, userdata, mid, reason_codes, properties) -> None:
        if expected == 0:
            done.set()

    def on_message(client, userdata, message) -> None:
        state["count"] += 1
        if state["count"] >= expected:
            state["last"] = time.time()
            done.set()

    client = mqtt_client(url, client_id, account)
    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 3600
    properties.ReceiveMaximum = 1000
    client.connect(address.host, address.port, clean_start=False, properties=properties)
    client.loop_start()
    done.wait(120)
    client.disconnect()
    client.loop_stop()
    print(json.dumps(state))


def run_count_subscriber(access: Access, expected: int, client_id: str) -> dict:
    account = access.account(BARE_ACCOUNT)
    out = subprocess.run([sys.executable, __file__, "--count-subscriber", access.url, str(expected), client_id,
                          str(account or "")], capture_output=True, text=True, timeout=130, check=True).stdout
    return json.loads(out)


def bare_subscriber_rate(access: Access, count: int) -> float:
    """Drain rate of a backlog of ``count`` detections by a subscriber that only counts."""
    client_id = f"bench-count-{os.getpid()}"
    run_count_subscriber(access, 0, client_id)
    publish_fast(access, detections(count, now_ms() - 3_600_000, "bare", access.chains()))
    result = run_count_subscriber(access, count, client_id)
    if result["count"] < count:
        raise SystemExit(f"bare subscriber got {result['count']} of {count}")
    return count / (result["last"] - result["connected"])


def gateway_account(db: str) -> str:
    """The gateway account of a run on the secured broker: one each, so that each has a session of its own."""
    return "bench-gw-" + db.removeprefix("bench_").replace("_", "-")


def gateway_process(access: Access, db: str, workdir: Path) -> subprocess.Popen:
    config = workdir / f"{db}.toml"
    config.write_text(access.gateway_config(db, gateway_account(db)))
    client_id = gateway_account(db) if access.secure else f"bench-{db}"
    log = (workdir / f"{db}.log").open("a")
    child = subprocess.Popen([sys.executable, "-m", "gateway.cli", "run", "--config", str(config),
                              "--db", db, "--evidence-dir", str(workdir / "evidence"), "--client-id", client_id],
                             stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    return child


def wait_connected(child: subprocess.Popen, log: Path, times: int = 1) -> float:
    """Wall time at which the gateway's log shows its ``times``-th MQTT connection."""
    wait_until(lambda: child.poll() is not None or log.read_text().count("mqtt.connected") >= times, 30,
               "gateway to connect", every=0.01)
    if child.poll() is not None:
        raise SystemExit(f"gateway exited on start:\n{log.read_text()[-2000:]}")
    return time.time()


def stored_detections(client: InfluxClient, lead_id: str | None = None) -> int:
    where = f""" WHERE "lead_id" = '{lead_id}'""" if lead_id else ""
    rows = client.query(f'SELECT count("n") FROM "detection"{where}')
    return rows[0]["count"] if rows else 0


def last_lead(count: int, prefix: str, per_incident: int = 4, places: int = 0) -> tuple[str, int]:
    """The lead of the backlog's last incident, and how many detections it holds once all are stored."""
    last_incident = (count - 1) // per_incident
    if not places:
        return (lead_id_for("street_vending", f"{prefix}-{last_incident * per_incident}"),
                min(per_incident, count))
    # The lead of the last incident's place, named by that place's first detection.
    place = last_incident % places
    return (lead_id_for("street_vending", f"{prefix}-{place * per_incident}"),
            sum(1 for index in range(count) if index // per_incident % places == place))


def stored_everything(client: InfluxClient, count: int, last: tuple[str, int]) -> bool:
    """True once InfluxDB holds all ``count`` detections of the backlog (``last``: see ``last_lead``).

    Counting every detection takes InfluxDB tens of milliseconds of CPU once
    thousands of leads are stored, which every 50 ms would take a core from
    the gateway and InfluxDB. So the poll first asks only for the last
    incident's detections (one lead, one series), and counts everything only
    once those are there.
    """
    lead_id, expected = last
    return stored_detections(client, lead_id) >= expected and stored_detections(client) >= count


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pids(parent: int) -> dict[int, str]:
    """The children of ``parent``: pid -> command name."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, rest = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()
        if int(rest[1]) == parent:
            found[int(stat.parent.name)] = name
    return found


def service_pids() -> dict[str, int]:
    """This process's Mosquitto and InfluxDB children, by command name."""
    return {name: pid for pid, name in child_pids(os.getpid()).items() if name in ("mosquitto", "influxd")}


def gateway_rate(access: Access, count: int, workdir: Path,
                 round_no: int, places: int = 0) -> tuple[float, int, dict[str, float]]:
    """Drain rate of the same backlog through `gateway run`, until InfluxDB holds every detection.

    Each round has a database of its own, so each gateway starts empty. Also
    returns the CPU time per detection of the gateway (its main process, its
    writer process and its MQTT link process), InfluxDB and Mosquitto during
    the drain, in microseconds.
    """
    db = f"bench_throughput_{round_no}"
    prefix = f"gw{round_no}"
    log = workdir / f"{db}.log"
    first = gateway_process(access, db, workdir)
    try:
        wait_connected(first, log)
        time.sleep(0.5)          # subscribed
    finally:
        stop(first)
    publish_fast(access, detections(count, now_ms() - 3_600_000, prefix, access.chains(), places=places))
    last = last_lead(count, prefix, places=places)
    child = gateway_process(access, db, workdir)
    try:
        started = wait_connected(child, log, times=2)
        # The gateway's own children: its writer and MQTT link processes (and multiprocessing's resource tracker).
        children = child_pids(child.pid)
        pids = {"gateway": [child.pid],
                "gateway writer": [pid for pid, name in children.items() if name != "gateway-mqtt"],
                "gateway mqtt link": [pid for pid, name in children.items() if name == "gateway-mqtt"],
                **{name: [pid] for name, pid in service_pids().items()}}
        cpu_before = {name: sum(map(cpu_seconds, group)) for name, group in pids.items()}
        with access.influx_client(db) as client:
            wait_until(lambda: stored_everything(client, count, last), 100, "gateway to store everything",
                       every=0.05)
            finished = time.time()
            cpu_us = {name: (sum(map(cpu_seconds, group)) - cpu_before[name]) / count * 1e6
                      for name, group in pids.items()}
            leads = client.query('SELECT count("detections") FROM "lead"')[0]["count"]
    finally:
        stop(child)
    return count / (finished - started), leads, cpu_us


# --------------------------------------------------------------------------- 2. latency


def lead_latency(access: Access, rate: int, seconds: float, workdir: Path) -> list[float]:
    db = "bench_latency"
    child = gateway_process(access, db, workdir)
    try:
        wait_connected(child, workdir / f"{db}.log")
        time.sleep(0.5)
        count = int(rate * seconds) // 2 * 2
        client = Publisher(access, "bench-latency-pub")
        published: dict[str, float] = {}      # lead id -> when its second detection was published
        anchors: dict[str, int] = {}          # lead id -> event time of its first detection (the point's time)
        seen: dict[str, float] = {}
        stop_polling = threading.Event()
        poller = threading.Thread(target=poll_leads, args=(access, db, published, anchors, seen, stop_polling))
        poller.start()
        seqs = dict.fromkeys((f"box-{n}" for n in range(8)), 0)
        chains = access.chains()
        started = time.time()
        for index in range(count):
            incident = index // 2
            box = f"box-{incident % 8}"
            seqs[box] += 1
            det = Detection(id=f"lat-{index}", box=box, district="bench", seq=seqs[box],
                            ts=now_ms(), camera="north", category="street_vending", label="person", score=0.7,
                            bbox=(0.1, 0.5, 0.2, 0.7), zone=f"zone-{incident}", track=incident, dwell_s=60.0,
                            lat=48.0 + (incident % 1000) * 0.001, lon=17.0 + (incident // 1000) * 0.001,
                            model="nanodet-g-416", config="abcdef12")
            for topic, payload in (chains.chained(box, seqs[box], det.encode()) if chains else
                                   [(str(Topic("bench", box, Kind.DETECTION)), det.encode())]):
                client.publish(topic, payload)
            if index % 2 == 0:
                anchors[lead_id_for("street_vending", det.id)] = det.ts
            else:
                published[lead_id_for("street_vending", f"lat-{index - 1}")] = time.time()
            delay = started + (index + 1) / rate - time.time()
            if delay > 0:
                time.sleep(delay)
        for topic, payload in chains.final_seals() if chains else []:
            client.publish(topic, payload)
        wait_until(lambda: len(seen) >= len(published), 30, "every lead to show")
        stop_polling.set()
        poller.join()
        client.close()
    finally:
        stop(child)
    return sorted(seen[lead] - published[lead] for lead in published)


def poll_leads(access: Access, db: str, published: dict[str, float], anchors: dict[str, int],
               seen: dict[str, float], stop_polling: threading.Event) -> None:
    """Note when each lead first shows; only leads not seen yet are asked for, by id and point time.

    Asking by time alone makes InfluxDB go through the series of every lead
    stored so far, at a cost that grows through the run.
    """
    with access.influx_client(db, precision="ms") as client:
        while not stop_polling.is_set():
            waiting = [lead for lead in list(published) if lead not in seen]
            pending = [anchors[lead] for lead in waiting]
            if pending:
                try:
                    rows = client.query(f'SELECT "detections", "lead_id" FROM "lead" WHERE time >= {min(pending)}ms '
                                        f'AND "lead_id" =~ /^(?:{"|".join(waiting)})$/')
                except InfluxError:
                    continue  # a dropped keep-alive connection; ask again
                at = time.time()
                for row in rows:
                    seen.setdefault(row["lead_id"], at)
            stop_polling.wait(POLL_S)


# --------------------------------------------------------------------------- 3. memory


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def leadbook_memory(leads: int) -> None:
    """Child process: fill a LeadBook with ``leads`` open leads; prints sizes as JSON."""
    start_ms = now_ms() - 3_600_000
    book = LeadBook()
    before = rss_bytes()
    started = time.perf_counter()
    for incident in range(leads):
        for repeat in range(2):
            det = Detection(id=f"m-{incident}-{repeat}", box=f"box-{incident % 50}", district="bench", seq=incident,
                            ts=start_ms + incident, camera="north", category="street_vending", label="person",
                            score=0.7, bbox=(0.1, 0.5, 0.2, 0.7), zone=f"zone-{incident}", track=incident,
                            dwell_s=60.0, lat=48.0 + (incident % 1000) * 0.001,
                            lon=16.0 + (incident // 1000) * 0.001, model="nanodet-g-416", config="abcdef12")
            book.add(det)
    elapsed = time.perf_counter() - started
    after = rss_bytes()
    assert len(book.leads()) == leads
    print(json.dumps({"leads": leads, "rss_before": before, "rss_after": after, "add_us": elapsed / leads / 2 * 1e6}))


# --------------------------------------------------------------------------- plumbing


def now_ms() -> int:
    return int(time.time() * 1000)


def wait_until(predicate, timeout_s: float, what: str, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(every)


def stop(child: subprocess.Popen) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def percentile(values: list[float], fraction: float) -> float:
    return values[min(len(values) - 1, int(round(fraction * (len(values) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detections", type=int, default=20_000, help="Throughput run size (default 20000).")
    parser.add_argument("--rounds", type=int, default=3,
                        help="Throughput rounds, each the bare subscriber then the gateway (default 3).")
    parser.add_argument("--rate", type=int, default=1000, help="Latency run: detections per second (default 1000).")
    parser.add_argument("--seconds", type=float, default=10.0, help="Latency run length (default 10).")
    parser.add_argument("--leads", type=int, default=100_000, help="Open leads for the memory run (default 100000).")
    parser.add_argument("--budget", type=float, default=180.0, help="Stop the whole run after this many seconds.")
    parser.add_argument("--plain", action="store_true", help="The gateway receives through plain paho.")
    parser.add_argument("--places", type=int, default=0, help=(
        "Throughput run: incidents take turns at this many places (box zones), each place one lead; "
        "default 0: every incident in a zone of its own, a lead and a new series per 4 detections."))
    parser.add_argument("--insecure", action="store_true", help=(
        "Plain, anonymous Mosquitto and InfluxDB instead of devstack's secured ones."))
    args = parser.parse_args()
    if args.plain:
        os.environ[PLAIN_ENV] = "1"   # inherited by the gateway processes started below

    watchdog = threading.Timer(args.budget, lambda: (print("bench: over budget, stopping", flush=True),
                                                     os._exit(3)))
    watchdog.daemon = True
    watchdog.start()
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        workdir = Path(tmp)
        with Mosquitto(workdir / "mosquitto", insecure=args.insecure) as broker, \
                InfluxDB(workdir / "influxdb", insecure=args.insecure) as influx:
            access = Access(broker, influx, workdir)
            print(f"machine: {os.cpu_count()} CPUs; Mosquitto and InfluxDB on loopback; gateway receive path "
                  f"{'plain paho' if args.plain else 'fast'}; " +
                  ("plain MQTT and HTTP, anonymous" if args.insecure else
                   "broker with TLS, password logins and the ACL, every client over TLS with its own account; "
                   "InfluxDB with a login; boxes chain and seal, the gateway requires verified messages"),
                  flush=True)
            ratios = []
            for round_no in range(1, args.rounds + 1):
                bare = bare_subscriber_rate(access, args.detections)
                gateway, leads, cpu_us = gateway_rate(access, args.detections, workdir, round_no, args.places)
                ratios.append(gateway / bare)
                print(f"throughput round {round_no}: bare paho QoS 1 subscriber {bare:,.0f} detections/s, "
                      f"gateway (validate, dedupe, write, ack) {gateway:,.0f} detections/s "
                      f"({args.detections} detections -> {leads} leads), ratio {gateway / bare:.2f}", flush=True)
                print("  CPU per detection during the drain: " + ", ".join(f"{name} {us:.0f} us"
                                                                         for name, us in cpu_us.items()), flush=True)
            median = statistics.median(ratios)
            print(f"ratio gateway / bare subscriber, median of {len(ratios)} rounds: {median:.2f} "
                  f"(rounds {', '.join(f'{r:.2f}' for r in ratios)}; target >= 0.80, "
                  f"{'met' if median >= 0.8 else 'MISSED'})", flush=True)

            latencies = lead_latency(access, args.rate, args.seconds, workdir)
            p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
            print(f"latency publish -> lead visible at {args.rate}/s for {args.seconds:g} s, {len(latencies)} leads: "
                  f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms "
                  f"(target p99 <= 500 ms; {'met' if p99 <= 0.5 else 'MISSED'})", flush=True)

    memory = json.loads(subprocess.run([sys.executable, __file__, "--leadbook-memory", str(args.leads)],
                                       capture_output=True, text=True, check=True, timeout=120).stdout)
    grown = memory["rss_after"] - memory["rss_before"]
    print(f"memory: LeadBook with {memory['leads']:,} open leads: RSS {memory['rss_after'] / 2**20:.0f} MiB "
          f"(+{grown / 2**20:.0f} MiB, {grown / memory['leads']:.0f} bytes per lead; "
          f"{memory['add_us']:.0f} us per detection added)", flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--count-subscriber":
        count_subscriber(sys.argv[2], int(sys.argv[3]), sys.argv[4], Path(sys.argv[5]) if sys.argv[5] else None)
    elif len(sys.argv) > 1 and sys.argv[1] == "--leadbook-memory":
        leadbook_memory(int(sys.argv[2]))
    else:
        sys.exit(main())
