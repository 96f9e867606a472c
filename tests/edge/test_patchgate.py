"""The box's gate for live config changes: signature, key, box, counter, and the explicit unsigned choice."""

from __future__ import annotations

import json

import pytest

from common.signing import generate_signer
from contract.configpatch import ChangeBody, SignedChange, body_text
from edge.config import ConfigError, load_table, parse_config
from edge.patchgate import AlreadyApplied, ChangeRefused, PatchGate, RemoteConfigSettings

OPERATOR = generate_signer("ops-1")
INTRUDER = generate_signer("ops-1")          # same id, another key
STRANGER = generate_signer("ops-9")


def change(counter: int, *, signer=OPERATOR, box="box-1", district="old-town", patch=None, reset=False) -> bytes:
    body = ChangeBody(box=box, district=district, counter=counter, ts=0,
                      patch=None if reset else (patch or {"rules": {"street_vending": {"dwell_s": 45}}}), reset=reset)
    envelope = SignedChange(body=body_text(body), key=signer.key_id, sig="-")
    return envelope.model_copy(update={"sig": signer.sign(envelope.signed_bytes())}).encode()


def gate(tmp_path, **settings) -> PatchGate:
    settings.setdefault("trusted_keys", [OPERATOR.public_entry()])
    return PatchGate(RemoteConfigSettings(**settings), "box-1", "old-town", tmp_path / "counter.json")


def test_a_signed_change_opens_and_its_counter_is_kept(tmp_path):
    g = gate(tmp_path)
    opened = g.open(change(5))
    assert json.loads(opened.patch) == {"rules": {"street_vending": {"dwell_s": 45}}}
    assert (opened.counter, opened.key, opened.reset) == (5, "ops-1", False)
    g.applied(opened)
    again = gate(tmp_path)                       # after a restart
    assert again.counter == 5
    with pytest.raises(AlreadyApplied):
        again.open(change(5))                    # the retained change redelivered: same bytes
    with pytest.raises(ChangeRefused, match="counter 4 is not above the last applied 5"):
        again.open(change(4))
    with pytest.raises(ChangeRefused, match="counter 5 is not above"):
        again.open(change(5, patch={"rules": {"street_vending": {"dwell_s": 50}}}))   # same counter, other change
    assert again.open(change(6, reset=True)).patch == b"{}"


@pytest.mark.parametrize("payload, reason", [
    (b'{"rules": {"street_vending": {"dwell_s": 45}}}', "unsigned change"),
    (change(7, signer=INTRUDER), "signature does not verify with key 'ops-1'"),
    (change(7, signer=STRANGER), "key 'ops-9', which this box does not trust"),
    (change(7, box="box-2"), "for box box-2 in old-town, not this box"),
    (change(7, district="market"), "for box box-1 in market"),
    (change(7).replace(b'\\"counter\\":7', b'\\"counter\\":8'), "signature does not verify"),
    (b'{"v": 1, "body": "{}", "key": "ops-1", "sig": "AAAA", "extra": 1}', "extra"),
])
def test_changes_the_box_refuses(tmp_path, payload, reason):
    with pytest.raises(ChangeRefused, match=reason):
        gate(tmp_path).open(payload)


def test_without_keys_the_config_says_whether_unsigned_changes_are_taken(tmp_path, caplog):
    off = gate(tmp_path, trusted_keys=[])
    off.describe()
    assert "config.live_changes_off" in caplog.text
    with pytest.raises(ChangeRefused, match="live changes are off"):
        off.open(b'{"rules": {}}')
    with pytest.raises(ChangeRefused, match="lists no trusted_keys"):
        off.open(change(1))
    legacy = gate(tmp_path, trusted_keys=[], accept_unsigned=True)
    legacy.describe()
    assert "config.unsigned_changes_accepted" in caplog.text
    assert legacy.open(b'{"rules": {}}').counter is None


def test_the_config_refuses_keys_with_unsigned_changes_and_bad_keys(tmp_path):
    from pathlib import Path
    demo = Path(__file__).resolve().parents[2] / "firmware_configs" / "demo-campus.toml"
    table = load_table(demo)
    table["remote_config"] = {"trusted_keys": [OPERATOR.public_entry()], "accept_unsigned": True}
    with pytest.raises(ConfigError, match="remote_config: Value error, accept_unsigned must be false"):
        parse_config(table, "demo", demo.parent)
    table["remote_config"] = {"trusted_keys": ["ops-1:bm90LWEta2V5"]}
    with pytest.raises(ConfigError, match="remote_config.trusted_keys: Value error, entry 0: trusted key 'ops-1' is not a "
                                          "32-byte Ed25519 public key"):
        parse_config(table, "demo", demo.parent)
    table["remote_config"] = {"trusted_keys": [OPERATOR.public_entry()]}
    with_keys = parse_config(table, "demo", demo.parent)
    table["remote_config"] = {"accept_unsigned": True}
    assert parse_config(table, "demo", demo.parent).config_hash() == with_keys.config_hash()   # not decisive


def test_a_kept_change_is_applied_at_start_only_when_the_gate_let_it_through(tmp_path):
    assert gate(tmp_path, trusted_keys=[], accept_unsigned=True).trusts_remembered()
    assert not gate(tmp_path, trusted_keys=[]).trusts_remembered()           # live changes off
    signed_box = gate(tmp_path)
    assert not signed_box.trusts_remembered()     # keys now, but no signed change yet: an older unsigned one stays out
    signed_box.applied(signed_box.open(change(3)))
    assert gate(tmp_path).trusts_remembered()
