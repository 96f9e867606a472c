"""Serial ports for the sensor readers; the one module of the box that imports pyserial.

A reader opens a port with a ``PortOpener`` (``open_serial_port`` on a box; a
test may pass another) and talks to it through the small ``Port`` interface:
read a line, read bytes, write, close. A read that times out is not an error:
it returns what arrived, maybe nothing. Errors form a small tree::

    SerialPortError            anything wrong with a port
    ├── PortUnavailable        it cannot be opened (missing, busy, no permission, bad settings)
    └── PortGone               it was open and went away (unplugged, pty closed)

pymodbus's RTU client opens its port through pyserial on its own;
``edge.sensors.modbus`` maps its errors onto the same tree.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, Protocol

import serial

Parity = Literal["N", "E", "O"]


class SerialPortError(Exception):
    """A serial port cannot be used; ``port`` names it."""

    def __init__(self, port: str, reason: str) -> None:
        super().__init__(f"{port}: {reason}")
        self.port = port
        self.reason = reason


class PortUnavailable(SerialPortError):
    """The port cannot be opened: missing, busy, no permission, or settings it refuses."""


class PortGone(SerialPortError):
    """The port was open and went away: a USB adapter unplugged, a pty closed."""


@dataclass(frozen=True, slots=True)
class LineSettings:
    """Where a port is and how its line is framed."""

    port: str
    baudrate: int = 9600
    bytesize: int = 8
    parity: Parity = "N"
    stopbits: float = 1


@dataclass(frozen=True, slots=True)
class Line:
    """Bytes read up to a newline (without it), or ``truncated`` when no newline came in time."""

    data: bytes
    truncated: bool = False


class Port(Protocol):
    """What a reader needs from an open port."""

    @property
    def name(self) -> str: ...

    def read_line(self, timeout_s: float) -> Line | None:
        """The next line, or None when none completed within the timeout."""

    def read(self, size: int, timeout_s: float) -> bytes:
        """Up to ``size`` bytes, fewer (maybe none) when the timeout passes first."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


PortOpener = Callable[[LineSettings], Port]

# How long one blocking pyserial read may take; bounds how late a deadline is noticed.
_POLL_S = 0.05
_CHUNK = 4096


class SerialPort:
    """A pyserial port behind the ``Port`` interface, with its own line buffer.

    Lines are split on ``\\n`` (a trailing ``\\r`` is dropped). A run of more
    than ``max_line_bytes`` without a newline comes back in truncated pieces,
    up to and including the piece that ends at its newline, so a stream of
    garbage cannot grow the buffer and the tail of a garbled line is never
    taken for a line of its own.
    """

    def __init__(self, device: serial.Serial, settings: LineSettings, max_line_bytes: int) -> None:
        self._device = device
        self._settings = settings
        self._max_line_bytes = max_line_bytes
        self._buffer = bytearray()
        self._in_overlong = False  # the rest of an over-long line, up to its newline, is no line either

    @classmethod
    def open(cls, settings: LineSettings, *, write_timeout_s: float = 1.0, max_line_bytes: int = 1024) -> SerialPort:
        try:
            device = serial.Serial(
                port=settings.port, baudrate=settings.baudrate, bytesize=settings.bytesize,
                parity=settings.parity, stopbits=settings.stopbits, timeout=_POLL_S,
                write_timeout=write_timeout_s, exclusive=True)
        except (OSError, ValueError) as exc:
            raise PortUnavailable(settings.port, _describe(exc)) from None
        port = cls(device, settings, max_line_bytes)
        try:
            with port._translating_errors():
                device.reset_input_buffer()  # bytes queued before we opened belong to nobody
        except PortGone:
            port.close()
            raise
        return port

    @property
    def name(self) -> str:
        return self._settings.port

    def read_line(self, timeout_s: float) -> Line | None:
        deadline = time.monotonic() + timeout_s
        while True:
            line = self._take_line()
            if line is not None:
                return line
            if time.monotonic() >= deadline:
                return None
            self._fill_buffer()

    def read(self, size: int, timeout_s: float) -> bytes:
        deadline = time.monotonic() + timeout_s
        while len(self._buffer) < size and time.monotonic() < deadline:
            self._fill_buffer()
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def write(self, data: bytes) -> None:
        try:
            self._device.write(data)
            self._device.flush()
        except serial.SerialTimeoutException:  # an OSError too, but the port is still there
            raise SerialPortError(self.name, "write timed out") from None
        except OSError as exc:
            raise PortGone(self.name, _describe(exc)) from None

    def close(self) -> None:
        try:
            self._device.close()
        except OSError:
            pass  # closing a port that already vanished

    def _fill_buffer(self) -> None:
        with self._translating_errors():
            waiting = self._device.in_waiting
            self._buffer += self._device.read(min(max(1, waiting), _CHUNK))

    def _take_line(self) -> Line | None:
        while True:
            newline = self._buffer.find(b"\n")
            if 0 <= newline <= self._max_line_bytes:
                data = bytes(self._buffer[:newline])
                del self._buffer[:newline + 1]
                tail_of_overlong, self._in_overlong = self._in_overlong, False
                if not tail_of_overlong:
                    return Line(data.removesuffix(b"\r"))
                if data:
                    return Line(data, truncated=True)
                continue
            if len(self._buffer) > self._max_line_bytes:
                data = bytes(self._buffer[:self._max_line_bytes])
                del self._buffer[:self._max_line_bytes]
                self._in_overlong = True
                return Line(data, truncated=True)
            return None

    @contextmanager
    def _translating_errors(self) -> Iterator[None]:
        """An OSError during I/O means the port went away (pyserial's SerialException is one)."""
        try:
            yield
        except OSError as exc:
            raise PortGone(self.name, _describe(exc)) from None


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def open_serial_port(settings: LineSettings) -> Port:
    """The box's ``PortOpener``: a real serial device (or pty) through pyserial."""
    return SerialPort.open(settings)
