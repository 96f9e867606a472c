"""Typed config of the serial sensors of a box: the ``[[sensors]]`` tables of a box config.

One table per sensor. Sensors on separate ports each get a reader thread;
Modbus devices may share one RS-485 port (one poller per port), nothing else
may. Unknown keys are refused and every error names its key path.

    [[sensors]]
    name = "bin-7"
    port = "/dev/ttyUSB0"
    protocol = "modbus"
    unit = 7
    profile = "ultrasonic-bin"
    poll_s = 30
    publish_s = 300

      [[sensors.rules]]
      event = "bin_overflow"
      value = "fill_pct"
      above = 90
      hysteresis = 5
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, model_validator

from common.validation import Strict
from contract import NAME_PATTERN
from edge.serialport import LineSettings

# Value and event names follow the SensorReading contract; an event name leaves
# room for the "_cleared" suffix of the message that ends an episode.
VALUE_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
EVENT_PATTERN = r"^[a-z][a-z0-9_]{0,55}$"
CLEARED_SUFFIX = "_cleared"

Name = Annotated[str, Field(pattern=NAME_PATTERN)]
ValueName = Annotated[str, Field(pattern=VALUE_PATTERN)]
EventName = Annotated[str, Field(pattern=EVENT_PATTERN)]

NMEA_VALUES = ("lat", "lon", "fix", "satellites", "altitude_m", "speed_mps", "course_deg")


def _known_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as 'Europe/Vienna')") from None
    return name


class TimeWindow(Strict):
    """A daily window of local time; it may run over midnight (22:00 to 06:00)."""

    start: time = Field(title="Start", description="Local time the window opens, 'HH:MM'.")
    end: time = Field(title="End", description="Local time the window closes, 'HH:MM' (before start: the next day).")
    timezone: Annotated[str, AfterValidator(_known_timezone)] = Field(
        title="Time zone", description="IANA time zone the times are in, e.g. 'Europe/Vienna'.")

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.start == self.end:
            raise ValueError("start and end are equal; leave the window out to watch all day")
        return self

    def contains(self, ts_ms: int) -> bool:
        """Whether the instant ``ts_ms`` (UTC epoch ms) falls in the window, in its time zone."""
        local = datetime.fromtimestamp(ts_ms / 1000, ZoneInfo(self.timezone)).time()
        start, end = self.start.replace(tzinfo=None), self.end.replace(tzinfo=None)  # "22:00+01:00" means 22:00 here
        if start < end:
            return start <= local < end
        return local >= start or local < end


class ThresholdRule(Strict):
    """Turns one value crossing a limit into an episode with a start event and, optionally, a clear event."""

    event: EventName = Field(title="Event",
                             description="Event published once when an episode starts, e.g. 'bin_overflow'.")
    value: ValueName = Field(title="Value", description="Name of the reading value the rule watches, e.g. 'fill_pct'.")
    above: float | None = Field(None, title="At or above",
                                description="An episode starts when the value is at or above this.")
    below: float | None = Field(None, title="At or below",
                                description="An episode starts when the value is at or below this.")
    hysteresis: float = Field(0.0, ge=0, title="Hysteresis",
                              description="How far back past the limit the value must go to end an episode.")
    hold_s: float = Field(0.0, ge=0, title="Hold",
                          description="Seconds a start or end condition must persist before it counts.")
    window: TimeWindow | None = Field(None, title="Active window",
                                      description="Only judge in this local time window; leaving it ends an episode.")
    report_clear: bool = Field(True, title="Report clear",
                               description="Publish '<event>_cleared' once when an episode ends.")

    @model_validator(mode="after")
    def _one_limit(self) -> Self:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of 'above' and 'below'")
        return self

    @property
    def cleared_event(self) -> str:
        return self.event + CLEARED_SUFFIX


class SensorBase(Strict):
    name: Name = Field(title="Name", description="Sensor name; the 'sensor' of its SensorReading messages.")
    port: str = Field(min_length=1, title="Port",
                      description="Serial device, e.g. '/dev/ttyUSB0' or a /dev/serial/by-id/ path.")
    baudrate: int = Field(9600, ge=50, le=4_000_000, title="Baud rate", description="Line speed in bit/s.")
    bytesize: Literal[5, 6, 7, 8] = Field(8, title="Data bits", description="Data bits per character.")
    parity: Literal["N", "E", "O"] = Field("N", title="Parity", description="'N'one, 'E'ven or 'O'dd.")
    stopbits: Literal[1, 2] = Field(1, title="Stop bits", description="Stop bits per character.")
    publish_s: float = Field(60.0, gt=0, title="Publish interval",
                             description="At most one reading message per this many seconds (the latest values); "
                                         "events go out at once.")
    rules: list[ThresholdRule] = Field(default_factory=list, title="Threshold rules",
                                       description="Rules that turn values into events.")

    @model_validator(mode="after")
    def _unique_rule_events(self) -> Self:
        events = [r.event for r in self.rules]
        repeated = sorted({e for e in events if events.count(e) > 1})
        if repeated:
            raise ValueError(f"rule events repeat: {', '.join(repeated)}")
        return self

    def line_settings(self) -> LineSettings:
        return LineSettings(self.port, self.baudrate, self.bytesize, self.parity, self.stopbits)

    def _rules_watch_only(self, known: set[str], what: str) -> None:
        for i, rule in enumerate(self.rules):
            if rule.value not in known:
                raise ValueError(f"rules.{i}.value: {rule.value!r} is not one of {what} ({', '.join(sorted(known))})")


class AsciiSensorConfig(SensorBase):
    """A device that prints text lines: ``pm2_5=12.1,pm10=20`` (kv) or ``12.1,20`` (csv)."""

    protocol: Literal["ascii"] = Field(title="Protocol", description="Text lines.")
    format: Literal["kv", "csv"] = Field("kv", title="Line format",
                                         description="'kv': key=value pairs; 'csv': values in fixed columns.")
    columns: list[ValueName | Literal[""]] = Field(
        default_factory=list, title="CSV columns",
        description="csv only: the value name of each column, '' to skip a column.")
    delimiter: str = Field(",", min_length=1, max_length=1, title="CSV delimiter",
                           description="csv only: the character between columns.")
    rename: dict[str, ValueName] = Field(
        default_factory=dict, title="Key names",
        description="kv only: device key -> value name, for keys that are not value names already (e.g. 'PM2.5').")

    @model_validator(mode="after")
    def _format_fits(self) -> Self:
        if self.format == "csv":
            named = [c for c in self.columns if c]
            if not named:
                raise ValueError("format 'csv' needs 'columns' naming at least one column")
            repeated = sorted({c for c in named if named.count(c) > 1})
            if repeated:
                raise ValueError(f"columns repeat: {', '.join(repeated)}")
            self._rules_watch_only(set(named), "the columns")
        elif self.columns:
            raise ValueError("'columns' is for format 'csv'; kv lines name their values")
        return self


class NmeaSensorConfig(SensorBase):
    """A GNSS receiver speaking NMEA 0183; its GGA and RMC sentences give the box position."""

    protocol: Literal["nmea"] = Field(title="Protocol", description="NMEA 0183 sentences.")
    baudrate: int = Field(4800, ge=50, le=4_000_000, title="Baud rate", description="Line speed in bit/s (NMEA: 4800).")

    @model_validator(mode="after")
    def _rules_use_nmea_values(self) -> Self:
        self._rules_watch_only(set(NMEA_VALUES), "the NMEA values")
        return self


class ModbusSensorConfig(SensorBase):
    """A Modbus RTU device polled for the registers its profile describes."""

    protocol: Literal["modbus"] = Field(title="Protocol", description="Modbus RTU.")
    unit: int = Field(ge=1, le=247, title="Unit id", description="Modbus device address on the bus, 1..247.")
    profile: Name = Field(title="Profile",
                          description="Device profile: a file '<profile>.toml' in the profiles folder.")
    poll_s: float = Field(10.0, gt=0, title="Poll interval", description="Seconds between polls of this device.")
    timeout_s: float = Field(1.0, gt=0, le=10, title="Reply timeout", description="Seconds to wait for a reply.")


SensorConfig = Annotated[AsciiSensorConfig | NmeaSensorConfig | ModbusSensorConfig, Field(discriminator="protocol")]


def check_sensor_list(sensors: list[SensorConfig]) -> list[SensorConfig]:
    """Sensor names are unique, and only Modbus devices with one line setting share a port."""
    names = [s.name for s in sensors]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"sensor names repeat: {', '.join(repeated)}")
    for port, group in group_by_port(sensors).items():
        _check_shared_port(port, group)
    return sensors


def _check_shared_port(port: str, group: list[SensorConfig]) -> None:
    if len(group) == 1:
        return
    names = ", ".join(s.name for s in group)
    if any(s.protocol != "modbus" for s in group):
        raise ValueError(f"port {port} is used by {names}; only Modbus devices can share a port")
    if len({s.line_settings() for s in group}) > 1:
        raise ValueError(f"port {port} is shared by {names} with different baudrate/bytesize/parity/stopbits")
    units = [s.unit for s in group if isinstance(s, ModbusSensorConfig)]
    repeated = sorted({u for u in units if units.count(u) > 1})
    if repeated:
        raise ValueError(f"port {port}: unit ids repeat: {', '.join(map(str, repeated))}")


def group_by_port(sensors: list[SensorConfig]) -> dict[str, list[SensorConfig]]:
    """Sensors by port, in config order: one reader thread each."""
    groups: dict[str, list[SensorConfig]] = {}
    for sensor in sensors:
        groups.setdefault(sensor.port, []).append(sensor)
    return groups


SensorList = Annotated[list[SensorConfig], AfterValidator(check_sensor_list)]
