"""The whole rule pipeline on real footage, through `edge replay`."""

import json
from pathlib import Path

import pytest

from edge.cli import main as edge_main

pytestmark = pytest.mark.model

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = ROOT / "firmware_configs" / "demo-campus.toml"


def replay(capsys, video: Path) -> list[dict]:
    assert edge_main(["--log-level", "WARNING", "replay", str(video), "--config", str(DEMO_CONFIG), "--json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_demo_clip_has_one_vendor_and_one_dumped_object(capsys):
    hits = replay(capsys, ROOT / "tests" / "data" / "campus_demo.mp4")
    new = [h for h in hits if h["event"] == "new"]
    assert [(h["category"], h["zone"]) for h in new] == [("street_vending", "lawn-path"),
                                                           ("illegal_dumping", "verge-east")]
    vendor, dumped = new
    assert vendor["label"] == "person" and 19.5 <= vendor["t_s"] <= 25
    assert dumped["label"] == "static_object" and 35 <= dumped["t_s"] <= 45
    # The man on the lawn stands until 45 s: updates every 10 s, then an end.
    vending_events = [h["event"] for h in hits if h["track"] == vendor["track"]]
    assert vending_events[0] == "new" and vending_events[-1] == "end" and "update" in vending_events


def test_passers_by_on_the_real_clip_raise_nothing(capsys):
    assert replay(capsys, ROOT / "tests" / "data" / "vtest_cut.mp4") == []
