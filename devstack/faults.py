"""Fault injection on the real parts: boxes (their outbox), Mosquitto, `gateway run` and InfluxDB, with a known stream.

Each fault runs on a stack of its own (a fresh Mosquitto and InfluxDB on free loopback ports, secured as a
deployment runs them: TLS, the boxes' and the gateway's own provisioned logins, the ACL, InfluxDB with
authentication; a gateway process, boxes from ``devstack.streambox``; with ``--chains`` the boxes chain and seal
what they send and the gateway stores only what the seals vouch for), with the boxes' and the gateway's MQTT
traffic (TLS end to end) through a loopback TCP proxy the suite controls. The boxes send their stream; the fault is injected mid-stream; then the suite
waits until every message is stored (or a deadline passes) and counts, from the boxes' spools and InfluxDB:

    assigned    seqs the boxes assigned (detections and health)
    stored      distinct seqs stored (detection and box_health points)
    lost        assigned, never stored, and not dropped by the box's announced size policy
    dropped     seqs the boxes' spools gave up under their size policy, by class
    duplicated  detection points beyond one per detection id
    dup leads   leads beyond one per incident (zone)
    recover s   from the end of the fault to the last message of the stream stored
    re-sent     messages the boxes sent again because no confirmation covered them in time

``run(names)`` runs the named faults and returns their results; ``python bench/faults.py`` is the command.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from devstack.services import InfluxDB, Mosquitto, free_port
from devstack.streambox import DISTRICT

ROOT = Path(__file__).resolve().parents[1]
DB = "faults"
STORE_DEADLINE_S = 120.0
GATEWAY = "faults-gateway"


# --------------------------------------------------------------------------- a loopback proxy


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``target_port``; ``cut`` drops every connection and refuses new ones."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target_port = target_port
        self._listener: socket.socket | None = None
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The broker's TLS listener as reached through the proxy (the broker's certificate names 127.0.0.1)."""
        return f"mqtts://127.0.0.1:{self.port}"

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        self._stop.clear()
        self._thread = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)
        self._thread.start()

    def cut(self) -> None:
        """The network is gone: connections drop, new ones are refused."""
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            for sock in (a, b):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    restore = start

    def _accept(self) -> None:
        listener = self._listener
        while not self._stop.is_set() and listener is not None:
            try:
                ready, _, _ = select.select([listener], [], [], 0.2)
                if not ready:
                    continue
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


# --------------------------------------------------------------------------- the stack


