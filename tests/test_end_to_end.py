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


def test_demo_produces_a_lead_per_category_and_stops_everything(tmp_path):
    result = subprocess.run([sys.executable, "-m", "devstack.demo", "--run-dir", str(tmp_path), "--fast"],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout
    assert "street_vending" in table and "illegal_dumping" in table and "2 lead(s)" in table
    assert "stopped Mosquitto, InfluxDB, gateway and box" in table
    # Evidence pictures arrived and are stored under their sha256.
    stored = list((tmp_path / "evidence").rglob("*.jpg"))
    assert len(stored) == 2
    # Nothing the demo started is left running.
    assert processes_mentioning(str(tmp_path)) == []
    edge_log = (tmp_path / "logs" / "edge.log").read_text()
    assert "spool empty" in edge_log
