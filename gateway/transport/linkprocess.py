"""The gateway's MQTT link in a process of its own.

Reading TLS records and MQTT packets is a fifth of what the gateway's one
interpreter lock is held for in a drain, and every socket read hands the lock
back and forth between paho's thread and the ingest. So ``gateway run`` keeps
its ``GatewayLink`` in a child process, and the ingest sees the same calls
(``start``, ``ack_all``, ``publish``, ``stop``) through ``LinkProcess``:

    child: GatewayLink --events--> parent: reader thread -> on_messages (the ingest's inbox)
    parent: ack_all / publish --commands--> child: GatewayLink

* Events, child to parent: the messages of each socket read as one pickled
  set of columns (cheap to pickle and to unpickle, unlike a list of named
  tuples), and "the broker holds no session of ours".
* Commands, parent to child: acknowledge these MQTT ids, publish this, stop.
  They run in the order sent, so a confirmation published after an
  acknowledgement leaves after it, as in one process.
* Blocking in ``on_messages`` holds back the child's reads, and so the
  broker, as it does in one process: the event pipe is small.
* The child ends with the gateway (killed when its parent dies, stopped when
  the command pipe closes); if it ends on its own, ``failed`` is set and
  ``on_ended`` is called.
  Nothing is acknowledged that was not stored, so nothing is lost either way.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import signal
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from common.broker import Credentials
from common.logs import configure_logging
from common.processes import die_with_parent, first_word
from gateway.transport.incoming import Incoming, mids_by_qos
from gateway.transport.link import GatewayLink

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
_MESSAGES, _SESSION_LOST, _READY, _FAILED = b"M", b"S", b"R", b"E"


@dataclass(frozen=True)
class LinkSpec:
    """What the child needs to make its ``GatewayLink``."""

    url: str
    client_id: str
    subscriptions: list[str]
    credentials: Credentials
    receive_maximum: int
    fast: bool | None


class LinkProcess:
    """A ``GatewayLink`` in a child process, seen from the ingest."""

    def __init__(self, url: str, client_id: str, subscriptions: list[str],
                 on_messages: Callable[[list[Incoming]], None], *, credentials: Credentials = Credentials(),
                 receive_maximum: int = 1000, fast: bool | None = None,
                 on_session_lost: Callable[[], None] = lambda: None,
                 on_ended: Callable[[], None] = lambda: None) -> None:
        self._spec = LinkSpec(url, client_id, list(subscriptions), credentials, receive_maximum, fast)
        self._on_messages = on_messages
        self._on_session_lost = on_session_lost
        self._on_ended = on_ended
        self._context = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._events: Connection | None = None
        self._commands: Connection | None = None
        self._send_lock = threading.Lock()   # commands come from the ingest's thread and the writer's reports
        self._reader: threading.Thread | None = None
        self._stopping = False
        self.failed = False   # the child ended without being asked to

    def start(self) -> None:
        """Start the child and wait until its link is made; raises RuntimeError if it could not be."""
        events_in, events_out = self._context.Pipe(duplex=False)
        commands_in, commands_out = self._context.Pipe(duplex=False)
        self._process = self._context.Process(
            target=_link_main, name="mqtt-link", daemon=True,
            args=(self._spec, logging.getLogger().level, os.getpid(), events_out, commands_in))
        self._process.start()
        events_out.close()
        commands_in.close()
        self._events, self._commands = events_in, commands_out
        first = first_word(self._process, self._events, "MQTT link process", START_TIMEOUT_S)
        if first[:1] == _FAILED:
            self._process.join(5)
            raise RuntimeError(first[1:].decode(errors="replace"))
        self._reader = threading.Thread(target=self._read_events, name="mqtt-link-events", daemon=True)
        self._reader.start()
        log.info("mqtt.link_process_started pid=%d", self._process.pid)

    def ack_all(self, messages: Iterable[Incoming]) -> None:
        qos1, qos2 = mids_by_qos(messages)
        if qos1 or qos2:
            self._command(("ack", qos1, qos2))

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        self._command(("publish", topic, payload, qos, retain))

    def stop(self) -> None:
        """Disconnect (after every command sent before) and end the child."""
        if self._process is None:
            return
        self._stopping = True
        self._command(None)
        self._process.join(STOP_TIMEOUT_S)
        if self._process.is_alive():
            log.warning("mqtt.link_process_stop_timeout: killing it")
            self._process.kill()
            self._process.join()
        if self._reader is not None:
            self._reader.join(STOP_TIMEOUT_S)
        self._commands.close()

    def _command(self, command: tuple | None) -> None:
        with self._send_lock:
            try:
                self._commands.send_bytes(pickle.dumps(command, protocol=5))
            except OSError:
                pass   # the child is gone; the reader thread reports it, and the broker keeps what was not acked

    def _read_events(self) -> None:
        try:
            while True:
                try:
                    event = self._events.recv_bytes()
                except (EOFError, OSError):
                    return
                kind = event[:1]
                if kind == _MESSAGES and not self._stopping:   # once stopping, unacknowledged: the broker keeps them
                    self._on_messages(list(map(Incoming, *pickle.loads(memoryview(event)[1:]))))
                elif kind == _SESSION_LOST:
                    self._on_session_lost()
        finally:
            if not self._stopping:
                self.failed = True
                log.error("mqtt.link_process_ended exit_code=%s", self._process.exitcode)
                self._on_ended()


# --------------------------------------------------------------------------- the child process, inside


def _link_main(spec: LinkSpec, log_level: int, parent_pid: int, events: Connection, commands: Connection) -> None:
    die_with_parent(parent_pid, "gateway-mqtt")
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C reaches the whole group; the ingest decides
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # likewise: the ingest stops the link once the writer is done
    configure_logging(log_level)
    # Events go out from one thread at a time: this one until the link starts, then paho's network thread alone
    # (messages and the session callback both come from it).
    send = events.send_bytes

    def on_messages(messages: list[Incoming]) -> None:
        send(_MESSAGES + pickle.dumps(tuple(zip(*messages)), protocol=5))

    try:
        link = GatewayLink(spec.url, spec.client_id, spec.subscriptions, on_messages,
                           credentials=spec.credentials, receive_maximum=spec.receive_maximum, fast=spec.fast,
                           on_session_lost=lambda: send(_SESSION_LOST))
    except Exception as exc:   # a bad CA file, say: the parent reports it and exits
        send(_FAILED + f"MQTT link not made: {exc}".encode())
        return
    send(_READY)
    link.start()
    try:
        _obey(link, commands)
    finally:
        link.stop()


def _obey(link: GatewayLink, commands: Connection) -> None:
    while True:
        try:
            command = pickle.loads(commands.recv_bytes())
        except (EOFError, OSError):
            return   # the gateway is gone
        if command is None:
            return
        if command[0] == "ack":
            link.ack_ids(command[1], command[2])
        elif command[0] == "publish":
            _, topic, payload, qos, retain = command
            link.publish(topic, payload, qos=qos, retain=retain)
