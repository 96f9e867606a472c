"""Signed config changes end to end: a real box on the provisioned broker, `gateway config push`, and changes
that must change nothing (unsigned, wrongly signed, for another box, replayed)."""

from __future__ import annotations

import copy
import logging
import queue
import threading
import tomllib
from pathlib import Path

import pytest

from common.signing import generate_signer, load_signer
from contract import ConfigAck
from contract.configpatch import ChangeBody, SignedChange, body_text
from edge.config import load_table, parse_config
from edge.runtime import Box
from gateway.cli import main as gateway_main

from .conftest import assert_no_secrets, connected, mqtt_settings, probe

pytestmark = [pytest.mark.integration, pytest.mark.model]

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "firmware_configs" / "demo-campus.toml"
TOPIC = "city/campus/campus-01/config"
ACK = "city/campus/campus-01/config/ack"


def box_table(deployment) -> dict:
    table = load_table(DEMO)
    table["mqtt"] = tomllib.loads((deployment.bundle("campus-01") / "mqtt.toml").read_text())["mqtt"]
    table["remote_config"] = {"trusted_keys": [(deployment.bundle("ops-1") / "operator.pub").read_text().strip()]}
    return table


class RunningBox:
    def __init__(self, deployment, spool: Path) -> None:
        table = box_table(deployment)
        config = parse_config(copy.deepcopy(table), str(DEMO), DEMO.parent)
        self.box = Box(config, file_table=table, config_dir=DEMO.parent, spool_path=spool, health_interval_s=3600)
        self.thread = threading.Thread(target=self.box.run, daemon=True)
        self.thread.start()
        assert self.box.outbox.link.wait_connected(15)

    def stop(self) -> None:
        self.box.stop()
        self.thread.join(30)
        self.box.close(drain_timeout_s=5)


def signed(signer, counter: int, patch: dict | None = None, *, box="campus-01", reset=False) -> bytes:
    body = ChangeBody(box=box, district="campus", counter=counter, ts=0, patch=patch, reset=reset)
    envelope = SignedChange(body=body_text(body), key=signer.key_id, sig="-")
    return envelope.model_copy(update={"sig": signer.sign(envelope.signed_bytes())}).encode()


PRINTED: list[str] = []     # everything the command printed, for the secrets check


def push(deployment, tmp_path, capsys, *args: str) -> tuple[int, str]:
    bundle = deployment.bundle("ops-1")
    code = gateway_main(["config", "push", "campus-01", "--district", "campus", "--key", str(bundle / "operator.key"),
                         "--mqtt-config", str(bundle / "mqtt.toml"), "--timeout", "15", *args])
    out = capsys.readouterr()
    PRINTED.append(out.out + out.err)
    return code, out.out + out.err


def next_ack(operator, timeout: float = 10) -> ConfigAck | None:
    while True:
        try:
            topic, payload = operator.messages.get(timeout=timeout)
        except queue.Empty:
            return None
        if topic == ACK:
            return ConfigAck.decode(payload)


def test_only_signed_newer_changes_apply(deployment, secured, tmp_path, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    running = RunningBox(deployment, tmp_path / "spool.db")
    box = running.box
    file_dwell = box.config.rules.street_vending.dwell_s
    # Another operator's login (one login is one session: the broker makes the user name the client id).
    operator = probe(mqtt_settings(deployment, "ops-2"), "ops-2")
    assert connected(operator)
    operator.client.subscribe(ACK, qos=1)
    operator.subacks.get(timeout=5)
    key = load_signer(deployment.bundle("ops-1") / "operator.key")

    def publish(payload: bytes) -> ConfigAck | None:
        while not operator.messages.empty():          # acks of earlier changes (the command's own, say)
            operator.messages.get()
        operator.client.publish(TOPIC, payload, qos=1, retain=True)
        return next_ack(operator, timeout=3)

    try:
        # A signed change, through the command: applied, acknowledged.
        patch = tmp_path / "patch.toml"
        patch.write_text("[rules.street_vending]\ndwell_s = 45\n")
        code, printed = push(deployment, tmp_path, capsys, "--file", str(patch))
        assert code == 0, printed
        assert "accepted" in printed
        assert box.config.rules.street_vending.dwell_s == 45
        applied_hash = box.config_hash
        first = box.gate.counter

        refusals = [
            (b'{"rules": {"street_vending": {"dwell_s": 1}}}', "unsigned change"),
            (signed(generate_signer("ops-1"), first + 10, {"rules": {"street_vending": {"dwell_s": 2}}}),
             "signature does not verify with key 'ops-1'"),
            (signed(generate_signer("rogue"), first + 10, {"rules": {"street_vending": {"dwell_s": 3}}}),
             "key 'rogue', which this box does not trust"),
            (signed(key, first + 10, {"rules": {"street_vending": {"dwell_s": 4}}}, box="box-a"),
             "for box box-a in campus, not this box"),
            (signed(key, first - 1, {"rules": {"street_vending": {"dwell_s": 5}}}),
             f"counter {first - 1} is not above the last applied {first}"),
        ]
        for payload, reason in refusals:
            ack = publish(payload)
            assert ack is not None and ack.status == "rejected", reason
            assert reason in ack.reason
            assert ack.config == applied_hash
            assert box.config.rules.street_vending.dwell_s == 45 and box.config_hash == applied_hash

        # The change in force, retained again, as after a reconnect: already applied, nothing answered.
        current = signed(key, first + 1, {"rules": {"street_vending": {"dwell_s": 45}}})
        assert publish(current).status == "accepted"
        assert publish(current) is None
        assert box.config.rules.street_vending.dwell_s == 45
    finally:
        running.stop()

    # A restarted box gets the retained change on connect: it is the one in force, so nothing changes and
    # nothing is answered; the remembered patch is in force from the start.
    running = RunningBox(deployment, tmp_path / "spool.db")
    try:
        assert running.box.config.rules.street_vending.dwell_s == 45
        assert next_ack(operator, timeout=3) is None
        # A signed reset returns the box to its file config.
        code, printed = push(deployment, tmp_path, capsys, "--reset")
        assert code == 0, printed
        assert running.box.config.rules.street_vending.dwell_s == file_dwell
        # The command reports a refusal with the box's reason.
        bad = tmp_path / "bad.toml"
        bad.write_text("[rules.street_vending]\ndwell_s = \"soon\"\n")
        code, printed = push(deployment, tmp_path, capsys, "--file", str(bad))
        assert code == 1 and "rejected: rules.street_vending.dwell_s" in printed
    finally:
        running.stop()
        operator.client.publish(TOPIC, b"", qos=1, retain=True)
        operator.pubacks.get(timeout=5)
        operator.close()

    assert len(PRINTED) == 3
    assert_no_secrets(deployment, caplog.text, *PRINTED, secured.log_file.read_text())
    assert "config.rejected" in caplog.text and "config.already_applied" in caplog.text
