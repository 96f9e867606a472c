"""The desk's pages: the queue, a lead (and what can be done to it), reports, boxes.

Handlers read the session first (no session: to the login), check the CSRF
token of every change before reading its form further, and answer a refused
change with the page it came from and the reason, status 400 (bad input),
403 (role, team, CSRF), 404 (no such lead), 409 (the lead's status forbids
it) or 413 (a photo too large), having changed nothing.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import asdict
from datetime import date, datetime, timedelta, timezone
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from contract import NAME_PATTERN
from gateway.desk import casework, reports as reporting
from gateway.desk.photos import MAX_PHOTO_BYTES, PhotoTooLarge, resolve_with_photo
from gateway.store.base import LeadQuery
from gateway.web.app import Desk, csrf_refusal, load_session, login_redirect
from gateway.web.drawing import lead_map, picture_size

QUEUE_LIMIT = 50
NAME_RE = re.compile(NAME_PATTERN)
STATUS_CHOICES = {"active": casework.ACTIVE_STATUSES + ("claimed",), "all": (),
                  **{status: (status,) for status in casework.STATUSES}}
STATUS_CHOICES["dispatched"] = ("dispatched", "claimed")
UPLOAD_OVERHEAD = 64 * 1024
ERROR_STATUS = {casework.UnknownLead: 404, casework.NotAllowed: 403, casework.BadTransition: 409,
                casework.BadInput: 400, PhotoTooLarge: 413}


# --------------------------------------------------------------------------- the queue


def read_filters(request: Request, user: casework.Actor) -> tuple[dict[str, str], list[str]]:
    """The queue's filters from the query string, and a line for each one refused."""
    params = request.query_params
    filters = {"status": params.get("status") or "active", "order": params.get("order") or "newest",
               "clock": params.get("clock") or ""}
    problems = []
    if filters["status"] not in STATUS_CHOICES:
        problems.append(f"status {filters['status']!r} is none of {', '.join(STATUS_CHOICES)}")
        filters["status"] = "active"
    if filters["order"] not in ("newest", "urgent"):
        filters["order"] = "newest"
    if filters["clock"] not in ("", "overdue", "due"):
        filters["clock"] = ""
    for name in ("category", "district", "zone", "box"):
        value = (params.get(name) or "").strip()
        if value and not NAME_RE.fullmatch(value):
            problems.append(f"{name} {value!r} is not a name")
        elif value:
            filters[name] = value
    team = (params.get("team") or "").strip()
    if not user.sees_every_team:
        team = user.team or ""
    if team:
        filters["team"] = team
    return filters, problems


def queue_leads(desk: Desk, filters: dict[str, str]) -> list[dict[str, Any]]:
    urgent = filters["order"] == "urgent" or filters["clock"]
    query = LeadQuery(statuses=STATUS_CHOICES[filters["status"]], team=filters.get("team"),
                      category=filters.get("category"), district=filters.get("district"), zone=filters.get("zone"),
                      box=filters.get("box"), limit=None if urgent else QUEUE_LIMIT)
    now = desk.now_ms()
    leads = []
    for row in desk.store.leads_where(query):
        lead = casework.lead_row(row)
        lead["clock"] = desk.clocks.state(lead, now)
        leads.append(lead)
    if filters["clock"]:
        leads = [lead for lead in leads if lead["clock"] == filters["clock"]]
    if urgent:
        leads.sort(key=lambda lead: desk.clocks.urgency(lead, now))
    return leads[:QUEUE_LIMIT]


async def queue(request: Request) -> Response:
    return await _render_queue(request, "queue.html")


async def queue_rows(request: Request) -> Response:
    """The queue's rows alone, which the open page fetches every ``refresh_s``."""
    return await _render_queue(request, "queue_rows.html")


async def _render_queue(request: Request, template: str) -> Response:
    """The leads the URL's filters select, as the whole page or its rows alone: both read them the same way."""
    desk: Desk = request.app.state.desk
    session = await load_session(request)
    if session is None:
        return login_redirect(request)
    filters, problems = read_filters(request, session.user)
    leads = await run_in_threadpool(queue_leads, desk, filters)
    return desk.render(template, request, leads=leads, filters=filters, problems=problems,
                       statuses=list(STATUS_CHOICES), limit=QUEUE_LIMIT, query=request.url.query)


# --------------------------------------------------------------------------- a lead


