"""SensorHub: every serial sensor of a box, one reader thread per port.

    hub = SensorHub(config.sensors, profiles_dir, publish)
    hub.start()
    ...
    hub.snapshot()   # per-port state and counters, per-sensor latest values, position
    hub.stop()

Building a hub checks the sensors against their profiles and raises
``SensorConfigError`` naming each bad key; once
started, nothing on a port raises: trouble is counted, logged and retried.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from common.backoff import Backoff
from edge.sensors.channel import PublishFn, SensorChannel, SensorSnapshot
from edge.sensors.clock import SYSTEM_CLOCK, Clock
from edge.sensors.config import (
    AsciiSensorConfig,
    ModbusSensorConfig,
    NmeaSensorConfig,
    SensorConfig,
    check_sensor_list,
    group_by_port,
)
from edge.sensors.errors import ProfileError, SensorConfigError
from edge.sensors.lineworker import LineWorker
from edge.sensors.lines import ascii_parser
from edge.sensors.modbus import ModbusLinkFactory, RtuLink
from edge.sensors.nmea import NmeaParser, Position, PositionTracker
from edge.sensors.poller import ModbusPoller, PolledDevice
from edge.sensors.profiles import DeviceProfile, available_profiles, load_profile, profile_path
from edge.sensors.ratelog import RateLimitedLog
from edge.sensors.status import PortSnapshot, PortStatus
from edge.sensors.worker import PortWorker
from edge.serialport import PortOpener, open_serial_port

log = logging.getLogger("edge.sensors")


@dataclass(frozen=True, slots=True)
class HubSnapshot:
    """What the box health message needs: ports by device path, sensors by name, the box position."""

    ports: dict[str, PortSnapshot]
    sensors: dict[str, SensorSnapshot]
    position: Position | None

    def to_dict(self) -> dict:
        return {"ports": {p: s.to_dict() for p, s in self.ports.items()},
                "sensors": {n: s.to_dict() for n, s in self.sensors.items()},
                "position": self.position.to_dict() if self.position else None}


def load_sensor_profiles(sensors: Sequence[SensorConfig], profiles_dir: Path) -> dict[str, DeviceProfile]:
    """The profiles the Modbus sensors name, checked against their rules.

    Raises SensorConfigError with ``sensors.N.key: message`` lines (N is the
    sensor's place in the list); a broken profile file is reported under the
    ``profile`` key of the sensors that name it, with the file's own key path.
    """
    profiles: dict[str, DeviceProfile] = {}
    problems: list[str] = []
    for i, sensor in enumerate(sensors):
        if not isinstance(sensor, ModbusSensorConfig):
            continue
        if sensor.profile not in profiles:
            path = profile_path(profiles_dir, sensor.profile)
            if not path.is_file():
                known = ", ".join(available_profiles(profiles_dir)) or "none"
                problems.append(f"sensors.{i}.profile: no profile {sensor.profile!r} in {profiles_dir} "
                                f"(known: {known})")
                continue
            try:
                profiles[sensor.profile] = load_profile(path)
            except ProfileError as exc:
                problems.extend(f"sensors.{i}.profile: {exc.source}: {p}" for p in exc.problems)
                continue
        names = profiles[sensor.profile].value_names
        for j, rule in enumerate(sensor.rules):
            if rule.value not in names:
                problems.append(f"sensors.{i}.rules.{j}.value: {rule.value!r} is not a value of profile "
                                f"{sensor.profile!r} ({', '.join(names)})")
    if problems:
        raise SensorConfigError("sensors", problems)
    return profiles


def check_sensors(sensors: Sequence[SensorConfig], profiles_dir: Path) -> list[str]:
    """Every problem of the sensors with their profiles, for ``edge validate``; empty if none."""
    try:
        load_sensor_profiles(sensors, profiles_dir)
    except SensorConfigError as exc:
        return exc.problems
    return []


class SensorHub:
    """Reads every serial sensor of a box and hands readings and events to ``publish``.

    ``backoff`` spaces the attempts to reopen a port, ``down_after`` failed
    opens in a row mark it down, ``log_interval_s`` bounds how often one kind
    of trouble on one port is logged. A stopped hub stays stopped: for a new
    config, stop it and build another.
    """

    def __init__(self, sensors: Sequence[SensorConfig], profiles_dir: Path, publish: PublishFn, *,
                 clock: Clock = SYSTEM_CLOCK, backoff: Backoff = Backoff(), down_after: int = 5,
                 port_opener: PortOpener = open_serial_port, modbus_link: ModbusLinkFactory = RtuLink,
                 log_interval_s: float = 60.0) -> None:
        try:
            check_sensor_list(list(sensors))  # done already if they came through SensorList
        except ValueError as exc:
            raise SensorConfigError("sensors", [f"sensors: {exc}"]) from None
        self._profiles = load_sensor_profiles(sensors, profiles_dir)
        self._publish = publish
        self._clock = clock
        self._backoff = backoff
        self._down_after = down_after
        self._port_opener = port_opener
        self._modbus_link = modbus_link
        self._ratelog = RateLimitedLog(log, log_interval_s, clock.monotonic)
        self._channels: dict[str, SensorChannel] = {}
        self._position = PositionTracker()
        self._workers: list[PortWorker] = [self._worker_for(port, group)
                                           for port, group in group_by_port(list(sensors)).items()]
        self._started = False

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        for worker in self._workers:
            worker.start()
        log.info("sensor.hub_started ports=%d sensors=%d", len(self._workers), len(self._channels))

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop every reader; a reader stuck in a request is left to end on its own (daemon thread)."""
        for worker in self._workers:
            worker.request_stop()
        stuck = [w.status.port for w in self._workers if not w.join(timeout_s)]
        if stuck:
            log.warning("sensor.hub_stop_timeout ports=%s", ",".join(stuck))
        log.info("sensor.hub_stopped")

    def snapshot(self) -> HubSnapshot:
        return HubSnapshot(ports={w.status.port: w.status.snapshot() for w in self._workers},
                           sensors={n: c.snapshot() for n, c in self._channels.items()},
                           position=self._position.position)

    def position(self) -> Position | None:
        """The last fixed position from an NMEA sensor, if any."""
        return self._position.position

    def __enter__(self) -> SensorHub:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _worker_for(self, port: str, group: list[SensorConfig]) -> PortWorker:
        first = group[0]
        status = PortStatus(port, first.protocol, tuple(s.name for s in group), self._clock)
        if isinstance(first, ModbusSensorConfig):
            return self._modbus_poller(group, status)
        if isinstance(first, NmeaSensorConfig):
            parser = NmeaParser()
            channel = self._channel(first, status, watcher=self._position.update)
        else:
            assert isinstance(first, AsciiSensorConfig)
            parser = ascii_parser(first)
            channel = self._channel(first, status)
        return LineWorker(first.line_settings(), parser, channel, status, self._port_opener, self._clock,
                          self._backoff, self._ratelog, self._down_after)

    def _modbus_poller(self, group: list[SensorConfig], status: PortStatus) -> ModbusPoller:
        modbus = [s for s in group if isinstance(s, ModbusSensorConfig)]
        devices = [PolledDevice(s.unit, s.poll_s, self._profiles[s.profile], self._channel(s, status))
                   for s in modbus]
        # One link serves the bus; it waits as long as the slowest device on it may take.
        timeout_s = max(s.timeout_s for s in modbus)
        link_factory = partial(self._modbus_link, modbus[0].line_settings(), timeout_s)
        return ModbusPoller(link_factory, devices, status, self._clock, self._backoff, self._ratelog,
                            self._down_after)

    def _channel(self, sensor: SensorConfig, status: PortStatus,
                 watcher: Callable[[Mapping[str, float], int], None] | None = None) -> SensorChannel:
        channel = SensorChannel(sensor.name, sensor.publish_s, sensor.rules, self._publish, self._clock,
                                partial(self._publish_failed, status), watcher)
        self._channels[sensor.name] = channel
        return channel

    def _publish_failed(self, status: PortStatus, sensor: str, exc: Exception) -> None:
        status.count("publish_errors")
        self._ratelog.warning(f"{status.port}:publish", "sensor.publish_failed port=%s sensor=%s error=%r",
                              status.port, sensor, exc)
