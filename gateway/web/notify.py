"""The desk's clock: overdue leads escalate and notifications go out, whether or not a page is open.

It runs as a thread of `gateway web` (the process that sends the webhooks)
and, every ``clock_every_s``:

1. reads the leads opened since its last look, and queues their ``opened``
   notification (for leads opened since the desk first ran);
2. when a clock may have run over, reads every active lead: a clock newly
   overdue is written to the lead (``overdue``, the clocks that ran over) with
   a ``lead_event`` ``overdue`` by ``sla-clock``, which puts it on the
   supervisors' overdue view, and is notified. Reading every active lead is
   the clock's costly step (thousands of leads), so it is done only when the
   earliest deadline seen in the last full read has come, when new leads
   opened, and at least every ``FULL_READ_EVERY_S``;
3. queues a notification for each ``dispatched`` and ``closed`` (and
   merge-closed) event;
4. sends what is due (every second), retrying with doubling waits up to
   ``max_attempts``.

The queue is a table of the desk's SQLite file, keyed by transition and
receiver, so each transition is sent once per receiver even across restarts
(a receiver may still see a repeat after a crash mid-send: the delivery key
is the same, so it can drop it).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

from gateway.config import GatewayConfig, WebhookSettings
from gateway.desk import casework
from gateway.desk.sla import Clocks
from gateway.store.base import LeadQuery, LeadStore, StoreError
from gateway.store.schema import LeadEvent, lead_event_point, lead_update_point
from gateway.web.accounts import Accounts
from gateway.web.hooks import DeliveryFailed, WebhookSender

log = logging.getLogger(__name__)

CLOCK_USER = "sla-clock"
EVENT_SLACK_MS = 10 * 60_000
NOTICES = """
CREATE TABLE IF NOT EXISTS notices (key TEXT NOT NULL, hook INTEGER NOT NULL, event TEXT NOT NULL,
    body TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (key, hook));
