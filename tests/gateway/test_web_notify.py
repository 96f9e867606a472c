"""The desk's clock: escalation, one notification per transition, signed, retried until the receiver takes it."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from gateway.desk import casework
from gateway.store.lineprotocol import Point
from gateway.store.memory import MemoryStore
from gateway.store.schema import ms_to_ns
from gateway.web.accounts import Accounts
from gateway.web.notify import DeskClock, SecretMissing

from .conftest import HookReceiver, gateway_config

SECRET = "a shared secret"


@pytest.fixture
def receiver():
    flaky = HookReceiver(failures=2)
    yield flaky
    flaky.close()


def make_clock(tmp_path, receiver, monkeypatch, now: list[int]) -> tuple[DeskClock, MemoryStore]:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    config = gateway_config("http://127.0.0.1:9", "unused", tmp_path / "evidence", desk={
        "accounts": str(tmp_path / "desk.sqlite3"),
        "webhooks": [{"url": receiver.url, "secret_env": "HOOK_SECRET", "retry_initial_s": 0, "max_attempts": 5}]})
    store = MemoryStore()
    return DeskClock(config, store, Accounts(config.desk.accounts), now_ms=lambda: now[0]), store


def test_an_overdue_clock_escalates_once_and_is_sent_signed_after_retries(tmp_path, receiver, monkeypatch):
    now = [1_800_000_000_000]
    clock, store = make_clock(tmp_path, receiver, monkeypatch, now)
    tags = {"lead_id": "L0123456789a", "category": "street_vending", "district": "old-town", "zone": "plaza"}
    store.write([Point("lead", tags, {"status": "open", "opened_at": now[0] + 1000, "first_seen": now[0],
                                      "team": "t1"}, ms_to_ns(now[0]))])
    now[0] += 16 * 60_000   # the 15 min dispatch clock ran over
    for _ in range(2):
        clock.check()
    [event] = store.lead_events("L0123456789a")
    assert (event["event"], event["by"], event["clock"]) == ("overdue", "sla-clock", "dispatch")
    assert store.lead("L0123456789a")["overdue"] == "dispatch"
    casework.dispatch(store, "L0123456789a", casework.Actor("dana", "dispatcher"), now[0])
    clock.check()
    for _ in range(5):
        clock.deliver()
    assert [(key.split(":")[1], event, state) for key, event, state, _ in clock.notices()] == [
        ("opened", "opened", "sent"), ("overdue", "overdue", "sent"), ("dispatched", "dispatched", "sent")]
    assert [status for status, _, _ in receiver.received] == [503, 503, 204, 204, 204]
    for status, headers, body in receiver.received:
        signed = headers["X-Streetwatch-Timestamp"].encode() + b"." + body
        assert headers["X-Streetwatch-Signature"] == "sha256=" + hmac.new(SECRET.encode(), signed,
                                                                          hashlib.sha256).hexdigest()
    sent = receiver.events()
    by_event = {m["event"]: m for m in sent}
    assert sorted(by_event) == ["dispatched", "opened", "overdue"] and len(sent) == 3
    assert by_event["overdue"]["clock"] == "dispatch" and by_event["dispatched"]["by"] == "dana"
    assert by_event["dispatched"]["team"] == "t1" and by_event["opened"]["lead"]["status"] == "open"


def test_the_desk_does_not_start_without_its_webhook_secret(tmp_path, receiver, monkeypatch):
    monkeypatch.delenv("HOOK_SECRET", raising=False)
    config = gateway_config("http://127.0.0.1:9", "unused", tmp_path / "evidence", desk={
        "accounts": str(tmp_path / "desk.sqlite3"), "webhooks": [{"url": receiver.url, "secret_env": "HOOK_SECRET"}]})
    with pytest.raises(SecretMissing, match="HOOK_SECRET is not set"):
        DeskClock(config, MemoryStore(), Accounts(config.desk.accounts))