@dataclass
class Box:
    name: str
    spool: Path
    args: list[str]
    log: Path
    process: subprocess.Popen | None = None
    lines: list[str] = field(default_factory=list)

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "devstack.streambox", *self.args],
                                        stdout=subprocess.PIPE, stderr=self.log.open("a"), text=True, cwd=ROOT)
        threading.Thread(target=self._read, args=(self.process,), daemon=True).start()

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            self.lines.append(line.strip())

    def put(self) -> int:
        puts = [line for line in self.lines if line.startswith("put ")]
        return int(puts[-1].split()[1]) if puts else 0

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def finished(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def spool_state(self) -> tuple[int, dict[str, set[int]]]:
        """(last seq assigned, the seqs dropped by the size policy by class), read from the spool."""
        from edge.spool import Spool

        spool = Spool(self.spool)
        try:
            dropped: dict[str, set[int]] = {}
            for kind, first, last in spool.dropped_seqs(limit=100_000, covered=True):
                dropped.setdefault(kind, set()).update(range(first, last + 1))
            return spool.last_seq(), dropped
        finally:
            spool.close()


class Stack:
    """Mosquitto, InfluxDB, a gateway process and boxes, in ``run_dir``; the boxes and the gateway reach the
    broker through one proxy each."""

    def __init__(self, run_dir: Path, boxes: int = 2, detections: int = 240, rate: float = 60.0,
                 page_limit: int | None = None, chains: bool = False) -> None:
        self.run_dir = run_dir
        self.chains = chains
        run_dir.mkdir(parents=True, exist_ok=True)
        self.broker = Mosquitto(run_dir / "mosquitto")
        self.influx = InfluxDB(run_dir / "influxdb")
        self.gateway_login = self.broker.login(GATEWAY, "gateway")
        self.box_proxy: TcpProxy | None = None
        self.gateway_proxy: TcpProxy | None = None
        self.gateway: subprocess.Popen | None = None
        self.gateway_log = run_dir / "gateway.log"
        self.base_ts = int(time.time() * 1000) - 600_000
        self.boxes = [Box(f"box-{i}", run_dir / f"box-{i}.db", [], run_dir / f"box-{i}.log")
                      for i in range(boxes)]
        self.detections, self.rate, self.page_limit = detections, rate, page_limit
        self._client = None

    def __enter__(self) -> Stack:
        self.broker.start()
        self.influx.start()
        self.box_proxy = TcpProxy(self.broker.port)
        self.gateway_proxy = TcpProxy(self.broker.port)
        self.box_proxy.start()
        self.gateway_proxy.start()
        for box in self.boxes:
            mqtt_config = self.run_dir / f"{box.name}.mqtt.toml"
            login = self.broker.login(box.name, "box", district=DISTRICT)
            mqtt_config.write_text("[mqtt]\n" + login.toml(self.box_proxy.url))
            box.args = [str(box.spool), self.box_proxy.url, box.name, str(self.detections), "--base-ts",
                        str(self.base_ts), "--rate", str(self.rate), "--mqtt-config", str(mqtt_config)]
            if self.chains:
                security = self.broker.deployment.deployment.bundle(box.name) / "security.toml"
                box.args += ["--security-config", str(security)]
            if self.page_limit:
                box.args += ["--page-limit", str(self.page_limit)]
        return self

    def __exit__(self, *exc) -> None:
        for box in self.boxes:
            box.kill()
        self.stop_gateway()
        for proxy in (self.box_proxy, self.gateway_proxy):
            if proxy is not None:
                proxy.cut()
        if self._client is not None:
            self._client.close()
        self.influx.resume()
        self.influx.stop()
        self.broker.stop()

    # ----------------------------------------------------------------- the gateway

    def start_gateway(self) -> None:
        config = self.run_dir / "gateway.toml"
        config.write_text('batch_wait_s = 0.02\nresend_request_after_s = 5\n[retry]\ninitial_s = 0.1\nmax_s = 1\n'
                          '[mqtt]\nshare_group = "faults"\n' + self.gateway_login.toml(self.gateway_proxy.url) +
                          self._verify_table() +
                          "[influx]\n" + self.influx.influx_table(DB))
        marker = self.gateway_log.read_text().count("mqtt.connected") if self.gateway_log.exists() else 0
        with self.gateway_log.open("a") as log:
            self.gateway = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "run", "--config", str(config), "--mqtt",
                 self.gateway_proxy.url, "--influx", self.influx.url, "--db", DB, "--evidence-dir",
                 str(self.run_dir / "evidence"), "--client-id", GATEWAY],
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        _wait(lambda: self.gateway_log.read_text().count("mqtt.connected") > marker, 60)
        time.sleep(0.3)   # the SUBACK follows the CONNACK

    def _verify_table(self) -> str:
        """With chains, the gateway stores only what the boxes' seals vouch for."""
        if not self.chains:
            return ""
        return f'[verify]\nrequire_verified = true\nkeys_dir = "{self.broker.deployment.deployment.box_keys}"\n'

    def stop_gateway(self, sig: int = signal.SIGTERM) -> None:
        if self.gateway is not None and self.gateway.poll() is None:
            self.gateway.send_signal(sig)
            try:
                self.gateway.wait(20)
            except subprocess.TimeoutExpired:
                self.gateway.kill()
                self.gateway.wait(10)
        self.gateway = None

    # ----------------------------------------------------------------- reading what is stored

    def influx_client(self):
        from gateway.store.influx import InfluxClient

        if self._client is None:
            self._client = InfluxClient(self.influx.url, DB, precision="ns", timeout=5.0, **self.influx.client_login())
        return self._client

    def stored(self) -> dict[str, set[int]]:
        """Per box, the distinct seqs stored, of detections and health."""
        seqs: dict[str, set[int]] = {box.name: set() for box in self.boxes}
        client = self.influx_client()
        for measurement in ("detection", "box_health"):
            for row in client.query_all(f'SELECT "seq", "box" FROM "{measurement}"'):
                seqs.setdefault(row["box"], set()).add(row["seq"])
        return seqs

    def wait_stored(self, expected: Callable[[], dict[str, set[int]]], deadline_s: float) -> float | None:
        """Seconds until every box's stream is stored (``expected``: the seqs per box), None if not by then."""
        started = time.monotonic()
        while time.monotonic() - started < deadline_s:
            try:
                stored = self.stored()
                want = expected()
                if all(box.finished() for box in self.boxes) and all(
                        seqs <= stored.get(name, set()) for name, seqs in want.items()):
                    return time.monotonic() - started
            except Exception:   # noqa: BLE001 - InfluxDB may be away during the fault's aftermath
                pass
            time.sleep(0.25)
        return None


