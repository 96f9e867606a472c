"""The desk's pages over the in-memory store: logins, CSRF, roles, every refused change changing nothing.

The browser itself is exercised in test_web_browser.py; here the HTTP answers are checked directly.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import time

import pytest
from starlette.testclient import TestClient

from contract import Detection, Kind, Topic
from gateway.desk import casework
from gateway.ingest.batches import Ingest
from gateway.store.memory import MemoryStore
from gateway.transport.incoming import Incoming
from gateway.web.site import create_app

from .conftest import ROOT, gateway_config
from .desk_fixtures import PASSWORD, add_users, png

NOW = int(time.time() * 1000)
JPEG = (b"\xff\xd8\xff\xc0\x00\x11\x08\x01\xe0\x02\x80\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01" + b"\x00" * 64
        + b"\xff\xd9")
BASE = dict(box="box-1", district="old-town", camera="north", category="street_vending", label="person",
            score=0.7, bbox=(0.1, 0.5, 0.2, 0.7), zone="plaza", track=4, dwell_s=60.0, lat=48.2085,
            lon=16.3731, model="nanodet-g-416", config="abcdef12")


def detection(name: str, ts: int, **changes) -> Incoming:
    det = Detection(**{**BASE, "id": name, "seq": int(ts / 1000) % 100000, "ts": ts, **changes})
    return Incoming(str(Topic(det.district, det.box, Kind.DETECTION)), det.encode(), 0, 1, time.time())


class Desk:
    def __init__(self, tmp_path, **desk) -> None:
        self.store = MemoryStore()
        self.config = gateway_config("http://127.0.0.1:9", "unused", tmp_path / "evidence", status_refresh_s=0,
                                     desk={"accounts": str(tmp_path / "desk.sqlite3"), **desk})
        self.accounts = add_users(tmp_path / "desk.sqlite3")
        self.ingest = Ingest(self.config, self.store)
        self.ingest.restore()
        self.app = create_app(self.config, self.store, self.accounts)

    def lead(self, name: str = "a", district: str = "old-town", minutes_ago: float = 5, lat: float = 48.2085) -> str:
        """A lead of two detections (named NAME1, NAME2) from a box of its own at ``lat``."""
        sha = hashlib.sha256(JPEG).hexdigest()
        ts = NOW - int(minutes_ago * 60_000)
        place = dict(district=district, box=f"box-{name}", lat=lat)
        picture = Incoming(str(Topic(district, f"box-{name}", Kind.EVIDENCE, f"{name}1")), JPEG, 0, 1, time.time())
        points = self.ingest.handle([detection(f"{name}1", ts, evidence_sha256=sha, score=0.9, **place),
                                     picture, detection(f"{name}2", ts + 1000, **place)])
        self.store.write(points)
        [lead] = [p for p in points if p.measurement == "lead"]
        return lead.tags["lead_id"]

    def client(self, name: str | None = None) -> TestClient:
        client = TestClient(self.app, base_url="http://127.0.0.1", follow_redirects=False)
        if name:
            answer = login(client, name, PASSWORD)
            assert answer.status_code == 303, answer.text
        return client


def login(client: TestClient, name: str, password: str, **extra):
    """Log in as the form does: its token and cookie first."""
    token = re.search(r'name="login_token" value="([^"]+)"', client.get("/login").text).group(1)
    return client.post("/login", data={"name": name, "password": password, "login_token": token, **extra})


def csrf(client: TestClient, path: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get(path).text).group(1)


def unchanged(desk: Desk, lead_id: str, status: str) -> bool:
    return desk.store.lead(lead_id)["status"] == status and desk.store.lead_events(lead_id) == []


@pytest.fixture
def desk(tmp_path) -> Desk:
    return Desk(tmp_path)


def test_pages_need_a_login_and_a_wrong_password_is_refused(desk):
    client = desk.client()
    answer = client.get("/?status=all")
    assert answer.status_code == 303 and answer.headers["location"] == "/login?next=/%3Fstatus%3Dall"
    wrong = login(client, "dana", "not it", next="/")
    assert wrong.status_code == 401 and "wrong user name or password" in wrong.text
    nobody = login(client, "nobody", PASSWORD)
    assert nobody.status_code == 401 and "wrong user name or password" in nobody.text
    forged = client.post("/login", data={"name": "dana", "password": PASSWORD, "login_token": "forged"})
    assert forged.status_code == 403 and "did not come from the desk (CSRF)" in forged.text
    assert client.get("/queue/rows").status_code == 401
    assert "desk_session" not in client.cookies


def test_five_failures_lock_the_account_for_that_address_even_with_the_right_password(desk):
    client = desk.client()
    for _ in range(5):
        assert login(client, "sam", "guess").status_code == 401
    locked = login(client, "sam", PASSWORD)
    assert locked.status_code == 401 and "too many failed logins for sam" in locked.text
    assert desk.client("dana").get("/").status_code == 200   # other accounts are not locked


def test_a_session_ends_after_the_idle_time_and_at_logout(tmp_path):
    now = [1000.0]
    desk = Desk(tmp_path)
    desk.accounts.clock = lambda: now[0]
    client = desk.client("dana")
    assert client.get("/").status_code == 200
    now[0] += 8 * 3600 + 1
    assert client.get("/").status_code == 303
    client = desk.client("dana")
    token = csrf(client, "/")
    assert client.post("/logout", data={"csrf": token}).status_code == 303
    assert client.get("/").status_code == 303


def test_the_queue_shows_the_users_leads_and_a_lead_its_evidence_ledger_and_map(desk):
    old_town = desk.lead("a")
    harbour = desk.lead("h", district="harbour", lat=48.3)
    page = desk.client("dana").get("/").text
    assert old_town in page and harbour in page and "Server-Timing" not in page
    officer = desk.client("olga")
    assert old_town in officer.get("/").text and harbour not in officer.get("/").text
    assert harbour not in officer.get("/?team=harbour-street-team").text
    lead_page = desk.client("dana").get(f"/leads/{old_town}")
    sha = hashlib.sha256(JPEG).hexdigest()
    assert lead_page.status_code == 200 and f'src="/evidence/{sha}"' in lead_page.text
    assert 'id="crop"' in lead_page.text and 'viewBox="64.0 240.0 64.0 96.0"' in lead_page.text
    assert "a1" in lead_page.text and "same_zone" in lead_page.text and '<svg id="map"' in lead_page.text
    assert desk.client("dana").get(f"/evidence/{sha}").content == JPEG
    assert lead_page.headers["server-timing"].startswith("app;dur=")


def test_the_whole_lifecycle_through_the_pages_records_each_user(desk):
    lead_id = desk.lead()
    dana, olga, sam = desk.client("dana"), desk.client("olga"), desk.client("sam")
    path = f"/leads/{lead_id}"
    answer = dana.post(f"{path}/dispatch", data={"csrf": csrf(dana, path), "team": "old-town-street-team",
                                                 "officer": "olga"})
    assert answer.status_code == 303 and answer.headers["location"] == f"{path}?done=dispatched"
    olga.post(f"{path}/on_scene", data={"csrf": csrf(olga, path)})
    answer = olga.post(f"{path}/resolve", data={"csrf": csrf(olga, path), "note": "stall gone"},
                       files={"photo": ("site.png", png(), "image/png")})
    assert answer.status_code == 303, answer.text
    assert sam.post(f"{path}/close", data={"csrf": csrf(sam, path), "outcome": "confirmed"}).status_code == 303
    history = olga.get(f"{path}/part/history").text
    assert history.index("dispatched") < history.index("on_scene") and "<td class=\"by\">olga</td>" in history
    assert "<td>on_scene</td>" in olga.get(f"{path}/part/clocks").text
    assert desk.client("hugo").get(f"{path}/part/history").status_code == 403
    events = [(e["event"], e["by"]) for e in sorted(desk.store.lead_events(lead_id), key=lambda e: e["time"])]
    assert events == [("dispatched", "dana"), ("on_scene", "olga"), ("resolved", "olga"), ("closed", "sam")]
    lead = desk.store.lead(lead_id)
    assert lead["status"] == "closed" and lead["outcome"] == "confirmed"
    assert lead["site_photo"] == hashlib.sha256(png()).hexdigest()
    assert sam.get(f"/photos/{lead['site_photo']}").content == png()
    kept = desk.config.evidence_dir / "site" / lead["site_photo"][:2] / f"{lead['site_photo']}.png"
    assert kept.stat().st_mode & 0o777 == 0o600 and desk.config.desk.accounts.stat().st_mode & 0o777 == 0o600
    report = sam.get("/reports?by=district")
    assert re.search(r'data-group="old-town">.*?class="num opened">1<.*?class="num confirmed">1<', report.text, re.S)
    csv = sam.get("/reports?by=team&format=csv")
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[1].startswith("old-town-street-team,1,1,1,1,1,0,0,1.0,")


@pytest.mark.parametrize(("who", "action", "data", "status", "message"), [
    ("olga", "dispatch", {}, 403, "olga (officer) may not dispatch a lead"),
    ("hugo", "on_scene", {}, 403, "belongs to team old-town-street-team; hugo works for team harbour-street-team"),
    ("sam", "on_scene", {}, 409, "only a dispatched lead can be marked on scene"),
    ("sam", "close", {"outcome": "confirmed"}, 409, "only a resolved lead can be closed as confirmed"),
    ("sam", "close", {"outcome": "fixed"}, 400, "outcome must be one of confirmed, rejected, duplicate"),
    ("otto", "close", {"outcome": "rejected"}, 403, "otto (operator) may not close a lead as rejected"),
    ("dana", "split", {"detection": "zz"}, 400, "detection &#39;zz&#39; is not in lead"),
    ("dana", "merge", {"into": "L00000000000"}, 404, "no lead L00000000000"),
])
def test_a_refused_change_says_why_and_changes_nothing(desk, who, action, data, status, message):
    lead_id = desk.lead()
    client = desk.client(who)
    token = csrf(client, "/")
    answer = client.post(f"/leads/{lead_id}/{action}", data={"csrf": token, **data})
    assert answer.status_code == status and message in answer.text, answer.text[-2000:]
    assert unchanged(desk, lead_id, "open")


def test_missing_or_wrong_csrf_unknown_leads_and_bad_photos_are_refused(desk):
    lead_id = desk.lead()
    dana = desk.client("dana")
    for data in ({}, {"csrf": "forged"}):
        answer = dana.post(f"/leads/{lead_id}/dispatch", data=data)
        assert answer.status_code == 403 and "security token (CSRF)" in answer.text
    assert unchanged(desk, lead_id, "open")
    assert dana.get("/leads/L00000000000").status_code == 404
    assert "no lead" in dana.get("/leads/nonsense").text
    token = csrf(dana, "/")
    assert dana.post("/leads/L00000000000/dispatch", data={"csrf": token}).status_code == 404

    casework.dispatch(desk.store, lead_id, casework.Actor("dana", "dispatcher"), NOW, officer="olga")
    casework.on_scene(desk.store, lead_id, casework.Actor("olga", "officer", "old-town-street-team"), NOW)
    events = len(desk.store.lead_events(lead_id))
    olga = desk.client("olga")
    token = csrf(olga, f"/leads/{lead_id}")
    for photo, status, message in (
            (b"%PDF-1.7 not a picture", 400, "must be a JPEG or PNG"),
            (b"", 400, "resolving needs a site photo"),
            (png() + b"\0" * (10 * 1024 * 1024), 413, "larger than 10 MiB"),
            (png() + b"\0" * (11 * 1024 * 1024), 413, "larger than 10 MiB")):
        files = {"photo": ("site.jpg", photo, "image/jpeg")} if photo else None
        answer = olga.post(f"/leads/{lead_id}/resolve", data={"csrf": token}, files=files)
        assert answer.status_code == status and message in answer.text, answer.text[-500:]
    assert desk.store.lead(lead_id)["status"] == "on_scene" and len(desk.store.lead_events(lead_id)) == events
    assert not (desk.config.evidence_dir / "site").exists()


def test_merge_and_split_from_the_page(desk):
    first = desk.lead("a")
    second = desk.lead("b", minutes_ago=3, lat=48.209)   # 55 m away: two leads of one incident
    dana = desk.client("dana")
    answer = dana.post(f"/leads/{second}/merge", data={"csrf": csrf(dana, "/"), "into": first})
    assert answer.status_code == 303 and answer.headers["location"] == f"/leads/{first}?done=merged"
    merged = desk.store.lead(second)
    assert merged["status"] == "closed" and merged["outcome"] == "duplicate" and merged["merged_into"] == first
    page = dana.get(f"/leads/{first}").text
    assert all(name in page for name in ("a1", "a2", "b1", "b2")) and "merged" in page
    answer = dana.post(f"/leads/{first}/split", data={"csrf": csrf(dana, "/"), "detection": "b2"})
    assert answer.status_code == 303
    [new] = [row for row in desk.store.leads() if row.get("split_from") == first]
    assert [row["detection_id"] for row in desk.store.ledger(new["lead_id"])] == ["b2"]
    assert "b2" not in [row["detection_id"] for row in casework.members(desk.store,
                                                                          casework.read_lead(desk.store, first))]


def test_users_are_added_from_the_command_line_with_the_password_from_stdin_or_a_file(tmp_path, cli):
    config = tmp_path / "gateway.toml"
    config.write_text(f'[desk]\naccounts = "{tmp_path / "desk.sqlite3"}"\n')
    added = subprocess.run([sys.executable, "-m", "gateway.cli", "users", "add", "dana", "--role", "dispatcher",
                            "--config", str(config)], input=PASSWORD + "\n", capture_output=True, text=True,
                           cwd=ROOT, timeout=60)
    assert added.returncode == 0 and "user dana added (dispatcher)" in added.stdout
    secret = tmp_path / "olga.pw"
    secret.write_text(PASSWORD + "\n")
    by_file = cli("users", "add", "olga", "--role", "officer", "--team", "t1", "--password-file", str(secret),
                  "--config", str(config))
    assert by_file.returncode == 0, by_file.stderr
    secret.write_text("short\n")
    for args, message in ((["eve", "--role", "officer", "--team", "t1"], "at least 10 characters"),
                          (["otto", "--role", "operator"], "at least 10 characters"),
                          (["olga", "--role", "officer", "--team", "t1"], None),
                          (["hugo", "--role", "officer"], "an officer needs a team")):
        if message is None:
            secret.write_text(PASSWORD + "\n")
            message = "user olga exists already"
        refused = cli("users", "add", *args, "--password-file", str(secret), "--config", str(config))
        assert refused.returncode == 1 and message in refused.stderr, refused.stderr
    listed = cli("users", "list", "--config", str(config))
    assert listed.stdout.split() == ["dana", "dispatcher", "-", "olga", "officer", "t1"]
    assert PASSWORD not in (tmp_path / "desk.sqlite3").read_bytes().decode("latin-1")
