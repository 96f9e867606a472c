"""What a port's reader reports for the box health message: its state and its counters.

States:

- ``open``: the port is open and read (a Modbus device may still be silent;
  see the counters).
- ``reconnecting``: not open yet, or lost; the reader is trying again.
- ``down``: ``down_after`` attempts in a row failed; the reader keeps trying
  at its longest backoff.
- ``stopped``: the hub was stopped.

Counters only grow. Line ports count ``lines`` understood, ``ignored``
sentences of NMEA types the box does not use, rejected lines by reason
(``non_utf8``, ``unparseable``, ``overlong``, ``bad_checksum``) and the bytes
of rejected lines (``garbage_bytes``). Modbus ports count ``polls`` answered,
``modbus_timeouts``, ``modbus_bad_frames`` (CRC errors and garbled replies),
``modbus_exceptions`` (the device answered with an exception code) and
``bad_values`` (NaN or infinite registers). Every port counts ``disconnects``
(it went away while open), ``open_failures``, ``publish_errors`` (the publish
callback raised) and ``internal_errors`` (a bug in the reader, survived).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import StrEnum

from edge.sensors.clock import Clock


class PortState(StrEnum):
    OPEN = "open"
    RECONNECTING = "reconnecting"
    DOWN = "down"
    STOPPED = "stopped"


COMMON_COUNTERS = ("disconnects", "open_failures", "publish_errors", "internal_errors")
LINE_COUNTERS = ("lines", "ignored", "non_utf8", "unparseable", "overlong", "bad_checksum", "garbage_bytes")
MODBUS_COUNTERS = ("polls", "modbus_timeouts", "modbus_bad_frames", "modbus_exceptions", "bad_values")


def counters_for(protocol: str) -> tuple[str, ...]:
    return (MODBUS_COUNTERS if protocol == "modbus" else LINE_COUNTERS) + COMMON_COUNTERS


@dataclass(frozen=True, slots=True)
class PortSnapshot:
    port: str
    protocol: str
    sensors: tuple[str, ...]
    state: PortState
    state_age_s: float
    last_error: str
    counters: dict[str, int]

    def to_dict(self) -> dict:
        return {"port": self.port, "protocol": self.protocol, "sensors": list(self.sensors),
                "state": self.state.value, "state_age_s": round(self.state_age_s, 1),
                "last_error": self.last_error, "counters": dict(self.counters)}


class PortStatus:
    """State and counters of one port; written by its reader, read by anyone."""

    def __init__(self, port: str, protocol: str, sensors: tuple[str, ...], clock: Clock) -> None:
        self.port = port
        self.protocol = protocol
        self.sensors = sensors
        self._clock = clock
        self._lock = threading.Lock()
        self._state = PortState.RECONNECTING
        self._since = clock.monotonic()
        self._last_error = ""
        self._counters = dict.fromkeys(counters_for(protocol), 0)

    @property
    def state(self) -> PortState:
        return self._state

    def count(self, counter: str, amount: int = 1) -> None:
        with self._lock:
            self._counters[counter] = self._counters.get(counter, 0) + amount

    def set_state(self, state: PortState, error: str | None = None) -> None:
        with self._lock:
            if state is not self._state:
                self._state = state
                self._since = self._clock.monotonic()
            if error is not None:
                self._last_error = error

    def snapshot(self) -> PortSnapshot:
        with self._lock:
            return PortSnapshot(self.port, self.protocol, self.sensors, self._state,
                                self._clock.monotonic() - self._since, self._last_error, dict(self._counters))
