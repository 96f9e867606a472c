"""Case staff's side of a lead: look at it, and move it through its lifecycle.

    open -> dispatched -> on_scene -> resolved -> closed (outcome confirmed / rejected / duplicate)
      \\__________\\____________\\___________\\-> closed as rejected or duplicate, from any earlier state

``dispatched`` names a team and, optionally, the officer the lead went to
(``claimed_by``); a dispatched lead may be dispatched again. Resolving needs a
site photo (``gateway.desk.photos``). Closing is the supervisor's verification:
only a resolved lead can be closed as ``confirmed``. Nothing leaves ``closed``.
Leads written before this lifecycle may say ``claimed``, read as ``dispatched``.

Who may do what (``Actor``): an officer sees and works only the leads of
their own team (on scene, resolve); a dispatcher dispatches, merges and
splits, and may close a lead as rejected or duplicate; a supervisor may do
everything; an operator only looks. The ``gateway leads`` command acts as a
``system`` actor, with a supervisor's rights, under the name it is given.

Every change writes the lead point again (same tags and time, so InfluxDB
overwrites the changed fields and keeps the rest) together with a
``lead_event`` audit point naming who did it. The running gateway reads
``lead_event`` to learn about changes (``LeadStore.events_since``), so a
resolved or closed lead takes no more detections.

Errors (all ``CaseworkError``, the message says what and why):
``UnknownLead``, ``NotAllowed`` (the role or team forbids it),
``BadTransition`` (the lead's status forbids it), ``BadInput``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from gateway.dedupe.geo import haversine_m
from gateway.dedupe.leads import lead_id_for
from gateway.store.base import LeadStore
from gateway.store.lineprotocol import Point
from gateway.store.schema import (LEAD_FIELDS, LeadEvent, detection_copy_point, lead_event_point,
                                  lead_update_point, ms_to_ns)

STATUSES = ("open", "dispatched", "on_scene", "resolved", "closed")
ACTIVE_STATUSES = ("open", "dispatched", "on_scene")
OUTCOMES = ("confirmed", "rejected", "duplicate")
ROLES = ("officer", "dispatcher", "supervisor", "operator")
LEAD_ID_PATTERN = re.compile(r"^L[0-9a-f]{11}$")
LEGACY_STATUS = {"claimed": "dispatched"}
NOTE_LIMIT = 2000

DISPATCHABLE = ("open", "dispatched")
REJECTABLE = ("open", "dispatched", "on_scene", "resolved")


class CaseworkError(Exception):
    """A change refused; the message says which lead and why."""


class UnknownLead(CaseworkError):
    """No such lead (or a malformed id)."""


class NotAllowed(CaseworkError):
    """The user's role or team does not allow this."""


class BadTransition(CaseworkError):
    """The lead's status does not allow this change."""


class BadInput(CaseworkError):
    """A value given with the change is not acceptable (outcome, note, photo)."""


@dataclass(frozen=True)
class Actor:
    """Who acts: a desk user (``officer`` ... ``operator``) or the command line (``system``)."""

    name: str
    role: str
    team: str | None = None

    @classmethod
    def system(cls, name: str) -> Actor:
        return cls(name, "system")

    @property
    def sees_every_team(self) -> bool:
        return self.role != "officer"

    def can(self, *roles: str) -> bool:
        return self.role in (*roles, "supervisor", "system")


@dataclass(frozen=True)
class LeadRecord:
    lead_id: str
    tags: dict[str, str]
    fields: dict[str, Any]
    time_ns: int

    @property
    def status(self) -> str:
        status = self.fields.get("status", "open")
        return LEGACY_STATUS.get(status, status)

    @property
    def team(self) -> str | None:
        return self.fields.get("team")


def list_leads(store: LeadStore, *, status: str | None = None, category: str | None = None,
               district: str | None = None) -> list[dict[str, Any]]:
    """The leads, of one status, category or district if given, oldest first."""
    leads = [lead_row(row) for row in store.leads(category, district)]
    if status:
        leads = [lead for lead in leads if lead["status"] == status]
    return sorted(leads, key=lambda lead: (lead.get("first_seen") or 0, lead["lead_id"]))


def lead_row(row: dict[str, Any]) -> dict[str, Any]:
    """A stored lead row as case staff see it: known fields only, boxes as a list, legacy statuses renamed."""
    lead = {key: row.get(key) for key in ("lead_id", "category", "district", "zone", *LEAD_FIELDS)}
    lead["boxes"] = [b for b in (lead.get("boxes") or "").split(",") if b]
    lead["status"] = LEGACY_STATUS.get(lead.get("status") or "open", lead.get("status") or "open")
    return {k: v for k, v in lead.items() if v is not None or k in ("lead_id", "status")}


