"""Config patches from the operators' config topic."""

import json
from pathlib import Path

import pytest

from edge.config import load_table
from edge.remote import RemoteConfig

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "firmware_configs" / "demo-campus.toml"


@pytest.fixture
def remote(tmp_path) -> RemoteConfig:
    return RemoteConfig(load_table(DEMO), DEMO.parent, tmp_path / "remote-config.json")


def patch(**content) -> bytes:
    return json.dumps(content).encode()


def test_a_threshold_change_is_accepted_and_changes_the_hash(remote):
    before = remote.decide(b"{}").config
    decision = remote.decide(patch(rules={"street_vending": {"dwell_s": 45}}, detector={"min_score": 0.5}))
    assert decision.accepted, decision.reason
    assert decision.config.rules.street_vending.dwell_s == 45
    assert decision.config.rules.street_vending.update_s == 10       # untouched keys stay
    assert decision.config.detector.min_score == 0.5
    assert decision.config.config_hash() != before.config_hash()


def test_a_camera_gets_a_new_zone_list(remote):
    zones = [{"name": "corner", "type": "no_vending", "polygon": [[0, 0], [0.5, 0], [0.5, 0.5]],
              "lat": 51.2, "lon": -0.5, "dwell_s": 30}]
    decision = remote.decide(patch(cameras=[{"name": "road", "zones": zones}]))
    assert decision.accepted, decision.reason
    assert [z.name for z in decision.config.cameras[0].zones] == ["corner"]
    assert decision.config.cameras[0].source.endswith("campus_demo.mp4")


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (patch(mqtt={"url": "mqtt://evil:1883"}), "mqtt: cannot be changed remotely"),
        (patch(detector={"model": "/tmp/x.onnx"}), "detector.model: cannot be changed remotely"),
        (patch(cameras=[{"name": "road", "source": "rtsp://x"}]), "cameras.0.source: cannot be changed remotely"),
        (patch(cameras=[{"name": "nope", "zones": []}]), "cameras.0.name: no camera named 'nope'"),
        (patch(rules={"street_vending": {"dwell_s": -5}}), "rules.street_vending.dwell_s: Input should be greater than 0"),
        (patch(rules={"street_vending": {"dwel_s": 5}}), "rules.street_vending.dwel_s: Extra inputs are not permitted"),
    ],
)
def test_bad_patches_are_rejected_with_a_reason(remote, payload, reason):
    decision = remote.decide(payload)
    assert not decision.accepted
    assert reason in decision.reason


def test_the_accepted_patch_is_remembered_across_restarts(remote, tmp_path):
    payload = patch(rules={"illegal_dumping": {"dwell_s": 99}})
    remote.remember(payload)
    again = RemoteConfig(load_table(DEMO), DEMO.parent, tmp_path / "remote-config.json").remembered()
    assert again.accepted and again.config.rules.illegal_dumping.dwell_s == 99
