"""Real clip -> real model -> Mosquitto -> gateway -> InfluxDB -> leads, as the demo runs it."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.model]

ROOT = Path(__file__).resolve().parents[1]


def processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in args:
            found.append(args)
    return found


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """The demo's start path as the README runs it (``scripts/demo.sh`` is set-up, then this), played fast."""
    run_dir = tmp_path_factory.mktemp("demo")
    result = subprocess.run([sys.executable, "-m", "devstack.demo", "--run-dir", str(run_dir), "--fast"],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    return result, run_dir


def secrets_used(run_dir: Path) -> list[str]:
    """Every password and every private key line the demo made: its logins' password files, InfluxDB's admin
    and gateway passwords, and the keys of the CA and the broker."""
    found = [path.read_text().strip() for path in run_dir.rglob("mqtt-password")]
    found.append((run_dir / "influxdb" / "admin-password").read_text().strip())
    found += [path.read_text().strip() for path in (run_dir / "influxdb" / "users").glob("*-password")]
    for path in run_dir.rglob("*.key"):
        found += [line for line in path.read_text().splitlines() if line and not line.startswith("-----")]
    return found


def test_demo_produces_a_lead_per_category_and_stops_everything(demo):
    result, tmp_path = demo
    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout
    assert "street_vending" in table and "illegal_dumping" in table and "2 lead(s)" in table
    assert "stopped Mosquitto, InfluxDB, gateway and box" in table
    # The box chained and sealed what it sent; the gateway, requiring that, verified every lead.
    assert "every lead verified" in table
    assert "require_verified = true" in (tmp_path / "gateway.toml").read_text()
    # Evidence pictures arrived and are stored under their sha256.
    stored = list((tmp_path / "evidence").rglob("*.jpg"))
    assert len(stored) == 2
    # Nothing the demo started is left running.
    assert processes_mentioning(str(tmp_path)) == []
    edge_log = (tmp_path / "logs" / "edge.log").read_text()
    assert "spool empty" in edge_log


def test_the_demo_runs_secured_and_no_password_or_key_appears_in_its_output_or_logs(demo):
    result, run_dir = demo
    assert result.returncode == 0, result.stdout + result.stderr
    secrets = secrets_used(run_dir)
    assert len([path for path in run_dir.rglob("mqtt-password")]) >= 3     # the box, the gateway, the probe
    assert len(secrets) > 5
    texts = {"console": result.stdout + result.stderr}
    for log in [*run_dir.rglob("*.log"), *run_dir.rglob("*.toml"), *run_dir.rglob("*.conf")]:
        texts[str(log)] = log.read_text(errors="replace")
    texts["firmware config"] = (ROOT / "firmware_configs" / "demo-campus.toml").read_text()
    leaked = {name: secret[:4] + "…" for name, text in texts.items() for secret in secrets if secret in text}
    assert not leaked, f"secrets in the demo's output or logs: {leaked}"
    # Secured as it ran: TLS only, no anonymous login, the ACL; InfluxDB with authentication; logins from files.
    broker = (run_dir / "mosquitto" / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in broker and "acl_file" in broker and "allow_anonymous true" not in broker
    assert "auth-enabled = true" in (run_dir / "influxdb" / "influxdb.conf").read_text()
    gateway = (run_dir / "gateway.toml").read_text()
    assert 'url = "mqtts://' in gateway and "password_file" in gateway and "ca_file" in gateway
    # The gateway logs in to InfluxDB as a user with rights on its database alone, which may not make databases.
    assert 'username = "demo-gateway"' in gateway.split("[influx]")[1] and 'username = "admin"' not in gateway
    assert "influx.database_ready db=streetwatch_demo created=no" in (run_dir / "logs" / "gateway.log").read_text()
    assert "mqtts://" in result.stdout and "mqtt.connected" in (run_dir / "logs" / "gateway.log").read_text()
    assert "devstack.insecure" not in result.stdout + result.stderr
    # The box takes config changes signed by the demo's operator only, not unsigned ones.
    edge_log = (run_dir / "logs" / "edge.log").read_text()
    assert "config.signed_changes_required keys=" in edge_log and "config.unsigned_changes_accepted" not in edge_log