def lead_view(desk: Desk, user: casework.Actor, lead_id: str) -> dict[str, Any]:
    record = casework.read_lead(desk.store, lead_id, user)
    lead = {**record.tags, **record.fields, "status": record.status}
    ledger = casework.members(desk.store, record)
    events = sorted(casework.read_events(desk.store, lead_id), key=lambda event: event["time"])
    now = desk.now_ms()
    picture = crop = None
    if lead.get("evidence") and desk.evidence.has(lead["evidence"]):
        picture = lead["evidence"]
        size = picture_size(desk.evidence.path_for(picture))
        entry = next((row for row in ledger if row.get("evidence") == picture and row.get("x2") is not None), None)
        if size and entry:
            width, height = size
            crop = {"width": width, "height": height, "x": round(entry["x1"] * width, 1),
                    "y": round(entry["y1"] * height, 1), "w": round(max(1.0, (entry["x2"] - entry["x1"]) * width), 1),
                    "h": round(max(1.0, (entry["y2"] - entry["y1"]) * height), 1)}
    officers = [actor.name for actor in desk.accounts.users() if actor.role == "officer"
                and (actor.team == lead.get("team") or not lead.get("team"))]
    return {"lead": lead, "ledger": ledger, "events": events, "clocks": desk.clocks.clocks(lead, now),
            "clock": desk.clocks.state(lead, now), "picture": picture, "crop": crop,
            "map": lead_map(desk.config, lead, ledger), "officers": officers,
            "can": _abilities(user, lead)}


def _abilities(user: casework.Actor, lead: dict[str, Any]) -> dict[str, bool]:
    status = lead["status"]
    own = user.sees_every_team or user.team == lead.get("team")
    return {
        "dispatch": user.can("dispatcher") and status in casework.DISPATCHABLE,
        "on_scene": user.can("officer") and own and status == "dispatched",
        "resolve": user.can("officer") and own and status == "on_scene",
        "close_confirmed": user.can() and status == "resolved",
        "close_other": user.can("dispatcher") and status in casework.REJECTABLE,
        "merge": user.can("dispatcher") and status in casework.ACTIVE_STATUSES,
        "split": user.can("dispatcher") and status in casework.ACTIVE_STATUSES,
    }


async def lead(request: Request) -> Response:
    desk: Desk = request.app.state.desk
    session = await load_session(request)
    if session is None:
        return login_redirect(request)
    return await _lead_page(request, desk, session.user, request.path_params["lead_id"],
                            done=request.query_params.get("done"))


async def _lead_page(request: Request, desk: Desk, user: casework.Actor, lead_id: str, status: int = 200,
                     error: str | None = None, done: str | None = None) -> Response:
    try:
        view = await run_in_threadpool(lead_view, desk, user, lead_id)
    except (casework.UnknownLead, casework.NotAllowed) as exc:
        return desk.render("message.html", request, ERROR_STATUS[type(exc)] if status == 200 else status,
                           title="Lead not available", message=error or str(exc))
    return desk.render("lead.html", request, status, error=error, done=done, **view)


def lead_part(desk: Desk, user: casework.Actor, lead_id: str, part: str) -> dict[str, Any]:
    record = casework.read_lead(desk.store, lead_id, user)
    if part == "clocks":
        lead = {**record.tags, **record.fields, "status": record.status}
        return {"clocks": desk.clocks.clocks(lead, desk.now_ms())}
    return {"events": sorted(casework.read_events(desk.store, lead_id), key=lambda event: event["time"])}


async def lead_live(request: Request) -> Response:
    """A part of the lead page (its clocks, its history), which the open page fetches every ``refresh_s``."""
    desk: Desk = request.app.state.desk
    session = await load_session(request)
    if session is None:
        return login_redirect(request)
    part = request.path_params["part"]
    if part not in ("clocks", "history"):
        return PlainTextResponse(f"no part {part!r}", status_code=404)
    try:
        context = await run_in_threadpool(lead_part, desk, session.user, request.path_params["lead_id"], part)
    except (casework.UnknownLead, casework.NotAllowed) as exc:
        return PlainTextResponse(str(exc), status_code=ERROR_STATUS[type(exc)])
    return desk.render(f"lead_{part}.html", request, **context)


# --------------------------------------------------------------------------- changing a lead


def _dispatch(desk: Desk, user, lead_id: str, form, _: bytes):
    return casework.dispatch(desk.store, lead_id, user, desk.now_ms(), team=form.get("team"),
                             officer=form.get("officer"))


def _on_scene(desk: Desk, user, lead_id: str, form, _: bytes):
    return casework.on_scene(desk.store, lead_id, user, desk.now_ms())