def read_lead(store: LeadStore, lead_id: str, actor: Actor | None = None) -> LeadRecord:
    """The lead, if it exists and ``actor`` (when given) may see it."""
    if not LEAD_ID_PATTERN.fullmatch(lead_id):
        raise UnknownLead(f"no lead {lead_id!r}: lead ids look like L followed by 11 hex digits")
    row = store.lead(lead_id)
    if row is None:
        raise UnknownLead(f"no lead {lead_id}")
    tags = {key: row[key] for key in ("lead_id", "category", "district", "zone") if row.get(key)}
    fields = {key: row[key] for key in LEAD_FIELDS if row.get(key) is not None}
    lead = LeadRecord(lead_id, tags, fields, row["time"])
    if actor is not None and not actor.sees_every_team and lead.team != actor.team:
        raise NotAllowed(f"lead {lead_id} belongs to team {lead.team or '(none)'}; "
                         f"{actor.name} works for team {actor.team or '(none)'}")
    return lead


def read_ledger(store: LeadStore, lead_id: str) -> list[dict[str, Any]]:
    return store.ledger(lead_id)


def read_events(store: LeadStore, lead_id: str) -> list[dict[str, Any]]:
    return store.lead_events(lead_id)


# --------------------------------------------------------------------------- the lifecycle


def dispatch(store: LeadStore, lead_id: str, actor: Actor, now_ms: int, *, team: str | None = None,
             officer: str | None = None) -> LeadEvent:
    """Send the lead to a team (default: the team it was routed to) and, if named, one officer of it."""
    _require(actor, "dispatch a lead", "dispatcher")
    lead = read_lead(store, lead_id, actor)
    _require_status(lead, DISPATCHABLE, "dispatched", "only an open or dispatched lead can be dispatched")
    team = (team or "").strip() or lead.team
    officer = (officer or "").strip() or None
    if not team:
        raise BadInput(f"lead {lead_id} has no team; name the team to dispatch it to")
    fields: dict[str, Any] = {"status": "dispatched", "team": team, "dispatched_at": now_ms}
    if officer:
        fields["claimed_by"] = officer
    details = {"team": team, **({"assignee": officer} if officer else {})}
    return _change(store, lead, LeadEvent("dispatched", lead.status, "dispatched", actor.name, now_ms,
                                          details=details), fields)


def claim(store: LeadStore, lead_id: str, by: str, now_ms: int) -> LeadEvent:
    """The command line's ``claim``: the lead is dispatched to ``by``, in the team it was routed to."""
    lead = read_lead(store, lead_id)
    if lead.status != "open":
        holder = f" to {lead.fields['claimed_by']}" if lead.fields.get("claimed_by") else ""
        raise BadTransition(f"lead {lead_id} is {lead.status}{holder}; only an open lead can be claimed")
    return dispatch(store, lead_id, Actor.system(by), now_ms, team=lead.team or "unassigned", officer=by)


def on_scene(store: LeadStore, lead_id: str, actor: Actor, now_ms: int) -> LeadEvent:
    _require(actor, "mark a lead on scene", "officer")
    lead = read_lead(store, lead_id, actor)
    _require_status(lead, ("dispatched",), "on_scene", "only a dispatched lead can be marked on scene")
    return _change(store, lead, LeadEvent("on_scene", lead.status, "on_scene", actor.name, now_ms),
                   {"status": "on_scene", "on_scene_at": now_ms})


def resolvable(store: LeadStore, lead_id: str, actor: Actor) -> LeadRecord:
    """The lead, if ``actor`` may resolve it now (checked before a photo is kept)."""
    _require(actor, "resolve a lead", "officer")
    lead = read_lead(store, lead_id, actor)
    _require_status(lead, ("on_scene",), "resolved", "only a lead on scene can be resolved")
    return lead


def resolve(store: LeadStore, lead_id: str, actor: Actor, now_ms: int, photo_sha256: str | None,
            note: str | None = None) -> LeadEvent:
    """Mark the lead handled on site; ``photo_sha256`` names the site photo already kept
    (``gateway.desk.photos.resolve_with_photo`` checks, keeps and resolves in that order)."""
    lead = resolvable(store, lead_id, actor)
    if not photo_sha256:
        raise BadInput(f"lead {lead_id}: resolving needs a site photo (JPEG or PNG)")
    fields: dict[str, Any] = {"status": "resolved", "resolved_at": now_ms, "site_photo": photo_sha256}
    note = _note(note)
    if note:
        fields["note"] = note
    return _change(store, lead, LeadEvent("resolved", lead.status, "resolved", actor.name, now_ms, note=note,
                                          details={"photo": photo_sha256}), fields)


