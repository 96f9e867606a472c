"""The desk in a real browser: Debian's headless Chromium, driven by Selenium through chromium-driver.

Real parts throughout: Mosquitto, InfluxDB, `gateway run`, `gateway web` (with its clock and webhooks) and, for
the lead, a real box (`edge run`) playing the demo clip. Nothing is mocked; the webhook receiver is a small
HTTP server on loopback.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from contract import Detection, Kind, Topic

from .conftest import ROOT, HookReceiver, stop_process, wait_for
from .desk_fixtures import PASSWORD, USERS, png

pytestmark = pytest.mark.integration

SECRET = "test-hook-secret-0123456789"
DEMO_BOX = ROOT / "firmware_configs" / "demo-campus.toml"
CAMPUS_USERS = {**USERS, "olga": ("officer", "campus-street-team"), "hugo": ("officer", "harbour-street-team"),
                "mallory": ("dispatcher", None)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DeskProcess:
    """`gateway web` as a child process, its users added through `gateway users add`."""

    def __init__(self, workdir: Path, influx_table: str, db: str, hook_url: str, extra: str = "") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = workdir / "desk.toml"
        self.config.write_text(f"""
evidence_dir = "{workdir / 'evidence'}"
[influx]
{influx_table}db = "{db}"
[[districts]]
name = "campus"
polygon = [[51.2420, -0.5915], [51.2440, -0.5915], [51.2440, -0.5870], [51.2420, -0.5870]]
[desk]
accounts = "{workdir / 'desk.sqlite3'}"
listen = "127.0.0.1:{self.port}"
refresh_s = 1
clock_every_s = 1
[[desk.boxes]]
name = "campus-01"
lat = 51.2428
lon = -0.5899
[desk.sla.categories.illegal_dumping]
dispatch_min = 0.02
[[desk.webhooks]]
url = "{hook_url}"
secret_env = "DESK_HOOK_SECRET"
retry_initial_s = 0.2
{extra}
""")
        self.log_path = workdir / "desk.log"
        self.process: subprocess.Popen | None = None

    def add_users(self, users: dict) -> None:
        for name, (role, team) in users.items():
            args = [sys.executable, "-m", "gateway.cli", "users", "add", name, "--role", role, "--config",
                    str(self.config), *(["--team", team] if team else [])]
            done = subprocess.run(args, input=PASSWORD + "\n", capture_output=True, text=True, cwd=ROOT, timeout=60)
            assert done.returncode == 0, done.stderr

    def start(self) -> "DeskProcess":
        log = self.log_path.open("a")
        self.process = subprocess.Popen([sys.executable, "-m", "gateway.cli", "web", "--config", str(self.config)],
                                        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                        env={**os.environ, "DESK_HOOK_SECRET": SECRET})
        log.close()

        def up() -> bool:
            assert self.process.poll() is None, self.log_path.read_text()
            try:
                return httpx.get(f"{self.url}/login", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 30, 0.2)
        return self

    def stop(self) -> None:
        stop_process(self.process)


class Browser:
    def __init__(self, base: str) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
        assert chromium and driver, "Debian's chromium and chromium-driver are needed (scripts/setup.sh installs them)"
        options = webdriver.ChromeOptions()
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                         "--window-size=1280,900", "--lang=en-GB"):
            options.add_argument(argument)
        options.binary_location = chromium
        self.base = base
        self.driver = webdriver.Chrome(options=options, service=Service(driver))

    def go(self, path: str) -> None:
        self.driver.get(self.base + path)

    def find(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        found = self.all(css)
        return found[0].text if found else ""

    def login(self, name: str, password: str = PASSWORD) -> None:
        from selenium.common.exceptions import WebDriverException

        self.driver.delete_all_cookies()
        for attempt in range(3):
            self.go("/login")
            wait_for(lambda: self.driver.execute_script("return document.readyState") == "complete", 10, 0.05)
            try:
                self.find("#name").send_keys(name)
                self.find("#password").send_keys(password)
                self.submit("#login")
                return
            except WebDriverException:   # the page was still being replaced; fill the new one
                if attempt == 2:
                    raise

    def submit(self, button: str) -> None:
        """Click and wait until the next page has loaded."""
        self.navigating(lambda: self.find(button).click())

    def navigating(self, action) -> None:
        """Do ``action`` and wait until it has loaded another page (the old page's root is gone)."""
        from selenium.common.exceptions import WebDriverException

        page = self.find("html")
        for attempt in range(3):
            try:
                action()
                break
            except WebDriverException:   # the element was being replaced under the driver: find it again
                if attempt == 2:
                    raise
                time.sleep(0.2)

        def gone() -> bool:
            try:
                page.is_enabled()
            except WebDriverException:   # stale, or chromedriver's "does not belong to the document"
                return True
            return False

        wait_for(gone, 15, 0.05)
        wait_for(lambda: self.driver.execute_script("return document.readyState") == "complete", 10, 0.05)

    def picture_shown(self, css: str) -> bool:
        return bool(self.driver.execute_script(
            "const i = document.querySelector(arguments[0]); return i && i.complete && i.naturalWidth > 0", css))

    def quit(self) -> None:
        self.driver.quit()


@pytest.fixture
def hooks() -> Iterator[HookReceiver]:
    receiver = HookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def desk(influxdb, influx_db_name, tmp_path, hooks) -> Iterator[DeskProcess]:
    process = DeskProcess(tmp_path, influxdb.influx_table(), influx_db_name, hooks.url)
    process.add_users(CAMPUS_USERS)
    yield process.start()
    process.stop()


@pytest.fixture
def browser(desk) -> Iterator[Browser]:
    opened = Browser(desk.url)
    yield opened
    opened.quit()


def influx_rows(influx, statement: str) -> list[dict]:
    return influx.query(statement)


def verify(headers: dict, body: bytes) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), headers["X-Streetwatch-Timestamp"].encode() + b"." + body,
                                    hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["X-Streetwatch-Signature"])


