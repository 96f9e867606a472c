"""Plain-text or anonymous access is an explicit choice in a config, never the default: `edge run` and
`gateway run` refuse it naming the key, and log it when the config allows it."""

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import GatewayConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("influx, problems", [
    ({"username": "gw", "password_file": "p"}, []),
    ({"token_file": "t"}, []),
    ({}, ["influx.username"]),
    ({"url": "http://influx.city.internal:8086", "username": "gw", "password_file": "p"}, ["influx.url"]),
    ({"url": "https://influx.city.internal:8086", "username": "gw", "password_file": "p"}, []),
])
def test_influxdb_without_a_login_or_in_plain_text_to_another_host_is_named(influx, problems):
    found = GatewayConfig.model_validate({"influx": influx}).influx.security_problems()
    assert [line.split(":")[0] for line in found] == problems


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_gateway_run_refuses_an_open_broker_and_database_by_default(tmp_path):
    refused = run("gateway.cli", "run", "--evidence-dir", str(tmp_path / "evidence"))
    assert refused.returncode == 2
    for key in ("mqtt.url", "mqtt.username", "mqtt.insecure", "influx.username", "influx.insecure"):
        assert f"{key}: " in refused.stderr, refused.stderr


def test_edge_run_refuses_an_open_broker_unless_its_config_says_insecure(tmp_path):
    config = ROOT / "firmware_configs" / "demo-campus.toml"
    refused = run("edge.cli", "run", "--config", str(config), "--mqtt", "mqtt://127.0.0.1:9",
                  "--spool", str(tmp_path / "spool.db"))
    assert refused.returncode == 2
    assert "mqtt.url: mqtt://127.0.0.1:9 is plain text" in refused.stderr
    assert "mqtt.insecure: set true to allow this explicitly" in refused.stderr