def _wait(predicate: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.05)


# --------------------------------------------------------------------------- results


@dataclass
class Result:
    fault: str
    assigned: int
    stored: int
    lost: int
    dropped: dict[str, int]
    duplicated: int
    duplicate_leads: int
    leads: int
    recover_s: float | None
    resent: int = 0              # messages the boxes sent again because no confirmation covered them in time

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicate_leads == 0 and self.duplicated == 0 and self.recover_s is not None

    def row(self) -> str:
        dropped = ", ".join(f"{k} {v}" for k, v in sorted(self.dropped.items())) or "0"
        recover = "never" if self.recover_s is None else f"{self.recover_s:.1f}"
        return (f"| {self.fault} | {self.assigned} | {self.stored} | {self.lost} | {dropped} | {self.duplicated} | "
                f"{self.duplicate_leads} | {self.leads} | {recover} | {self.resent} |")


HEADER = ("| fault | assigned | stored | lost | dropped by policy | duplicated | duplicate leads | leads | "
          "recover s | re-sent |\n|---|---:|---:|---:|---|---:|---:|---:|---:|---:|")


def measure(stack: Stack, fault: str, fault_ended: float) -> Result:
    """Wait for the stream to be stored, then count."""

    def expected() -> dict[str, set[int]]:
        want = {}
        for box in stack.boxes:
            last, dropped = box.spool_state()
            want[box.name] = set(range(1, last + 1)).difference(*dropped.values())
        return want

    waited = stack.wait_stored(expected, STORE_DEADLINE_S)
    recover_s = None if waited is None else time.monotonic() - fault_ended
    time.sleep(0.5)
    stored = stack.stored()
    assigned = lost = stored_total = 0
    dropped: Counter = Counter()
    for box in stack.boxes:
        last, box_dropped = box.spool_state()
        assigned += last
        got = stored.get(box.name, set()) & set(range(1, last + 1))
        stored_total += len(got)
        gone = set()
        for kind, seqs in box_dropped.items():
            dropped[kind] += len(seqs - got)     # dropped before the gateway stored them
            gone |= seqs
        lost += len(set(range(1, last + 1)) - got - gone)
    client = stack.influx_client()
    rows = client.query_all('SELECT "id", "zone" FROM "detection"')
    duplicated = len(rows) - len({row["id"] for row in rows})
    leads = client.query('SELECT * FROM "lead" GROUP BY *')
    per_zone = Counter(lead["zone"] for lead in leads)
    resent = sum(int(part.removeprefix("messages="))
                 for box in stack.boxes if box.log.exists()
                 for line in box.log.read_text().splitlines() if "delivery.resent" in line
                 for part in line.split() if part.startswith("messages="))
    return Result(fault, assigned, stored_total, lost, {k: v for k, v in dropped.items() if v}, duplicated,
                  sum(n - 1 for n in per_zone.values() if n > 1), len(leads), recover_s, resent)


# --------------------------------------------------------------------------- the faults


def _when_put(stack: Stack, seq: int, timeout_s: float = 60) -> None:
    _wait(lambda: stack.boxes[0].put() >= seq, timeout_s)


def broker_kill_gateway_connected(stack: Stack) -> float:
    _when_put(stack, 80)
    stack.broker.kill()
    time.sleep(1.0)
    stack.broker.start()
    return time.monotonic()


def broker_kill_gateway_disconnected(stack: Stack) -> float:
    _when_put(stack, 40)
    stack.stop_gateway()
    _when_put(stack, 120)
    time.sleep(0.5)
    stack.broker.kill()
    stack.broker.start()
    stack.start_gateway()
    return time.monotonic()