def _resolve(desk: Desk, user, lead_id: str, form, photo: bytes):
    return resolve_with_photo(desk.store, desk.photos, lead_id, user, desk.now_ms(), photo, form.get("note"))


def _close(desk: Desk, user, lead_id: str, form, _: bytes):
    return casework.close(desk.store, lead_id, str(form.get("outcome") or ""), user, form.get("note"),
                          desk.now_ms())


def _merge(desk: Desk, user, lead_id: str, form, _: bytes):
    return casework.merge(desk.store, lead_id, str(form.get("into") or "").strip(), user, desk.now_ms())


def _split(desk: Desk, user, lead_id: str, form, _: bytes):
    return casework.split(desk.store, lead_id, str(form.get("detection") or ""), user, desk.now_ms())


ACTIONS = {"dispatch": _dispatch, "on_scene": _on_scene, "resolve": _resolve, "close": _close, "merge": _merge,
           "split": _split}


async def act(request: Request) -> Response:
    desk: Desk = request.app.state.desk
    session = await load_session(request)
    if session is None:
        return login_redirect(request)
    lead_id, action = request.path_params["lead_id"], request.path_params["action"]
    if action not in ACTIONS:
        return PlainTextResponse(f"no action {action!r}", status_code=404)
    too_large = f"the site photo is larger than {MAX_PHOTO_BYTES // 1048576} MiB; nothing was changed"
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_PHOTO_BYTES + UPLOAD_OVERHEAD:
        return await _lead_page(request, desk, session.user, lead_id, 413, too_large)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_PHOTO_BYTES + UPLOAD_OVERHEAD:
            return await _lead_page(request, desk, session.user, lead_id, 413, too_large)
    request._body = bytes(body)   # the form is parsed from what was read, within the limit
    form = await request.form(max_files=1, max_fields=20)
    if (refusal := await csrf_refusal(request, form)) is not None:
        return refusal
    photo = b""
    upload = form.get("photo")
    if isinstance(upload, UploadFile):
        photo = await upload.read()
    try:
        event = await run_in_threadpool(ACTIONS[action], desk, session.user, lead_id, form, photo)
    except casework.CaseworkError as exc:
        return await _lead_page(request, desk, session.user, lead_id, ERROR_STATUS.get(type(exc), 400), str(exc))
    target = event.details.get("other") if action == "merge" and event.details else lead_id
    return RedirectResponse(f"/leads/{target}?done={event.event}", status_code=303)


# --------------------------------------------------------------------------- reports and boxes


async def reports(request: Request) -> Response:
    desk: Desk = request.app.state.desk
    session = await load_session(request)
    if session is None:
        return login_redirect(request)
    if not session.user.can("dispatcher"):
        return desk.render("message.html", request, 403, title="Not for your role",
                           message="Reports are for supervisors and dispatchers.")
    params = request.query_params
    today = datetime.now(timezone.utc).date()
    problems = []
    try:
        first = date.fromisoformat(params.get("from") or (today - timedelta(days=30)).isoformat())
        last = date.fromisoformat(params.get("to") or today.isoformat())
    except ValueError:
        problems.append("dates are YYYY-MM-DD")
        first, last = today - timedelta(days=30), today
    by = params.get("by") if params.get("by") in reporting.GROUPS else "team"
    since = int(datetime.combine(first, datetime.min.time(), timezone.utc).timestamp() * 1000)
    until = int(datetime.combine(last + timedelta(days=1), datetime.min.time(), timezone.utc).timestamp() * 1000)
    rows = await run_in_threadpool(reporting.report, desk.store, desk.clocks, by, since, until, desk.now_ms())
    if params.get("format") == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=reporting.COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow(asdict(row))
        return Response(out.getvalue(), media_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="leads-{by}-{first}-{last}.csv"'})
    return desk.render("reports.html", request, rows=rows, by=by, first=first, last=last, problems=problems,
                       groups=reporting.GROUPS)


async def boxes(request: Request) -> Response:
    desk: Desk = request.app.state.desk
    session = await load_session(request)
    if session is None:
        return login_redirect(request)
    if session.user.role == "officer":
        return desk.render("message.html", request, 403, title="Not for your role",
                           message="The box view is for operators, dispatchers and supervisors.")
    since = desk.now_ms() - int(desk.config.seq_lookback_s * 1000)
    rows = await run_in_threadpool(desk.store.boxes, since)
    return desk.render("boxes.html", request, boxes=rows, dedupe=desk.config.dedupe, sla=desk.config.desk.sla)
