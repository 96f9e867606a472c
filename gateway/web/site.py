"""The desk's application: its routes, and the timing every answer carries."""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from gateway.config import GatewayConfig
from gateway.desk.photos import PhotoStore
from gateway.desk.sla import Clocks
from gateway.store.base import LeadStore
from gateway.store.evidence import EvidenceStore
from gateway.web import pages
from gateway.web.accounts import Accounts
from gateway.web.app import STATIC, Desk, login, login_page, logout, picture, templates


# --------------------------------------------------------------------------- the application


class ServerTiming:
    """Adds ``Server-Timing: app;dur=MS`` to every answer (pure ASGI, so it costs next to nothing)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed(message) -> None:
            if message["type"] == "http.response.start":
                took = (time.perf_counter() - started) * 1000
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"server-timing", f"app;dur={took:.2f}".encode())]
            await send(message)

        await self.app(scope, receive, timed)


def create_app(config: GatewayConfig, store: LeadStore, accounts: Accounts, *,
               now_ms: Callable[[], int] | None = None) -> Starlette:
    desk = Desk(config, store, accounts, EvidenceStore(config.evidence_dir), PhotoStore(config.evidence_dir),
                Clocks(config.desk.sla), templates(), secure_cookies=config.desk.tls_cert is not None,
                now_ms=now_ms or (lambda: int(time.time() * 1000)))
    routes = [
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/", pages.queue, methods=["GET"]),
        Route("/queue/rows", pages.queue_rows, methods=["GET"]),
        Route("/leads/{lead_id}", pages.lead, methods=["GET"]),
        Route("/leads/{lead_id}/{action}", pages.act, methods=["POST"]),
        Route("/leads/{lead_id}/part/{part}", pages.lead_live, methods=["GET"]),
        Route("/reports", pages.reports, methods=["GET"]),
        Route("/boxes", pages.boxes, methods=["GET"]),
        Route("/evidence/{sha:str}", picture, methods=["GET"]),
        Route("/photos/{sha:str}", picture, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.desk = desk
    app.add_middleware(ServerTiming)
    return app