def close(store: LeadStore, lead_id: str, outcome: str, by: Actor | str, note: str | None, now_ms: int) -> LeadEvent:
    """Close with an outcome: ``confirmed`` only once resolved; ``rejected``/``duplicate`` from any earlier state."""
    actor = by if isinstance(by, Actor) else Actor.system(by)
    if outcome not in OUTCOMES:
        raise BadInput(f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
    if outcome == "confirmed":
        _require(actor, "close a lead as confirmed (a supervisor's verification)")
    else:
        _require(actor, f"close a lead as {outcome}", "dispatcher")
    lead = read_lead(store, lead_id, actor)
    if lead.status == "closed":
        raise BadTransition(f"lead {lead_id} is already closed (outcome {lead.fields.get('outcome', '-')}); "
                            "a closed lead cannot change")
    if outcome == "confirmed" and lead.status != "resolved":
        raise BadTransition(f"lead {lead_id} is {lead.status}; only a resolved lead can be closed as confirmed")
    note = _note(note)
    event = LeadEvent("closed", lead.status, "closed", actor.name, now_ms, outcome, note)
    fields: dict[str, Any] = {"status": "closed", "outcome": outcome, "closed_at": now_ms}
    if note:
        fields["note"] = note
    return _change(store, lead, event, fields)


# --------------------------------------------------------------------------- merge and split


def members(store: LeadStore, lead: LeadRecord) -> list[dict[str, Any]]:
    """The lead's ledger: its detections (merged ones included, as copies), less those split out."""
    split_out = set((lead.fields.get("split_out") or "").split(","))
    return [row for row in store.ledger(lead.lead_id) if row.get("detection_id") not in split_out]


def merge(store: LeadStore, source_id: str, target_id: str, actor: Actor, now_ms: int) -> LeadEvent:
    """One incident reported as two leads: ``source``'s detections join ``target`` (written again under its
    id, the originals stay), and ``source`` is closed as a duplicate of it."""
    _require(actor, "merge leads", "dispatcher")
    if source_id == target_id:
        raise BadInput(f"lead {source_id} cannot be merged into itself")
    source = read_lead(store, source_id, actor)
    target = read_lead(store, target_id, actor)
    for lead in (source, target):
        _require_status(lead, ACTIVE_STATUSES, "merged", "only open, dispatched or on-scene leads can be merged")
    if source.tags.get("category") != target.tags.get("category"):
        raise BadInput(f"lead {source_id} is {source.tags.get('category')}, lead {target_id} is "
                       f"{target.tags.get('category')}; only leads of one category can be merged")
    joining = [row for row in _member_rows(store, source)]
    n = max((row.get("n") or 0 for row in store.ledger(target_id)), default=0)
    points = []
    for row in sorted(joining, key=lambda row: row.get("n") or 0):
        n += 1
        gap_s = max(0, row["time"] // 1_000_000 - (target.fields.get("last_seen") or 0),
                    (target.fields.get("first_seen") or 0) - row["time"] // 1_000_000) / 1000
        points.append(detection_copy_point(row, target_id, {
            "n": n, "rule": "merged", "gap_s": round(gap_s, 1),
            "distance_m": round(haversine_m(row["lat"], row["lon"], target.fields.get("lat", row["lat"]),
                                            target.fields.get("lon", row["lon"])), 1)}))
    count = (target.fields.get("detections") or 0) + len(joining)
    lat = _weighted(target, source, "lat")
    lon = _weighted(target, source, "lon")
    boxes = sorted({*_boxes(target), *_boxes(source)})
    target_fields: dict[str, Any] = {
        "detections": count, "boxes": ",".join(boxes), "lat": lat, "lon": lon,
        "first_seen": min(target.fields.get("first_seen") or now_ms, source.fields.get("first_seen") or now_ms),
        "last_seen": max(target.fields.get("last_seen") or 0, source.fields.get("last_seen") or 0),
        "score": max(float(target.fields.get("score") or 0.0), float(source.fields.get("score") or 0.0)),
        "updated_at": now_ms}
    source_event = LeadEvent("merged", source.status, "closed", actor.name, now_ms, "duplicate",
                             f"merged into {target_id}", {"other": target_id})
    target_event = LeadEvent("merge", target.status, target.status, actor.name, now_ms, None,
                             f"took in {source_id}", {"other": source_id})
    store.write([*points, lead_update_point(target.tags, target_fields, target.time_ns),
                 lead_event_point(target_id, target_event)])
    store.write([lead_update_point(source.tags, {"status": "closed", "outcome": "duplicate", "merged_into": target_id,
                                                 "closed_at": now_ms, "updated_at": now_ms}, source.time_ns),
                 lead_event_point(source_id, source_event)])
    return source_event


def split(store: LeadStore, lead_id: str, detection_id: str, actor: Actor, now_ms: int) -> LeadEvent:
    """A detection that is another incident: it leaves the lead and opens a lead of its own (written again
    under the new lead's id; the original stays, named in the old lead's ``split_out``)."""
    _require(actor, "split a lead", "dispatcher")
    lead = read_lead(store, lead_id, actor)
    _require_status(lead, ACTIVE_STATUSES, "split", "only open, dispatched or on-scene leads can be split")
    rows = _member_rows(store, lead)
    row = next((row for row in rows if row.get("id") == detection_id), None)
    if row is None:
        raise BadInput(f"detection {detection_id!r} is not in lead {lead_id}")
    if len(rows) < 2:
        raise BadInput(f"lead {lead_id} has only this detection; there is nothing to split it from")
    new_id = lead_id_for(lead.tags["category"], f"split:{lead_id}:{detection_id}")
    ts = row["time"] // 1_000_000
    new_tags = {"lead_id": new_id, "category": lead.tags["category"], "district": lead.tags["district"],
                "zone": row["zone"]}
    new_fields: dict[str, Any] = {
        "status": "open", "opened_at": now_ms, "detections": 1, "score": float(row.get("score") or 0.0),
        "first_seen": ts, "last_seen": ts, "lat": row["lat"], "lon": row["lon"], "boxes": row["box"],
        "route": f"split:{lead_id}", "split_from": lead_id, "updated_at": now_ms}
    if lead.team:
        new_fields["team"] = lead.team
    if row.get("evidence"):
        new_fields["evidence"] = row["evidence"]
    split_out = ",".join(sorted({*filter(None, (lead.fields.get("split_out") or "").split(",")), detection_id}))
    old_event = LeadEvent("split", lead.status, lead.status, actor.name, now_ms, None,
                          f"{detection_id} split out into {new_id}", {"other": new_id, "detection": detection_id})
    new_event = LeadEvent("split", "", "open", actor.name, now_ms, None, f"split out of {lead_id}",
                          {"other": lead_id, "detection": detection_id})
    store.write([detection_copy_point(row, new_id, {"n": 1, "rule": "split", "distance_m": 0.0, "gap_s": 0.0}),
                 # At its first detection's millisecond, where the gateway writes a lead it knows.
                 Point("lead", new_tags, new_fields, ms_to_ns(ts)), lead_event_point(new_id, new_event)])
    store.write([lead_update_point(lead.tags, {"detections": len(rows) - 1, "split_out": split_out,
                                               "updated_at": now_ms}, lead.time_ns),
                 lead_event_point(lead_id, old_event)])
    return old_event


def _member_rows(store: LeadStore, lead: LeadRecord) -> list[dict[str, Any]]:
    split_out = set((lead.fields.get("split_out") or "").split(","))
    return [row for row in store.detection_rows(lead.lead_id) if row.get("id") not in split_out]


def _boxes(lead: LeadRecord) -> list[str]:
    return [box for box in (lead.fields.get("boxes") or "").split(",") if box]


def _weighted(a: LeadRecord, b: LeadRecord, name: str) -> float:
    na, nb = a.fields.get("detections") or 1, b.fields.get("detections") or 1
    return (float(a.fields.get(name) or 0.0) * na + float(b.fields.get(name) or 0.0) * nb) / (na + nb)


# --------------------------------------------------------------------------- helpers


def _require(actor: Actor, what: str, *roles: str) -> None:
    if not actor.can(*roles):
        allowed = ", ".join((*roles, "supervisor"))
        raise NotAllowed(f"{actor.name} ({actor.role}) may not {what}; that needs: {allowed}")


def _require_status(lead: LeadRecord, allowed: tuple[str, ...], to: str, rule: str) -> None:
    if lead.status not in allowed:
        raise BadTransition(f"lead {lead.lead_id} is {lead.status}, it cannot become {to}: {rule}")


def _note(note: str | None) -> str | None:
    note = (note or "").strip()
    if len(note) > NOTE_LIMIT:
        raise BadInput(f"a note may hold at most {NOTE_LIMIT} characters, this one has {len(note)}")
    return note or None


def _change(store: LeadStore, lead: LeadRecord, event: LeadEvent, fields: dict[str, Any]) -> LeadEvent:
    store.write([lead_update_point(lead.tags, {**fields, "updated_at": event.at_ms}, lead.time_ns),
                 lead_event_point(lead.lead_id, event)])
    return event
