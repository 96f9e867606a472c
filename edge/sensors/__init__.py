"""Serial sensors of a box: ASCII devices, NMEA receivers and Modbus RTU devices.

The box runtime builds a ``SensorHub`` from the ``[[sensors]]`` of its config
and a profiles folder, gives it a ``publish`` callback, and puts
``snapshot()`` into its health message. See ``hub``, ``config`` and
``profiles``; the error tree is drawn in ``errors``.
"""

from common.backoff import Backoff
from edge.sensors.channel import PublishFn, SensorSnapshot
from edge.sensors.config import (
    AsciiSensorConfig,
    ModbusSensorConfig,
    NmeaSensorConfig,
    SensorConfig,
    SensorList,
    ThresholdRule,
    TimeWindow,
)
from edge.sensors.errors import ProfileError, SensorConfigError, SensorError
from edge.sensors.hub import HubSnapshot, SensorHub, check_sensors, load_sensor_profiles
from edge.sensors.nmea import Position
from edge.sensors.profiles import DeviceProfile, load_profile
from edge.sensors.status import PortSnapshot, PortState

__all__ = [
    "AsciiSensorConfig", "Backoff", "DeviceProfile", "HubSnapshot", "ModbusSensorConfig", "NmeaSensorConfig",
    "PortSnapshot", "PortState", "Position", "ProfileError", "PublishFn", "SensorConfig", "SensorConfigError",
    "SensorError", "SensorHub", "SensorList", "SensorSnapshot", "ThresholdRule", "TimeWindow", "check_sensors",
    "load_profile", "load_sensor_profiles",
]
