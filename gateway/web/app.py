"""The desk as a Starlette application: sessions, CSRF, roles, and the routes of ``pages``.

Every page but the login needs a session (``accounts``): the browser holds
its token in an HttpOnly, SameSite=Lax cookie. Every POST carries the
session's CSRF token (form field ``csrf`` or header ``X-CSRF-Token``); one
without it is refused before anything is read or changed. The login form,
before there is a session, carries a token of its own that must match a
cookie set with the form. Reads and writes of leads go through the gateway's ``LeadStore``
and ``gateway.desk.casework``, as the command line's do; every change
records the user's name in ``lead_event``.

Blocking work (the store, password hashing) runs in Starlette's thread pool.
Each answer carries ``Server-Timing: app;dur=MS``, the time the desk spent on
it, which the benchmark reads.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response

from gateway.config import GatewayConfig
from gateway.desk.photos import PhotoStore
from gateway.desk.sla import Clocks
from gateway.store.base import LeadStore
from gateway.store.evidence import EvidenceStore
from gateway.web.accounts import Accounts, AccountError, Session

COOKIE = "desk_session"
LOGIN_COOKIE = "desk_login"
SHA_LENGTH = 64
STATIC = Path(__file__).with_name("static")


@dataclass
class Desk:
    """What every page needs, held by the application."""

    config: GatewayConfig
    store: LeadStore
    accounts: Accounts
    evidence: EvidenceStore
    photos: PhotoStore
    clocks: Clocks
    templates: Environment
    secure_cookies: bool
    now_ms: Callable[[], int]

    def render(self, template: str, request: Request, status: int = 200, **context: Any) -> HTMLResponse:
        session: Session | None = getattr(request.state, "session", None)
        html = self.templates.get_template(template).render(
            request=request, user=session.user if session else None, csrf=session.csrf if session else "",
            refresh_s=self.config.desk.refresh_s, **context)
        return HTMLResponse(html, status_code=status)


def templates() -> Environment:
    env = Environment(loader=PackageLoader("gateway.web", "templates"), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = _when
    env.filters["minutes"] = lambda seconds: f"{seconds / 60:.0f}"
    return env


def _when(ms: int | None) -> str:
    if not ms:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))


# --------------------------------------------------------------------------- sessions and CSRF


def session_of(request: Request) -> Session | None:
    return getattr(request.state, "session", None)


async def load_session(request: Request) -> Session | None:
    desk: Desk = request.app.state.desk
    session = await run_in_threadpool(desk.accounts.session, request.cookies.get(COOKIE))
    request.state.session = session
    return session


def login_redirect(request: Request) -> Response:
    if request.headers.get("X-Requested-With") == "fetch" or "/part/" in request.url.path \
            or request.url.path.endswith("/rows"):
        return PlainTextResponse("your session has ended; log in again", status_code=401)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


async def csrf_refusal(request: Request, form) -> Response | None:
    """None if the POST carries this session's CSRF token, else the refusal to send."""
    session = session_of(request)
    given = request.headers.get("X-CSRF-Token") or (form.get("csrf") if form is not None else None)
    if session is not None and Accounts.csrf_ok(session, given if isinstance(given, str) else None):
        return None
    desk: Desk = request.app.state.desk
    return desk.render("message.html", request, 403, title="Refused",
                       message="This form did not carry the desk's security token (CSRF), so nothing was changed. "
                               "Reload the page and try again.")


# --------------------------------------------------------------------------- login, logout, files


def _login_form(request: Request, status: int = 200, **context: Any) -> Response:
    """The login form, with a token that its POST must bring back in the form and in a cookie (there is no
    session yet to hold it), so no other site can log a browser in."""
    desk: Desk = request.app.state.desk
    token = secrets.token_urlsafe(24)
    response = desk.render("login.html", request, status, login_token=token, **context)
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=desk.secure_cookies,
                        path="/login", max_age=3600)
    return response


async def login_page(request: Request) -> Response:
    if await load_session(request):
        return RedirectResponse("/", status_code=303)
    return _login_form(request, next=_safe_next(request.query_params.get("next")))


async def login(request: Request) -> Response:
    desk: Desk = request.app.state.desk
    form = await request.form()
    name = str(form.get("name") or "").strip()
    password = str(form.get("password") or "")
    target = _safe_next(str(form.get("next") or "/"))
    given, expected = form.get("login_token"), request.cookies.get(LOGIN_COOKIE)
    if not (isinstance(given, str) and expected and hmac.compare_digest(given, expected)):
        return _login_form(request, 403, name=name, next=target,
                           error="This login form has expired or did not come from the desk (CSRF); "
                                 "nothing was checked. Try again.")
    address = request.client.host if request.client else "-"
    try:
        session = await run_in_threadpool(desk.accounts.login, name, password, address)
    except AccountError as exc:
        return _login_form(request, 401, error=str(exc), name=name, next=target)
    response = RedirectResponse(target, status_code=303)
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    response.set_cookie(COOKIE, session.token, httponly=True, samesite="lax", secure=desk.secure_cookies, path="/")
    return response


async def logout(request: Request) -> Response:
    desk: Desk = request.app.state.desk
    if not await load_session(request):
        return RedirectResponse("/login", status_code=303)
    form = await request.form()
    if (refusal := await csrf_refusal(request, form)) is not None:
        return refusal
    await run_in_threadpool(desk.accounts.logout, request.cookies[COOKIE])
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


def _safe_next(target: str | None) -> str:
    """Only a path of this site: no scheme, no host, no '//' that a browser would read as one."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def picture(request: Request) -> Response:
    desk: Desk = request.app.state.desk
    if not await load_session(request):
        return login_redirect(request)
    sha = request.path_params["sha"]
    if len(sha) != SHA_LENGTH or any(c not in "0123456789abcdef" for c in sha):
        return PlainTextResponse("no such picture", status_code=404)
    if request.url.path.startswith("/evidence/"):
        path = desk.evidence.path_for(sha)
        path = path if path.is_file() else None
    else:
        path = desk.photos.path_for(sha)
    if path is None:
        return PlainTextResponse("no such picture", status_code=404)
    return FileResponse(path, headers={"Cache-Control": "private, max-age=86400"})
