"""The desk's queue page against a bare InfluxDB query for the same leads.

    python bench/bench_desk.py [--leads 10000] [--requests 200]

Starts its own InfluxDB on loopback, writes ``--leads`` open leads (as the
gateway writes them: a lead point per lead, spread over a day, five
districts), and starts `gateway web` on it as a process of its own, as it is
deployed. Then, alternating, it asks for the queue page (first 50
leads, newest first, as a dispatcher sees it) and runs the bare InfluxQL
statement that reads the same 50 leads straight from InfluxDB. Reported, as
median and p95 over ``--requests`` each:

- page server time: the desk's own ``Server-Timing`` (from request to answer,
  the InfluxDB query included);
- page round trip: as the HTTP client saw it;
- bare queries: the store's two InfluxQL statements for the page (the ids,
  then the leads) sent by the same InfluxDB client, parsed to rows, and for
  reference the one ``SELECT *`` that reads the same leads in one statement.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from devstack.services import InfluxDB
from gateway.config import GatewayConfig
from gateway.store.influx import InfluxClient
from gateway.store.lineprotocol import Point
from gateway.store.schema import PRECISION, ms_to_ns
from gateway.web.accounts import Accounts

ROOT = Path(__file__).resolve().parents[1]
DB = "desk_bench"
DISTRICTS = ["old-town", "harbour", "campus", "market", "north"]
# The same two statements the store runs for the page, as plain InfluxQL: the newest leads' ids and statuses
# (the active ones kept), then those leads whole; and, for reference, the same leads in one statement.
BARE_IDS = 'SELECT "status", "lead_id" FROM "lead" ORDER BY time DESC LIMIT 200'
BARE_ONE = ('SELECT * FROM "lead" WHERE "status" != \'resolved\' AND "status" != \'closed\' '
            'ORDER BY time DESC LIMIT 50')
ACTIVE = ("open", "dispatched", "on_scene", "claimed")


def bare(client: InfluxClient) -> list[dict]:
    ids = "|".join([row["lead_id"] for row in client.query(BARE_IDS) if row["status"] in ACTIVE][:50])
    return client.query(f'SELECT * FROM "lead" WHERE "lead_id" =~ /^(?:{ids})$/')


PASSWORD = "bench password 1234"


def lead_points(count: int, now_ms: int) -> list[Point]:
    rng = random.Random(7)
    points = []
    for n in range(count):
        first = now_ms - rng.randrange(86_400_000)
        district = DISTRICTS[n % len(DISTRICTS)]
        tags = {"lead_id": f"L{n:011x}", "category": ("street_vending", "illegal_dumping")[n % 2],
                "district": district, "zone": f"zone-{n % 40}"}
        fields = {"status": "open", "opened_at": first + 60_000, "detections": 2 + n % 5,
                  "score": round(rng.random(), 3), "first_seen": first, "last_seen": first + 60_000,
                  "lat": 48.2 + rng.random() / 50, "lon": 16.37 + rng.random() / 50,
                  "boxes": f"box-{n % 60}", "team": f"{district}-street-team", "route": f"district:{district}"}
        points.append(Point("lead", tags, fields, ms_to_ns(first)))
    return points


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share / 100 * len(ordered) + 0.5)) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, InfluxDB(Path(tmp) / "influxdb") as server:
        client = InfluxClient(server.url, DB, precision=PRECISION, **server.client_login())
        client.create_database()
        points = lead_points(args.leads, int(time.time() * 1000))
        for start in range(0, len(points), 5000):
            client.write(points[start:start + 5000])
        config_path = Path(tmp) / "desk.toml"
        config_path.write_text(f'evidence_dir = "{Path(tmp) / "evidence"}"\n[influx]\n{server.influx_table(DB)}'
                               f'[desk]\naccounts = "{Path(tmp) / "desk.sqlite3"}"\n'
                               # Clocks long enough that none runs over, so the desk's clock runs as in
                               # service, without a one-off burst of escalations.
                               '[desk.sla]\ndispatch_min = 20000\non_scene_min = 20000\nresolve_min = 20000\n')
        config = GatewayConfig.model_validate({"desk": {"accounts": str(Path(tmp) / "desk.sqlite3")}})
        accounts = Accounts(config.desk.accounts)
        accounts.add_user("dana", "dispatcher", None, PASSWORD)
        accounts.close()
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        desk = subprocess.Popen([sys.executable, "-m", "gateway.cli", "--log-level", "WARNING", "web", "--config",
                                 str(config_path), "--listen", f"127.0.0.1:{port}"], cwd=ROOT)
        try:
            wait_until_up(base)
            results = measure(base, client, args.requests)
        finally:
            desk.terminate()
            desk.wait(15)
            client.close()
    report(args, *results)
    return 0 if within_target(*results) else 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(base: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/login", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("gateway web did not start")


def measure(base: str, client: InfluxClient, requests: int) -> tuple[list[float], ...]:
    """Page and bare queries, alternating; lists of ms: page server time, page round trip, bare, one SELECT *."""
    with httpx.Client(base_url=base) as http:
        token = http.get("/login").text.split('name="login_token" value="')[1].split('"')[0]
        http.post("/login", data={"name": "dana", "password": PASSWORD, "login_token": token})
        check = http.get("/")
        assert check.status_code == 200 and check.text.count("data-lead=") == 50, check.text[:500]
        bare_rows = sorted(bare(client), key=lambda row: row["time"], reverse=True)
        page_ids = [part.split('"')[0] for part in check.text.split('data-lead="')[1:]]
        assert page_ids == [row["lead_id"] for row in bare_rows], "page and bare queries differ"
        for _ in range(10):   # warm both paths
            http.get("/")
            bare(client)
        server_ms, page_ms, bare_ms, one_ms = [], [], [], []
        for _ in range(requests):
            started = time.perf_counter()
            response = http.get("/")
            page_ms.append((time.perf_counter() - started) * 1000)
            server_ms.append(float(response.headers["server-timing"].split("dur=")[1]))
            started = time.perf_counter()
            bare(client)
            bare_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            client.query(BARE_ONE)
            one_ms.append((time.perf_counter() - started) * 1000)
    return server_ms, page_ms, bare_ms, one_ms


def within_target(server_ms: list[float], page_ms: list[float], bare_ms: list[float], one_ms: list[float]) -> bool:
    return percentile(server_ms, 95) <= 200 and percentile(server_ms, 95) <= 2 * percentile(bare_ms, 95)


def report(args: argparse.Namespace, server_ms: list[float], page_ms: list[float], bare_ms: list[float],
           one_ms: list[float]) -> None:
    print(f"{args.leads} open leads in InfluxDB, {args.requests} requests each, first 50 leads newest first; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'':<26} {'median ms':>10} {'p95 ms':>8}")
    for name, values in (("page, server time", server_ms), ("page, round trip", page_ms),
                         ("bare InfluxDB queries", bare_ms), ("one SELECT * (reference)", one_ms)):
        print(f"{name:<26} {statistics.median(values):>10.1f} {percentile(values, 95):>8.1f}")
    print(f"page server time p95 / bare queries p95 = {percentile(server_ms, 95) / percentile(bare_ms, 95):.2f}")
    print("within target (p95 <= 200 ms and <= 2x the bare queries)" if within_target(server_ms, page_ms, bare_ms,
                                                                                      one_ms) else "OUTSIDE target")


if __name__ == "__main__":
    sys.exit(main())
