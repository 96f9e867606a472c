"""The life of one port's reader thread: open, serve, and on trouble wait and open again.

A subclass says how to open (raising ``PortUnavailable``), serve until told
to stop (raising ``PortGone`` when the port vanishes) and close. The loop
counts and logs each failure, keeps the port's state, and waits the backoff's
delay between attempts; nothing that goes wrong on a port ends the thread.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod

from common.backoff import Backoff
from edge.sensors.ratelog import RateLimitedLog
from edge.sensors.status import PortState, PortStatus
from edge.serialport import PortGone, SerialPortError

log = logging.getLogger("edge.sensors")

# Longest a reader blocks before it looks at the stop flag and due publications.
TICK_S = 0.2


class PortWorker(ABC):
    def __init__(self, status: PortStatus, backoff: Backoff, ratelog: RateLimitedLog, down_after: int) -> None:
        self.status = status
        self._backoff = backoff
        self._ratelog = ratelog
        self._down_after = down_after
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @abstractmethod
    def _open(self) -> None:
        """Open the port; raise PortUnavailable if it cannot be."""

    @abstractmethod
    def _serve(self) -> None:
        """Read until ``self._stopping`` is set; raise PortGone if the port vanishes."""

    @abstractmethod
    def _close(self) -> None: ...

    def start(self) -> None:
        name = f"sensor-port-{self.status.port.rsplit('/', 1)[-1]}"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        self._stopping.set()

    def join(self, timeout_s: float) -> bool:
        """Wait for the thread to end; True if it did."""
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            failures = self._attempt(failures)
            # Even after a loss wait one step: an adapter that flaps must not spin this loop.
            self._stopping.wait(self._backoff.delay(max(failures, 1)))
        self.status.set_state(PortState.STOPPED)
        log.info("sensor.port_stopped port=%s", self.status.port)

    def _attempt(self, failures: int) -> int:
        """One open-and-serve; the count of failed opens in a row afterwards."""
        port = self.status.port
        try:
            self._open()
        except SerialPortError as exc:  # PortUnavailable, or gone again while opening
            failures += 1
            self.status.count("open_failures")
            state = PortState.DOWN if failures >= self._down_after else PortState.RECONNECTING
            self.status.set_state(state, exc.reason)
            self._ratelog.warning(f"{port}:open", "sensor.port_unavailable port=%s attempt=%d state=%s error=%s",
                                  port, failures, state.value, exc.reason)
            return failures
        except Exception as exc:  # a bug must not end the reader
            self._close()
            return self._internal_error(exc, failures + 1)
        self.status.set_state(PortState.OPEN)
        log.info("sensor.port_open port=%s protocol=%s sensors=%s", port, self.status.protocol,
                 ",".join(self.status.sensors))
        try:
            self._serve()
            return 0
        except PortGone as exc:
            self.status.count("disconnects")
            self.status.set_state(PortState.RECONNECTING, exc.reason)
            self._ratelog.warning(f"{port}:gone", "sensor.port_gone port=%s error=%s", port, exc.reason)
            return 0
        except Exception as exc:
            return self._internal_error(exc, 1)
        finally:
            self._close()

    def _internal_error(self, exc: Exception, failures: int) -> int:
        self.status.count("internal_errors")
        self.status.set_state(PortState.RECONNECTING, f"internal error: {exc!r}")
        log.exception("sensor.reader_error port=%s error=%r", self.status.port, exc)
        return failures