CREATE TABLE IF NOT EXISTS marks (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
# What the clock reads of each active lead: its clocks, and what a notification tells of it.
CLOCK_FIELDS = ("status", "opened_at", "first_seen", "dispatched_at", "on_scene_at", "resolved_at", "closed_at",
                "overdue", "team", "claimed_by", "detections", "lat", "lon")
ACTIVE = (*casework.ACTIVE_STATUSES, "claimed")
FULL_READ_EVERY_S = 300
TRANSITION_EVENTS = {"dispatched": "dispatched", "closed": "closed", "merged": "closed"}


class SecretMissing(Exception):
    pass


def read_secret(hook: WebhookSettings) -> bytes:
    if hook.secret_env:
        value = os.environ.get(hook.secret_env)
        if not value:
            raise SecretMissing(f"webhook {hook.url}: the environment variable {hook.secret_env} is not set")
        return value.encode()
    try:
        value = hook.secret_file.read_text().strip()
    except OSError as exc:
        raise SecretMissing(f"webhook {hook.url}: cannot read {hook.secret_file}: {exc.strerror}") from None
    if not value:
        raise SecretMissing(f"webhook {hook.url}: {hook.secret_file} is empty")
    return value.encode()


class DeskClock:
    def __init__(self, config: GatewayConfig, store: LeadStore, accounts: Accounts,
                 now_ms=lambda: int(time.time() * 1000)) -> None:
        self.config = config
        self.store = store
        self.clocks = Clocks(config.desk.sla)
        self.now_ms = now_ms
        self.hooks = config.desk.webhooks
        self.secrets = [read_secret(hook) for hook in self.hooks]   # refuse to start without them
        self.senders = [WebhookSender(str(hook.ca_file) if hook.ca_file else None) for hook in self.hooks]
        self._db, self._lock = accounts.shared()   # one local file for the desk
        with self._lock:
            self._db.executescript(NOTICES)
            self._db.execute("INSERT OR IGNORE INTO marks VALUES ('started', ?)", (self.now_ms(),))
            self._db.execute("INSERT OR IGNORE INTO marks VALUES ('events', ?)", (self.now_ms(),))
            self.started_ms = self._db.execute("SELECT value FROM marks WHERE name = 'started'").fetchone()[0]
        self.next_full_read_ms = 0   # read every active lead at the first check

    # ----------------------------------------------------------------- the loop

    def run(self, stop: threading.Event) -> None:
        next_check = 0.0
        while not stop.is_set():
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + self.config.desk.clock_every_s
                try:
                    self.check()
                except StoreError as exc:
                    log.warning("desk.clock_failed error=%s", exc)
            self.deliver()
            stop.wait(1.0)
        for sender in self.senders:
            sender.close()

    def check(self) -> None:
        """Escalate what ran over and queue the notifications of what happened since the last look."""
        now = self.now_ms()
        with self._lock:
            since = self._db.execute("SELECT value FROM marks WHERE name = 'events'").fetchone()[0]
        opened = self.store.leads_where(LeadQuery(fields=CLOCK_FIELDS,
                                                  opened_since_ms=max(self.started_ms, since - EVENT_SLACK_MS)))
        for row in opened:
            lead = casework.lead_row(row)
            self.queue("opened", f"{lead['lead_id']}:opened", lead, {})
            self.next_full_read_ms = min(self.next_full_read_ms, self._deadline(lead, now))
        if now >= self.next_full_read_ms:
            self.next_full_read_ms = now + FULL_READ_EVERY_S * 1000
            for row in self.store.leads_where(LeadQuery(statuses=ACTIVE, fields=CLOCK_FIELDS)):
                lead = casework.lead_row(row)
                self._escalate(row, lead, now)
                self.next_full_read_ms = min(self.next_full_read_ms, self._deadline(lead, now))
        for seen in self.store.events_since(since - EVENT_SLACK_MS):
            event = TRANSITION_EVENTS.get(seen.event.event)
            if event is None or seen.event.at_ms < self.started_ms:
                continue
            lead = self.store.lead(seen.lead_id)
            extra = {"by": seen.event.by, "outcome": seen.event.outcome, **(seen.event.details or {})}
            self.queue(event, f"{seen.lead_id}:{seen.event.event}:{seen.time_ns}",
                       casework.lead_row(lead) if lead else {"lead_id": seen.lead_id}, extra)
        with self._lock:
            self._db.execute("UPDATE marks SET value = ? WHERE name = 'events'", (now,))

    def _deadline(self, lead: dict[str, Any], now: int) -> int:
        """The earliest time one of the lead's running clocks may run over (working time never runs faster
        than the wall clock, so its target counted from the opening is a lower bound)."""
        start = lead.get("opened_at") or lead.get("first_seen") or now
        targets = self.clocks.targets(lead.get("category", ""), lead.get("district", ""))
        running = [clock for clock in self.clocks.clocks(lead, now) if clock.state in ("ok", "due")]
        return min((int(start + getattr(targets, f"{clock.name}_s") * 1000) for clock in running),
                   default=now + FULL_READ_EVERY_S * 1000)

    def _escalate(self, row: dict[str, Any], lead: dict[str, Any], now: int) -> None:
        already = set(filter(None, (lead.get("overdue") or "").split(",")))
        late = [clock.name for clock in self.clocks.clocks(lead, now) if clock.state == "overdue"]
        for name in late:
            if name in already:
                continue
            already.add(name)
            tags = {key: row[key] for key in ("lead_id", "category", "district", "zone") if row.get(key)}
            event = LeadEvent("overdue", lead["status"], lead["status"], CLOCK_USER, now,
                              note=f"{name} clock ran over", details={"clock": name})
            self.store.write([lead_update_point(tags, {"overdue": ",".join(sorted(already))}, row["time"]),
                              lead_event_point(lead["lead_id"], event)])
            log.warning("lead.overdue lead=%s clock=%s team=%s", lead["lead_id"], name, lead.get("team"))
            self.queue("overdue", f"{lead['lead_id']}:overdue:{name}", lead, {"clock": name})

    # ----------------------------------------------------------------- the queue

    def queue(self, event: str, key: str, lead: dict[str, Any], extra: dict[str, Any]) -> None:
        body = json.dumps({"event": event, "lead_id": lead.get("lead_id"), "at": self.now_ms(),
                           **{k: v for k, v in extra.items() if v is not None},
                           "lead": {k: lead.get(k) for k in ("category", "district", "zone", "status", "team",
                                                             "claimed_by", "outcome", "detections", "lat", "lon",
                                                             "first_seen", "opened_at")}}, sort_keys=True)
        with self._lock:
            for index, hook in enumerate(self.hooks):
                if event in hook.events:
                    self._db.execute("INSERT OR IGNORE INTO notices (key, hook, event, body, next_at, state) "
                                     "VALUES (?, ?, ?, ?, ?, 'pending')", (key, index, event, body, time.time()))

    def deliver(self) -> int:
        """Send the notifications that are due; how many went out."""
        with self._lock:
            due = self._db.execute("SELECT key, hook, body, attempts FROM notices WHERE state = 'pending' AND "
                                   "next_at <= ? ORDER BY next_at LIMIT 100", (time.time(),)).fetchall()
        sent = 0
        for key, index, body, attempts in due:
            if index >= len(self.hooks):
                continue
            hook = self.hooks[index]
            try:
                self.senders[index].send(hook.url, self.secrets[index], key, body.encode())
            except DeliveryFailed as exc:
                attempts += 1
                wait = min(hook.retry_max_s, hook.retry_initial_s * 2 ** (attempts - 1))
                state = "failed" if attempts >= hook.max_attempts else "pending"
                log.warning("webhook.failed key=%s url=%s attempts=%d state=%s error=%s", key, hook.url, attempts,
                            state, exc)
                with self._lock:
                    self._db.execute("UPDATE notices SET attempts = ?, next_at = ?, state = ? WHERE key = ? AND "
                                     "hook = ?", (attempts, time.time() + wait, state, key, index))
                continue
            sent += 1
            with self._lock:
                self._db.execute("UPDATE notices SET attempts = ?, state = 'sent' WHERE key = ? AND hook = ?",
                                 (attempts + 1, key, index))
        return sent

    def notices(self) -> list[tuple[str, str, str, int]]:
        with self._lock:
            return self._db.execute("SELECT key, event, state, attempts FROM notices ORDER BY rowid").fetchall()
