"""Case staff through the CLI: show, claim (= dispatch to oneself), on scene, resolve with a photo, close; a running
gateway stops feeding a resolved lead."""

import hashlib
import json
import time

import pytest

from contract import Detection, Kind, Topic

pytestmark = pytest.mark.integration

NOW = int(time.time() * 1000)
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4
BASE = dict(box="box-1", district="old-town", camera="north", category="street_vending", label="person",
            score=0.7, bbox=(0.1, 0.5, 0.2, 0.7), zone="plaza", track=4, dwell_s=60.0, lat=48.2085,
            lon=16.3731, model="nanodet-g-416", config="abcdef12")


def detection(n: int, **changes) -> tuple[str, bytes]:
    det = Detection(**{**BASE, "id": f"cw-{n}", "seq": n, "ts": NOW - 300_000 + n * 10_000, **changes})
    return str(Topic("old-town", "box-1", Kind.DETECTION)), det.encode()


def test_claim_close_and_a_new_lead_after_the_close(gateway_process, publish, influx, wait, cli, influx_flags,
                                                    influx_db_name, tmp_path):
    gateway_process()
    db = influx_flags(influx_db_name)
    sha = hashlib.sha256(JPEG).hexdigest()
    publish([detection(1, evidence_sha256=sha, score=0.9), (str(Topic("old-town", "box-1", Kind.EVIDENCE, "cw-1")),
                                                             JPEG), detection(2)])
    [lead] = wait(lambda: [row for row in influx.query('SELECT * FROM "lead" GROUP BY *') if row.get("evidence")])
    lead_id = lead["lead_id"]
    assert lead["team"] == "old-town-street-team" and lead["route"] == "district:old-town"

    shown = cli("leads", "show", lead_id, *db, "--evidence-dir", str(tmp_path / "evidence"))
    assert shown.returncode == 0, shown.stderr
    assert f"lead {lead_id}  open  street_vending" in shown.stdout
    assert f"{sha}.jpg (present)" in shown.stdout and "opened" in shown.stdout and "same_zone" in shown.stdout

    claimed = cli("leads", "claim", lead_id, "--by", "alice", *db)
    assert claimed.returncode == 0 and "dispatched to alice (team old-town-street-team)" in claimed.stdout
    again = cli("leads", "claim", lead_id, "--by", "bob", *db)
    assert again.returncode == 1 and "is dispatched to alice" in again.stderr
    early = cli("leads", "close", lead_id, "--outcome", "confirmed", *db)
    assert early.returncode == 1 and "only a resolved lead can be closed as confirmed" in early.stderr
    scene = cli("leads", "on-scene", lead_id, *db)
    assert scene.returncode == 0 and "on scene: alice" in scene.stdout
    not_a_photo = tmp_path / "notes.txt"
    not_a_photo.write_text("not a picture")
    refused = cli("leads", "resolve", lead_id, "--photo", str(not_a_photo), *db)
    assert refused.returncode == 1 and "must be a JPEG or PNG" in refused.stderr
    photo = tmp_path / "site.jpg"
    photo.write_bytes(JPEG + b"\xff\xd9")
    resolved = cli("leads", "resolve", lead_id, "--photo", str(photo), "--evidence-dir", str(tmp_path / "evidence"),
                   *db)
    assert resolved.returncode == 0 and "resolved by alice" in resolved.stdout, resolved.stderr
    photo_sha = hashlib.sha256(photo.read_bytes()).hexdigest()
    assert (tmp_path / "evidence" / "site" / photo_sha[:2] / f"{photo_sha}.jpg").read_bytes() == photo.read_bytes()
    closed = cli("leads", "close", lead_id, "--outcome", "confirmed", "--note", "vendor moved on", "--by", "carol",
                 *db)
    assert closed.returncode == 0 and "closed (confirmed) by carol" in closed.stdout
    twice = cli("leads", "close", lead_id, "--outcome", "rejected", *db)
    assert twice.returncode == 1 and "already closed (outcome confirmed)" in twice.stderr
    unknown = cli("leads", "claim", "L00000000000", "--by", "alice", *db)
    assert unknown.returncode == 1 and "no lead L00000000000" in unknown.stderr
    malformed = cli("leads", "show", "x'; DROP", *db)
    assert malformed.returncode == 1 and "no lead" in malformed.stderr

    history = json.loads(cli("leads", "show", lead_id, *db, "--json").stdout)
    assert history["lead"]["status"] == "closed" and history["lead"]["note"] == "vendor moved on"
    assert history["lead"]["site_photo"] == photo_sha and history["lead"]["claimed_by"] == "alice"
    assert [(e["event"], e["from_status"], e["to_status"], e["by"]) for e in history["events"]] == [
        ("dispatched", "open", "dispatched", "alice"), ("on_scene", "dispatched", "on_scene", "alice"),
        ("resolved", "on_scene", "resolved", "alice"), ("closed", "resolved", "closed", "carol")]
    assert [e["rule"] for e in history["ledger"]] == ["opened", "same_zone"]

    # Same place, minutes later: the closed lead takes nothing, a new one opens.
    publish([detection(3), detection(4)])
    leads = wait(lambda: (rows := influx.query('SELECT * FROM "lead" GROUP BY *')) and len(rows) == 2 and rows)
    by_id = {row["lead_id"]: row for row in leads}
    assert by_id[lead_id]["status"] == "closed" and by_id[lead_id]["detections"] == 2
    [new] = [row for row in leads if row["lead_id"] != lead_id]
    assert new["status"] == "open" and new["detections"] == 2
    listed = json.loads(cli("leads", "list", "--status", "open", *db, "--json").stdout)
    assert [row["lead_id"] for row in listed] == [new["lead_id"]]