def broker_kill_gateway_late(stack: Stack) -> float:
    _when_put(stack, 40)
    stack.stop_gateway()
    _when_put(stack, 120)
    stack.broker.kill()
    stack.broker.start()
    time.sleep(6.0)              # the boxes are back long before the gateway
    stack.start_gateway()
    return time.monotonic()


def gateway_kill(stack: Stack) -> float:
    _when_put(stack, 80)
    stack.stop_gateway(signal.SIGKILL)
    time.sleep(1.0)
    stack.start_gateway()
    return time.monotonic()


def influx_kill(stack: Stack) -> float:
    _when_put(stack, 80)
    stack.influx.kill()
    time.sleep(5.0)
    stack.influx.start()
    return time.monotonic()


def influx_stop(stack: Stack) -> float:
    _when_put(stack, 80)
    stack.influx.pause()
    time.sleep(5.0)
    stack.influx.resume()
    return time.monotonic()


def box_kill(stack: Stack) -> float:
    box = stack.boxes[0]
    _when_put(stack, 80)
    box.kill()
    time.sleep(1.0)
    box.start()                  # the same spool: the stream goes on
    return time.monotonic()


def spool_full(stack: Stack) -> float:
    """The boxes' disks fill while the network is down: the size policy drops (telemetry first), announced."""
    _when_put(stack, 20)
    stack.box_proxy.cut()
    _wait(lambda: all(box.finished() or any(line == "all put" for line in box.lines) for box in stack.boxes), 60)
    stack.box_proxy.restore()
    return time.monotonic()


def network_cut(stack: Stack) -> float:
    _when_put(stack, 80)
    stack.box_proxy.cut()
    stack.gateway_proxy.cut()
    time.sleep(5.0)
    stack.box_proxy.restore()
    stack.gateway_proxy.restore()
    return time.monotonic()


@dataclass(frozen=True)
class Fault:
    name: str
    inject: Callable[[Stack], float]
    fast: bool                   # in the quick subset the tests run
    page_limit: int | None = None
    detections: int = 240


FAULTS = [
    Fault("broker SIGKILL, gateway connected", broker_kill_gateway_connected, False),
    Fault("broker SIGKILL, gateway disconnected", broker_kill_gateway_disconnected, True),
    Fault("broker SIGKILL, gateway reconnecting 6 s late", broker_kill_gateway_late, False),
    Fault("gateway SIGKILL", gateway_kill, True),
    Fault("InfluxDB SIGKILL (5 s)", influx_kill, False),
    Fault("InfluxDB SIGSTOP (5 s)", influx_stop, False),
    Fault("box SIGKILL", box_kill, True),
    Fault("box spool disk full (SQLite page limit)", spool_full, False, page_limit=32, detections=400),
    Fault("network to the broker cut (5 s)", network_cut, True),
]


def run_one(fault: Fault, run_dir: Path, chains: bool = False) -> Result:
    with Stack(run_dir, page_limit=fault.page_limit, detections=fault.detections, chains=chains) as stack:
        stack.start_gateway()
        for box in stack.boxes:
            box.start()
        ended = fault.inject(stack)
        return measure(stack, fault.name, ended)


def run(faults: list[Fault], run_dir: Path, report: Callable[[Result], None] = lambda result: None,
        chains: bool = False) -> list[Result]:
    results = []
    for index, fault in enumerate(faults):
        result = run_one(fault, run_dir / f"fault-{index}", chains)
        report(result)
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(prog="python bench/faults.py", description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="Only the quick subset the tests run.")
    parser.add_argument("--only", help="Only faults whose name contains this text.")
    parser.add_argument("--run-dir", type=Path, help="Keep the services' data and logs here.")
    parser.add_argument("--chains", action="store_true", help=(
        "Boxes chain and seal with their provisioned keys; the gateway requires verified messages."))
    args = parser.parse_args(argv)
    chosen = [f for f in FAULTS if (f.fast or not args.fast) and (not args.only or args.only in f.name)]
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory(prefix="streetwatch-faults-") as tmp:
        results = run(chosen, args.run_dir or Path(tmp), lambda result: print(result.row(), flush=True),
                      chains=args.chains)
    failed = [r.fault for r in results if not r.ok]
    print(f"{len(results) - len(failed)} of {len(results)} faults: 0 lost, 0 duplicated, 0 duplicate leads"
          + (f"; FAILED: {'; '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
