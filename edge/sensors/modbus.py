"""Modbus RTU requests through pymodbus's serial client, with errors mapped onto this package's tree.

The poller sees a ``ModbusLink``: open, read a block of registers from a
unit, close. ``RtuLink`` is the real one; its failures become ``PortUnavailable``
(cannot open), ``PortGone`` (the port vanished), ``ModbusTimeout``,
``ModbusBadFrame`` (bytes came back but no frame with a valid CRC) or
``ModbusDeviceError`` (an exception reply).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Protocol

from pymodbus import FramerType
from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from edge.sensors.errors import ModbusBadFrame, ModbusDeviceError, ModbusTimeout
from edge.sensors.registers import ReadBlock
from edge.serialport import LineSettings, PortGone, PortUnavailable


class ModbusLink(Protocol):
    def open(self) -> None:
        """Open the port; raise PortUnavailable if it cannot be."""

    def read(self, block: ReadBlock, unit: int) -> list[int]:
        """The registers of ``block`` from device ``unit``; raise a ModbusError or PortGone."""

    def close(self) -> None: ...


ModbusLinkFactory = Callable[[LineSettings, float], ModbusLink]


def _quiet_pymodbus() -> None:
    # pymodbus logs every failed request at ERROR; the poller logs them rate-limited
    # with port and unit instead. An explicitly configured level is left alone.
    logger = logging.getLogger("pymodbus")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.CRITICAL)


class RtuLink:
    """pymodbus's serial RTU client on one port; one request at a time, no retries of its own."""

    def __init__(self, settings: LineSettings, timeout_s: float) -> None:
        _quiet_pymodbus()
        self._port = settings.port
        self._received = False
        self._client = ModbusSerialClient(
            settings.port, framer=FramerType.RTU, baudrate=settings.baudrate, bytesize=settings.bytesize,
            parity=settings.parity, stopbits=settings.stopbits, timeout=timeout_s, retries=0,
            trace_packet=self._note_packet)

    def open(self) -> None:
        if not self._client.connect():
            raise PortUnavailable(self._port, _why_unopenable(self._port))

    def read(self, block: ReadBlock, unit: int) -> list[int]:
        request = (self._client.read_holding_registers if block.function == "holding"
                   else self._client.read_input_registers)
        self._received = False
        try:
            reply = request(block.address, count=block.count, device_id=unit)
        except ConnectionException as exc:
            raise PortGone(self._port, str(exc)) from None
        except ModbusIOException:
            if self._received:
                raise ModbusBadFrame(f"unit {unit}: no valid reply frame (CRC error or garbled)") from None
            raise ModbusTimeout(f"unit {unit}: no reply") from None
        except ModbusException as exc:
            raise ModbusBadFrame(f"unit {unit}: {exc}") from None
        if reply.isError():
            code = getattr(reply, "exception_code", 0)
            raise ModbusDeviceError(f"unit {unit}: exception code {code} for {block.function} "
                                    f"{block.address}+{block.count}", code)
        registers = list(reply.registers)
        if len(registers) < block.count:
            raise ModbusBadFrame(f"unit {unit}: {len(registers)} registers, asked for {block.count}")
        return registers[:block.count]

    def close(self) -> None:
        try:
            self._client.close()
        except OSError:
            pass  # the port already vanished

    def _note_packet(self, sending: bool, data: bytes) -> bytes:
        if not sending and data:
            self._received = True
        return data


def _why_unopenable(port: str) -> str:
    # pymodbus only says that it failed; name the likely cause for the operator.
    if not os.path.exists(port):
        return "no such device"
    if not os.access(port, os.R_OK | os.W_OK):
        return "permission denied"
    return "cannot open (busy, or refuses the line settings)"
