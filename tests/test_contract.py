"""The wire contract, checked against the golden messages both sides rely on."""

import json
from pathlib import Path

import pytest

from contract import (
    ContractError,
    Detection,
    Health,
    Kind,
    SensorReading,
    Topic,
    shared_subscription,
    subscription,
)

GOLDEN = Path(__file__).parent / "golden"


def golden(name: str) -> bytes:
    return (GOLDEN / name).read_bytes().strip()


def test_golden_detection_round_trips_byte_for_byte():
    message = Detection.decode(golden("detection_v1.json"))
    assert message.encode() == golden("detection_v1.json")
    assert message.v == 1 and message.category == "street_vending"


def test_golden_health_round_trips_byte_for_byte():
    message = Health.decode(golden("health_v1.json"))
    assert message.encode() == golden("health_v1.json")


def test_golden_health_of_a_camera_down_carries_the_reason():
    message = Health.decode(golden("health_v1_camera_down.json"))
    assert message.encode() == golden("health_v1_camera_down.json")
    assert message.cameras["south"].reason.startswith("zone 'kiosk': point 1")
    assert message.cameras["north"].reason is None


@pytest.mark.parametrize("reason", ["", "two\nlines", "x" * 257])
def test_a_camera_reason_is_one_short_line(reason):
    raw = json.loads(golden("health_v1_camera_down.json"))
    raw["cameras"]["south"]["reason"] = reason
    with pytest.raises(ContractError, match="cameras.south.reason"):
        Health.decode(json.dumps(raw).encode())


def _with(**changes) -> bytes:
    raw = json.loads(golden("detection_v1.json"))
    for key, value in changes.items():
        if value is ...:
            raw.pop(key)
        else:
            raw[key] = value
    return json.dumps(raw).encode()


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"v": 2}, "v"),
        ({"score": 1.5}, "score"),
        ({"score": "0.5"}, "score"),
        ({"bbox": [0.5, 0.1, 0.2, 0.3]}, "bbox"),
        ({"bbox": [0.1, 0.1, 1.2, 0.3]}, "bbox.2"),
        ({"bbox": [0.1, 0.1, 0.2]}, "bbox.3"),
        ({"track": 1.5}, "track"),
        ({"seq": -1}, "seq"),
        ({"ts": 12}, "ts"),
        ({"lat": 91.0}, "lat"),
        ({"box": "Bad Box"}, "box"),
        ({"id": "a/b"}, "id"),
        ({"surprise": 1}, "surprise"),
        ({"camera": ...}, "camera"),
        ({"evidence_sha256": "xyz"}, "evidence_sha256"),
        ({"score": float("nan")}, "score"),
        ({"dwell_s": float("inf")}, "dwell_s"),
        ({"bbox": [0.1, 0.1, float("nan"), 0.3]}, "bbox.2"),
        ({"lon": float("-inf")}, "lon"),
    ],
)
def test_bad_detections_are_refused_naming_the_field(changes, field):
    with pytest.raises(ContractError) as caught:
        Detection.decode(_with(**changes))
    assert caught.value.reason.startswith(f"{field}:") or f"; {field}:" in caught.value.reason


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_sensor_readings_must_be_finite(token):
    payload = (b'{"v":1,"box":"box-1","district":"old-town","seq":1,"ts":1700000000000,"sensor":"air-1",'
               b'"values":{"pm25":' + token.encode() + b'}}')
    with pytest.raises(ContractError, match=r"values\.pm25: .*finite"):
        SensorReading.decode(payload)


def test_non_json_and_oversized_payloads_are_refused():
    with pytest.raises(ContractError, match="Invalid JSON"):
        Detection.decode(b"\x00not json")
    with pytest.raises(ContractError, match="exceeds"):
        Detection.decode(b"{" + b" " * 70_000 + b"}")


def test_a_future_timestamp_is_a_broken_clock():
    message = Detection.decode(golden("detection_v1.json"))
    message.check_clock(message.ts)
    with pytest.raises(ContractError, match="in the future"):
        message.check_clock(message.ts - 3_600_000)