def test_a_box_replay_lead_dispatched_attended_resolved_and_closed_in_the_browser(
        gateway_process, mosquitto, influx, desk, browser, hooks, tmp_path):
    gateway_process("status_refresh_s = 0.2\n")
    box_mqtt = tmp_path / "campus-01.mqtt.toml"     # the demo box's login, as provisioning writes it
    box_mqtt.write_text("[mqtt]\n" + mosquitto.login("campus-01", "box", district="campus").toml(mosquitto.url))
    box = subprocess.run([sys.executable, "-m", "edge.cli", "run", "--config", str(DEMO_BOX), "--mqtt", mosquitto.url,
                          "--mqtt-config", str(box_mqtt),
                          "--spool", str(tmp_path / "spool.db"), "--fast"], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert box.returncode == 0, box.stderr[-2000:]
    leads = wait_for(lambda: (rows := influx.query('SELECT * FROM "lead"')) and len(rows) >= 2 and rows, 60)
    [vending] = [row["lead_id"] for row in leads if row["category"] == "street_vending"]
    [dumping] = [row["lead_id"] for row in leads if row["category"] == "illegal_dumping"]

    # A wrong password, then a dispatcher sees the lead with its evidence and dispatches it.
    browser.login("dana", "not the password")
    assert "wrong user name or password" in browser.text("#error")
    browser.login("dana")
    wait_for(lambda: browser.all(f'tr[data-lead="{vending}"]'), 10)
    browser.submit(f'tr[data-lead="{vending}"] a')
    assert browser.text("#lead-id") == vending and browser.text("#status") == "open"
    wait_for(lambda: browser.picture_shown("#evidence"), 10)
    assert browser.all("#crop image") and browser.all("#map circle.lead") and browser.all("#map rect.box")
    assert len(browser.all("#ledger tr[data-detection]")) >= 2
    browser.find("#dispatch-officer").send_keys("olga")
    browser.submit("#dispatch")
    assert browser.text("#status") == "dispatched" and browser.text("#officer") == "olga"

    # A missing CSRF token changes nothing.
    browser.driver.execute_script("document.querySelectorAll('input[name=csrf]').forEach(e => e.remove())")
    browser.submit("#dispatch")
    assert "security token (CSRF)" in browser.text("#error")

    # The officer goes on scene, is refused a non-image and an oversized upload, and resolves with a photo.
    browser.login("olga")
    browser.go(f"/leads/{vending}")
    browser.submit("#on-scene")
    assert browser.text("#status") == "on_scene"
    not_a_picture = tmp_path / "report.pdf"
    not_a_picture.write_bytes(b"%PDF-1.7\n" + b"x" * 2000)
    too_large = tmp_path / "huge.png"
    too_large.write_bytes(png() + b"\0" * (10 * 1024 * 1024 + 1))
    for path, message in ((not_a_picture, "must be a JPEG or PNG"), (too_large, "larger than 10 MiB")):
        browser.find("#photo").send_keys(str(path))
        browser.submit("#resolve")
        assert message in browser.text("#error") and browser.text("#status") == "on_scene"
    photo = tmp_path / "site.png"
    photo.write_bytes(png(320, 240, (90, 160, 60)))
    browser.find("#photo").send_keys(str(photo))
    browser.find("#resolve-note").send_keys("vendor moved on")
    browser.submit("#resolve")
    assert browser.text("#status") == "resolved"
    wait_for(lambda: browser.picture_shown("#site-photo"), 10)

    # An officer of another team may not touch it; an unknown lead is said to be unknown.
    browser.login("hugo")
    browser.go(f"/leads/{vending}")
    assert "belongs to team campus-street-team" in browser.text("#error")
    browser.go("/leads/L00000000000")
    assert "no lead L00000000000" in browser.text("#error")

    # The supervisor verifies and closes it as confirmed; a transition the status forbids is refused.
    browser.login("sam")
    browser.go(f"/leads/{dumping}")
    browser.navigating(lambda: browser.driver.execute_script(
        "const f = document.createElement('form'); f.method = 'post'; f.action = location.pathname + '/resolve';"
        "f.innerHTML = '<input name=csrf value=' + document.querySelector('input[name=csrf]').value + '>';"
        "document.body.append(f); f.submit();"))
    assert "only a lead on scene can be resolved" in browser.text("#error")
    browser.go(f"/leads/{vending}")
    browser.submit("#close")
    assert browser.text("#status") == "closed" and browser.text("#outcome") == "confirmed"

    # InfluxDB holds each step with the user's name.
    [lead] = influx.query(f"SELECT * FROM \"lead\" WHERE \"lead_id\" = '{vending}'")
    assert (lead["status"], lead["outcome"], lead["claimed_by"], lead["team"]) == (
        "closed", "confirmed", "olga", "campus-street-team")
    assert lead["site_photo"] == hashlib.sha256(photo.read_bytes()).hexdigest() and lead["note"] == "vendor moved on"
    events = influx.query(f"SELECT * FROM \"lead_event\" WHERE \"lead_id\" = '{vending}'")
    assert [(e["event"], e["by"]) for e in events] == [
        ("dispatched", "dana"), ("on_scene", "olga"), ("resolved", "olga"), ("closed", "sam")]
    [stored_photo] = influx.query(f"SELECT * FROM \"site_photo\" WHERE \"lead_id\" = '{vending}'")
    assert stored_photo["sha256"] == lead["site_photo"] and stored_photo["by"] == "olga"

    # The report counts it.
    browser.go("/reports?by=category")
    row = 'tr[data-group="street_vending"]'
    assert (browser.text(f"{row} .opened"), browser.text(f"{row} .resolved"), browser.text(f"{row} .confirmed")) == (
        "1", "1", "1")

    # The dumping lead's dispatch clock is short: it shows overdue and a signed webhook says so.
    browser.go("/?clock=overdue&order=urgent")
    wait_for(lambda: browser.all(f'tr[data-lead="{dumping}"].clock-overdue'), 60, 0.5)
    overdue = wait_for(lambda: [(h, b) for _, h, b in hooks.received if json.loads(b)["event"] == "overdue"], 30)
    headers, body = overdue[0]
    assert verify(headers, body) and json.loads(body)["lead_id"] == dumping and json.loads(body)["clock"] == "dispatch"
    [escalation] = influx.query(f"SELECT * FROM \"lead_event\" WHERE \"lead_id\" = '{dumping}'")
    assert (escalation["event"], escalation["by"], escalation["clock"]) == ("overdue", "sla-clock", "dispatch")
    wait_for(lambda: {"opened", "dispatched", "closed"} <= {e["event"] for e in hooks.events()}, 30)
    assert all(verify(h, b) for _, h, b in hooks.received)
    sent = [(e["event"], e["lead_id"]) for e in hooks.events()]
    assert len(sent) == len(set(sent))   # once per transition

    # Too many failed logins lock that account for this address, the right password included.
    for _ in range(5):
        browser.login("mallory", "guess")
    browser.login("mallory")
    assert "too many failed logins for mallory" in browser.text("#error")
    browser.driver.save_screenshot(str(tmp_path / "last.png"))


NOW = int(time.time() * 1000)
PLACE = dict(box="box-1", district="old-town", camera="north", category="street_vending", label="person",
             score=0.7, bbox=(0.1, 0.5, 0.2, 0.7), zone="plaza", track=4, dwell_s=60.0, lat=48.2085,
             lon=16.3731, model="nanodet-g-416", config="abcdef12")


def detection(name: str, seq: int, minutes_ago: float, **changes) -> tuple[str, bytes]:
    det = Detection(**{**PLACE, "id": name, "seq": seq, "ts": NOW - int(minutes_ago * 60_000), **changes})
    return str(Topic(det.district, det.box, Kind.DETECTION)), det.encode()


def test_merge_and_split_from_the_page_are_kept_in_influxdb_and_followed_by_the_running_gateway(
        gateway_process, publish, influx, desk, browser):
    gateway_process("status_refresh_s = 0.2\n")
    browser.login("dana")
    queue = browser.find("html")
    assert browser.all("#rows td.empty")
    # Two leads of one incident: the same stall seen by two boxes 50 m apart (beyond the merge radius).
    publish([detection("n1", 1, 10), detection("n2", 2, 9),
             detection("s1", 1, 10, box="box-2", camera="south", zone="corner", lat=48.20895),
             detection("s2", 2, 9, box="box-2", camera="south", zone="corner", lat=48.20895)])
    leads = wait_for(lambda: (rows := influx.query('SELECT * FROM "lead"')) and len(rows) == 2 and rows, 30)
    by_box = {row["boxes"]: row["lead_id"] for row in leads}
    north, south = by_box["box-1"], by_box["box-2"]
    # The open queue shows them without a reload: the same page, its rows fetched again.
    wait_for(lambda: len(browser.all("#rows tr[data-lead]")) == 2, 15)
    assert queue.tag_name == "html"   # not replaced: a reload would have made it stale

    browser.go(f"/leads/{south}")
    browser.find("#merge-into").send_keys(north)
    browser.submit("#merge")
    assert browser.text("#lead-id") == north
    assert {row.get_attribute("data-detection") for row in browser.all("#ledger tr[data-detection]")} == {
        "n1", "n2", "s1", "s2"}
    [merged] = influx.query(f"SELECT * FROM \"lead\" WHERE \"lead_id\" = '{south}'")
    assert (merged["status"], merged["outcome"], merged["merged_into"]) == ("closed", "duplicate", north)
    # The running gateway follows: box-2's next sighting joins the lead it was merged into.
    time.sleep(0.5)
    publish([detection("s3", 3, 8, box="box-2", camera="south", zone="corner", lat=48.20895)])
    [s3] = wait_for(lambda: influx.query('SELECT "lead_id", "n" FROM "detection" WHERE "id" = \'s3\''), 30)
    assert s3["lead_id"] == north and s3["n"] == 5
    [target] = influx.query(f"SELECT * FROM \"lead\" WHERE \"lead_id\" = '{north}'")
    assert target["detections"] == 5

    # One sighting was something else: n2 is split out and becomes a lead of its own.
    browser.go(f"/leads/{north}")
    browser.submit('tr[data-detection="n2"] button.split')
    assert browser.text("#done") == "Done: split."
    [new] = wait_for(lambda: influx.query('SELECT * FROM "lead" WHERE "split_from" = \'' + north + "'"), 10)
    assert new["status"] == "open" and new["detections"] == 1
    assert [r["id"] for r in influx.query(f"SELECT \"id\" FROM \"detection\" WHERE \"lead_id\" = '{new['lead_id']}'")
            ] == ["n2"]
    time.sleep(0.5)
    # The running gateway keeps its groups as the desk left them: the old lead counts one fewer.
    publish([detection("n3", 3, 7)])
    [n3] = wait_for(lambda: influx.query('SELECT "lead_id", "n" FROM "detection" WHERE "id" = \'n3\''), 30)
    assert n3["lead_id"] in (north, new["lead_id"])
    rows = {row["lead_id"]: row for row in influx.query('SELECT * FROM "lead"')}
    assert rows[north]["detections"] + rows[new["lead_id"]]["detections"] == 6
