"""The end-to-end demo: clip -> box -> Mosquitto -> gateway -> InfluxDB -> leads, secured as a deployment runs.

Provisions a deployment in the run directory (a CA, the broker's
certificate, the box ``campus-01`` and the gateway ``demo-gateway``, each
with a password file), starts its own Mosquitto (TLS only, no anonymous
login, the provisioned ACL) and InfluxDB (authentication on, an admin user
whose password is in a file) on free loopback ports, runs the gateway and
one box (the demo config plays the demo clip once) with those logins and the
box's own signing key (it chains and seals what it sends; the gateway stores
only what the seals vouch for), waits
until every demo category has a lead, prints the leads, and stops everything
it started. No password is printed or logged: the configs name files.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from devstack.deployment import DevDeployment
from devstack.services import InfluxDB, Mosquitto, _free_ports

ROOT = Path(__file__).resolve().parent.parent
DEMO_CONFIG = ROOT / "firmware_configs" / "demo-campus.toml"
DEMO_CATEGORIES = ("street_vending", "illegal_dumping")
DB = "streetwatch_demo"
BOX, DISTRICT, GATEWAY, OPERATOR = "campus-01", "campus", "demo-gateway", "demo-operator"


def _python(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def _wait_for_leads(gateway_config: Path, categories: tuple[str, ...], timeout_s: float) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    leads: list[dict] = []
    while time.monotonic() < deadline:
        out = subprocess.run(_python("gateway.cli", "--log-level", "WARNING", "leads", "list", "--config",
                                     str(gateway_config), "--json"), capture_output=True, text=True)
        if out.returncode == 0:
            leads = json.loads(out.stdout)
            if all(any(lead["category"] == c for lead in leads) for c in categories):
                return leads
        time.sleep(1.0)
    return leads


def _stop(process: subprocess.Popen, timeout_s: float = 15) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def provision(run_dir: Path) -> DevDeployment:
    """The demo's deployment: CA, broker certificate, the box's, the gateway's and an operator's logins and keys
    (``gateway.provision``)."""
    port, cert_port = _free_ports(2)
    deployment = DevDeployment(run_dir / "deployment", port=port, cert_port=cert_port)
    deployment.login(BOX, "box", district=DISTRICT)
    deployment.login(GATEWAY, "gateway")
    deployment.login(OPERATOR, "operator", districts=(DISTRICT,))
    return deployment


def write_gateway_config(run_dir: Path, deployment: DevDeployment, influx: InfluxDB) -> Path:
    """The gateway's config: its [mqtt] and [verify] tables as provisioned (only messages the box's signed chain
    vouches for are stored), and an InfluxDB login with rights on the demo's database alone (not the admin);
    the logins name password files."""
    path = run_dir / "gateway.toml"
    influx.database_user(DB, GATEWAY)
    bundle = deployment.deployment.bundle(GATEWAY)
    mqtt, verify = (bundle / "mqtt.toml").read_text(), (bundle / "verify.toml").read_text()
    path.write_text(f"evidence_dir = \"{run_dir / 'evidence'}\"\n{mqtt}\n{verify}\n"
                    f"[influx]\n{influx.influx_table(DB, user=GATEWAY)}")
    return path


def run_demo(config: Path, run_dir: Path, timeout_s: float, fast: bool = False) -> int:
    print(f"demo: run directory {run_dir}")
    deployment = provision(run_dir)
    place = deployment.deployment.place
    box_mqtt = deployment.deployment.bundle(BOX) / "mqtt.toml"
    box_security = deployment.deployment.bundle(BOX) / "security.toml"
    box_remote = deployment.deployment.bundle(OPERATOR) / "remote_config.toml"
    print(f"demo: provisioned box {BOX} (district {DISTRICT}), gateway {GATEWAY} and operator {OPERATOR} in "
          f"{deployment.folder}; their logins are password files in accounts/NAME/; the box takes only config "
          f"changes signed by {OPERATOR}")
    with Mosquitto(run_dir / "mosquitto", deployment=deployment, port=place.port, cert_port=place.cert_port) as broker, \
            InfluxDB(run_dir / "influxdb") as influx:
        print(f"demo: Mosquitto {broker.url} (TLS, CA {broker.ca_file}, no anonymous login, ACL on), "
              f"InfluxDB {influx.url} (admin login {influx.username}, password in {influx.password_file})")
        gateway_config = write_gateway_config(run_dir, deployment, influx)
        print(f"demo: the gateway logs in to InfluxDB as {GATEWAY}, with rights on database {DB} alone "
              f"(password in {influx.user_password_file(GATEWAY)})")
        log_dir = run_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        with (log_dir / "gateway.log").open("w") as gateway_log:
            gateway = subprocess.Popen(_python("gateway.cli", "run", "--config", str(gateway_config)),
                                       stdout=gateway_log, stderr=subprocess.STDOUT)
            try:
                print(f"demo: box plays {config.name}; gateway log in {log_dir / 'gateway.log'}")
                with (log_dir / "edge.log").open("w") as edge_log:
                    edge = subprocess.run(
                        _python("edge.cli", "run", "--config", str(config), "--mqtt-config", str(box_mqtt),
                                "--security-config", str(box_security), "--remote-config", str(box_remote),
                                "--spool", str(run_dir / "spool.db"), *(["--fast"] if fast else [])),
                        stdout=edge_log, stderr=subprocess.STDOUT, timeout=timeout_s)
                incidents = [line for line in (log_dir / "edge.log").read_text().splitlines() if "incident." in line]
                print(f"demo: box finished (exit {edge.returncode}), {len(incidents)} incident message(s)")
                if edge.returncode != 0:
                    print((log_dir / "edge.log").read_text()[-3000:], file=sys.stderr)
                    return 1
                leads = _wait_for_leads(gateway_config, DEMO_CATEGORIES, 60)
            finally:
                _stop(gateway)
        listing = subprocess.run(_python("gateway.cli", "--log-level", "WARNING", "leads", "list",
                                         "--config", str(gateway_config)), capture_output=True, text=True)
        print(listing.stdout, end="")
        missing = [c for c in DEMO_CATEGORIES if not any(lead["category"] == c for lead in leads)]
        if missing:
            print(f"demo: no lead for {', '.join(missing)}", file=sys.stderr)
            return 1
        unverified = [lead["lead_id"] for lead in leads if lead.get("verify") != "verified"]
        if unverified:
            print(f"demo: leads not verified against the box's signed chain: {', '.join(unverified)}",
                  file=sys.stderr)
            return 1
        print("demo: every lead verified: the box's seals vouch for each of its detections")
    print("demo: stopped Mosquitto, InfluxDB, gateway and box")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEMO_CONFIG, help="Box config to play.")
    parser.add_argument("--run-dir", type=Path, help="Where services keep data and logs (default: a temp dir).")
    parser.add_argument("--timeout", type=float, default=900, help="Longest the box may run, in seconds.")
    parser.add_argument("--fast", action="store_true", help="Play the clip as fast as the CPU allows.")
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so every service and child process is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.run_dir:
        args.run_dir.mkdir(parents=True, exist_ok=True)
        return run_demo(args.config, args.run_dir.resolve(), args.timeout, args.fast)
    with tempfile.TemporaryDirectory(prefix="streetwatch-demo-") as tmp:
        return run_demo(args.config, Path(tmp), args.timeout, args.fast)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