@pytest.mark.parametrize(
    "text, topic",
    [
        ("city/old-town/box-1/detection", Topic("old-town", "box-1", Kind.DETECTION)),
        ("city/old-town/box-1/config/ack", Topic("old-town", "box-1", Kind.CONFIG_ACK)),
        ("city/old-town/box-1/evidence/abc123", Topic("old-town", "box-1", Kind.EVIDENCE, "abc123")),
    ],
)
def test_topics_parse_and_print_back(text, topic):
    assert Topic.parse(text) == topic
    assert str(topic) == text


@pytest.mark.parametrize(
    "text", ["town/a/b/detection", "city/a/b", "city/a/b/video", "city/A/b/detection", "city/a/b/evidence",
             "city/a/b/evidence/x/y"],
)
def test_foreign_topics_are_refused(text):
    with pytest.raises(ContractError):
        Topic.parse(text)


def test_subscriptions():
    assert subscription(Kind.DETECTION) == "city/+/+/detection"
    assert shared_subscription("gw", Kind.EVIDENCE) == "$share/gw/city/+/+/evidence/+"
    assert shared_subscription("gw", Kind.DETECTION, "old-town") == "$share/gw/city/old-town/+/detection"
    for group, district in (("g w", "+"), ("gw", "Old Town"), ("gw", "#")):
        with pytest.raises(ContractError, match="does not match"):
            shared_subscription(group, Kind.DETECTION, district)


@pytest.mark.parametrize("text", ["city/old-town/b\n/detection", "city/old-town\n/b/detection",
                                  "city/a/b/evidence/x\n"])
def test_a_trailing_newline_is_not_a_name(text):
    with pytest.raises(ContractError):
        Topic.parse(text)


@pytest.mark.parametrize("char", [
    "\x00", "\x1f", "\x7f",            # C0 and DEL
    "\x85", "\x9b",                    # C1 (NEL, CSI)
    "\u00ad", "\u200b", "\u200e", "\u202e", "\u2066", "\ufeff",   # format: soft hyphen, zero width, direction marks
    "\u2028", "\u2029",                # line and paragraph separators
])
def test_a_label_with_a_control_format_or_separator_character_is_refused(char):
    good = json.loads(golden("detection_v1.json"))
    for field in ("label", "model"):
        bad = json.dumps({**good, field: f"dining{char}table"}).encode()
        with pytest.raises(ContractError, match=field):
            Detection.decode(bad)


@pytest.mark.parametrize("label", ["dining table", "potted plant", "Straßenstand", "ниша", "café"])
def test_ordinary_labels_with_spaces_and_letters_of_any_script_pass(label):
    good = json.loads(golden("detection_v1.json"))
    assert Detection.decode(json.dumps({**good, "label": label}).encode()).label == label


def test_a_down_cameras_reason_refuses_separators_too():
    health = json.loads(golden("health_v1_camera_down.json"))
    health["cameras"]["south"]["reason"] = "zone\u2028kiosk"
    with pytest.raises(ContractError, match="reason"):
        Health.decode(json.dumps(health).encode())


# --------------------------------------------------------------------------- the chain (optional v1 additions)


def test_golden_chained_detection_is_the_golden_one_with_prev_appended():
    from contract import link
    from contract.chain import prev_of

    chained = golden("detection_v1_chained.json")
    message = Detection.decode(chained)
    assert message.encode() == chained   # prev is the last field, as the box appends it
    assert link(golden("detection_v1.json"), message.prev) == chained and prev_of(chained) == message.prev


def test_golden_seal_verifies_with_the_box_key_and_vouches_for_the_chained_detection():
    from common.signing import parse_public_entry, verify_with
    from contract import Seal, digest

    seal = Seal.decode(golden("seal_v1.json"))
    assert seal.encode() == golden("seal_v1.json")
    key_id, key = parse_public_entry(golden("seal_v1.pub").decode())
    assert key_id == seal.key == seal.box and verify_with(key, seal.sig, seal.signed_bytes())
    assert seal.head == digest(golden("detection_v1_chained.json"))
    assert not verify_with(key, seal.sig, seal.model_copy(update={"seq": seal.seq + 1}).signed_bytes())


def test_only_a_json_object_without_prev_can_be_linked():
    from contract import link

    with pytest.raises(ContractError):
        link(golden("detection_v1_chained.json"), "0" * 64)
    with pytest.raises(ContractError):
        link(b"[]", "0" * 64)
