"""Errors of the serial-sensor package.

::

    SensorError
    ├── SensorConfigError    sensors, profiles and rules do not fit together; ``problems`` names each key
    ├── ProfileError         a device profile file is unreadable or invalid; ``problems`` names each key
    ├── LineRejected         one line from a port was not understood; ``reason`` is the counter it bumps
    └── ModbusError          one Modbus request got no usable answer
        ├── ModbusTimeout        nothing came back in time
        ├── ModbusBadFrame       bytes came back, but no frame with a valid CRC
        └── ModbusDeviceError    the device answered with a Modbus exception code

Port trouble is ``edge.serialport.SerialPortError`` (``PortUnavailable``,
``PortGone``). Only ``SensorConfigError`` escapes to the caller, when a hub
is built (it carries the problems of broken profiles too); the rest are
counted and logged by the port's reader.
"""

from __future__ import annotations


class SensorError(Exception):
    """Base of this package's errors."""


class _ProblemList(SensorError):
    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


class SensorConfigError(_ProblemList):
    """Sensor configs cannot run with the profiles at hand; ``problems`` are ``key.path: message`` lines."""


class ProfileError(_ProblemList):
    """A device profile cannot be used; ``problems`` are ``key.path: message`` lines."""


class LineRejected(SensorError):
    """A line was not understood; ``reason`` names the port counter it counts against."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class ModbusError(SensorError):
    """A Modbus request got no usable answer."""

    counter = "modbus_errors"


class ModbusTimeout(ModbusError):
    counter = "modbus_timeouts"


class ModbusBadFrame(ModbusError):
    counter = "modbus_bad_frames"


class ModbusDeviceError(ModbusError):
    counter = "modbus_exceptions"

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code
