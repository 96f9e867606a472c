"""`gateway web`: the desk and its clock in one process, served by uvicorn on one port.

With ``[desk] tls_cert`` and ``tls_key`` uvicorn serves HTTPS itself (and
session cookies are marked Secure); without, it serves plain HTTP, for a
loopback address or behind a reverse proxy that terminates TLS.
"""

from __future__ import annotations

import logging
import threading

import uvicorn

from gateway.config import GatewayConfig
from gateway.store.base import LeadStore
from gateway.web.accounts import Accounts
from gateway.web.site import create_app
from gateway.web.notify import DeskClock

log = logging.getLogger(__name__)


def open_accounts(config: GatewayConfig) -> Accounts:
    desk = config.desk
    return Accounts(desk.accounts, session_idle_s=desk.session_idle_h * 3600, max_failures=desk.login_max_failures,
                    window_s=desk.login_window_min * 60)


def host_and_port(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def serve(config: GatewayConfig, store: LeadStore, listen: str | None = None) -> None:
    accounts = open_accounts(config)
    host, port = host_and_port(listen or config.desk.listen)
    clock = DeskClock(config, store, accounts)
    stop = threading.Event()
    ticker = threading.Thread(target=clock.run, args=(stop,), name="desk-clock", daemon=True)
    ticker.start()
    tls = config.desk.tls_cert
    server = uvicorn.Server(uvicorn.Config(
        create_app(config, store, accounts), host=host, port=port, log_level="warning", access_log=False,
        ssl_certfile=str(tls) if tls else None,
        ssl_keyfile=str(config.desk.tls_key) if config.desk.tls_key else None))
    log.info("desk.started listen=%s:%d tls=%s", host, port, "yes" if tls else "no")
    try:
        server.run()
    finally:
        stop.set()
        ticker.join(10)
        accounts.close()
        log.info("desk.stopped")
