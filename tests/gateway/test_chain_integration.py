"""Tamper-evident messages on real Mosquitto and InfluxDB: forged detections, altered pictures, old firmware."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from common.signing import generate_signer
from contract import Detection, Kind, Topic
from edge.chain import ChainWriter

pytestmark = pytest.mark.integration

T0 = int(time.time() * 1000) - 60_000
BOX, DISTRICT = "box-1", "old-town"
BASE = dict(box=BOX, district=DISTRICT, camera="north", category="illegal_dumping", label="suitcase",
            score=0.7, bbox=(0.1, 0.5, 0.2, 0.7), zone="hotspot", track=4, dwell_s=120.0, lat=48.2085,
            lon=16.3731, model="nanodet-g-416", config="abcdef12")
FORGED = dict(zone="forged", lat=48.3085, lon=16.4731)
JPEG = b"\xff\xd8\xff\xe0" + b"the picture the box took" * 20
DETECTION = str(Topic(DISTRICT, BOX, Kind.DETECTION))
SEAL = str(Topic(DISTRICT, BOX, Kind.SEAL))


def detection(seq: int, **changes) -> bytes:
    return Detection(**{**BASE, "id": f"chain-{seq}-{changes.get('zone', 'hotspot')}", "seq": seq,
                        "ts": T0 + seq * 1000, **changes}).encode()


class SigningBox:
    """What a box with a key publishes: chained messages and seals (edge.chain.ChainWriter)."""

    def __init__(self, keys: Path) -> None:
        self.signer = generate_signer(BOX)
        keys.mkdir(exist_ok=True)
        (keys / f"{BOX}.pub").write_text(self.signer.public_entry() + "\n")
        self.writer = ChainWriter(BOX, DISTRICT, self.signer)
        self.seq = 0

    def detection(self, **changes) -> tuple[str, bytes]:
        self.seq += 1
        return DETECTION, self.writer.chain(self.seq, detection(self.seq, **changes))

    def seal(self) -> tuple[str, bytes]:
        return SEAL, self.writer.seal(int(time.time() * 1000)).encode()


def verify_table(keys: Path, require: bool) -> str:
    return f'[verify]\nrequire_verified = {"true" if require else "false"}\nkeys_dir = "{keys}"\nseal_timeout_s = 2\n'


def leads(cli, influx_flags, db) -> list[dict]:
    result = cli("leads", "list", "--json", *influx_flags(db))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def rejected_reasons(influx) -> list[str]:
    return [row["reason"] for row in influx.query_all("SELECT * FROM rejected")]


def test_a_forged_detection_fails_verification_and_opens_no_lead(gateway_process, publish, cli, influx, influx_flags,
                                                                  influx_db_name, tmp_path, wait):
    box = SigningBox(tmp_path / "keys")
    gateway_process(verify_table(tmp_path / "keys", require=True))
    publish([box.detection(), box.detection(), box.seal()])
    [lead] = wait(lambda: leads(cli, influx_flags, influx_db_name))
    assert lead["zone"] == "hotspot" and lead["verify"] == "verified" and lead["unverified"] == 0

    # A client that is not the box (here a harness account; the open test broker lets it publish in the box's
    # topic): two detections elsewhere that link to the box's real head, a seal signed with its own key, and
    # a detection put in place of one the box's seal already vouched for.
    impostor = ChainWriter(BOX, DISTRICT, generate_signer(BOX), head_seq=box.writer.head_seq, head=box.writer.head)
    forged = [(DETECTION, impostor.chain(seq, detection(seq, **FORGED))) for seq in (3, 4)]
    forged.append((SEAL, impostor.seal(int(time.time() * 1000)).encode()))
    forged.append((DETECTION, ChainWriter(BOX, DISTRICT, generate_signer(BOX), head_seq=1,
                                          head=box.writer.head).chain(2, detection(2, **FORGED))))
    publish(forged, client_id="harness-not-the-box")
    reasons = wait(lambda: (found := rejected_reasons(influx)) and len(found) >= 4 and found)
    assert "seal of seq 4 does not verify with the key of box box-1" in reasons
    assert any(r.startswith("seq 2: sha256 ") and "not the message the box's signed chain holds" in r
               for r in reasons)
    assert sum(r == f"unverified: no valid seal of box box-1 covered seq {seq} within 2 s"
               for r in reasons for seq in (3, 4)) == 2
    [lead] = leads(cli, influx_flags, influx_db_name)
    assert lead["zone"] == "hotspot" and lead["chain_broken"] == "box-1"   # its box's chain broke: flagged
    shown = cli("leads", "show", lead["lead_id"], *influx_flags(influx_db_name)).stdout
    assert "WARNING: the chain of box(es) box-1 broke" in shown
    assert not influx.query_all("SELECT * FROM detection WHERE zone = 'forged'")

    boxes = json.loads(cli("boxes", "--json", *influx_flags(influx_db_name)).stdout)
    [summary] = [b for b in boxes if b["box"] == BOX]
    assert summary["chain"] == "broken" and summary["verified"] == 2 and summary["failed"] == 1
    table = cli("boxes", *influx_flags(influx_db_name)).stdout
    assert "BROKEN" in table and "warning: box-1: its chain broke" in table


def test_a_picture_altered_after_the_box_signed_it_is_flagged_on_its_lead(gateway_process, publish, cli, influx,
                                                                          influx_flags, influx_db_name, tmp_path, wait):
    box = SigningBox(tmp_path / "keys")
    gateway_process(verify_table(tmp_path / "keys", require=True))
    sha = hashlib.sha256(JPEG).hexdigest()
    first = box.detection(evidence_sha256=sha)
    evidence_topic = str(Topic(DISTRICT, BOX, Kind.EVIDENCE, "chain-1-hotspot"))
    publish([(evidence_topic, JPEG), first, box.detection(), box.seal()])
    [lead] = wait(lambda: [lead for lead in leads(cli, influx_flags, influx_db_name) if lead.get("evidence") == sha])
    show = ["leads", "show", lead["lead_id"], *influx_flags(influx_db_name),
            "--evidence-dir", str(tmp_path / "evidence")]
    shown = json.loads(cli(*show, "--json").stdout)
    assert shown["lead"]["evidence_verified"] == "verified"
    assert "evidence: verified" in cli(*show).stdout

    altered = JPEG.replace(b"took", b"fake")
    publish([(evidence_topic, altered)], client_id="harness-not-the-box")
    wait(lambda: json.loads(cli(*show, "--json").stdout)["lead"].get("evidence_altered") == "chain-1-hotspot")
    assert "WARNING: a picture for detection chain-1-hotspot did not match" in cli(*show).stdout
    assert any("but the detection names" in r for r in rejected_reasons(influx))

    # The stored picture changed on disk after the fact: leads show re-hashes it.
    Path(shown["lead"]["evidence_path"]).write_bytes(altered)
    assert json.loads(cli(*show, "--json").stdout)["lead"]["evidence_verified"] == "altered"
    assert "evidence: ALTERED" in cli(*show).stdout


def test_without_require_verified_old_firmware_is_stored_marked_unverified(gateway_process, publish, cli, influx,
                                                                           influx_flags, influx_db_name, tmp_path, wait):
    (tmp_path / "keys").mkdir()
    gateway_process(verify_table(tmp_path / "keys", require=False))
    publish([(DETECTION, detection(1)), (DETECTION, detection(2))])   # no prev: firmware without a key
    [lead] = wait(lambda: leads(cli, influx_flags, influx_db_name))
    assert lead["verify"] == "unverified" and lead["unverified"] == 2
    rows = influx.query_all("SELECT * FROM detection")
    assert sorted(row["verify"] for row in rows) == ["unverified", "unverified"]
    assert not rejected_reasons(influx)
    text = cli("leads", "show", lead["lead_id"], *influx_flags(influx_db_name)).stdout
    assert "detections: UNVERIFIED (2 of 2" in text
    boxes = json.loads(cli("boxes", "--json", *influx_flags(influx_db_name)).stdout)
    assert [(b["chain"], b["unverified"]) for b in boxes if b["box"] == BOX] == [("unsigned", 2)]


def test_a_box_outbox_with_its_key_is_verified_and_its_lead_opens_promptly(gateway_process, mosquitto, influx,
                                                                         tmp_path, wait):
    from edge.outbox import Outbox

    box = SigningBox(tmp_path / "keys")
    gateway_process(verify_table(tmp_path / "keys", require=True))
    login = mosquitto.account(BOX, "box", district=DISTRICT)
    outbox = Outbox(tmp_path / "spool.db", login.url, DISTRICT, BOX, credentials=login.credentials(), signer=box.signer)
    outbox.start()
    try:
        assert outbox.link.wait_connected(10)
        started = time.monotonic()
        for _ in range(2):
            outbox.put(Topic(DISTRICT, BOX, Kind.DETECTION), detection)
        [lead] = wait(lambda: influx.query("SELECT * FROM lead"), 10, 0.05)
        elapsed = time.monotonic() - started
    finally:
        outbox.close(drain_timeout_s=5)
    assert lead["verify"] == "verified" and lead["unverified"] == 0
    assert elapsed < 3.0   # sealed within 0.2 s; the rest is the gateway's batching and InfluxDB
    assert sorted(row["verify"] for row in influx.query_all("SELECT * FROM detection")) == ["verified", "verified"]
