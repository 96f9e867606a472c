"""The reader of a Modbus RTU port: polls each device on it per its profile."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from common.backoff import Backoff
from edge.sensors.channel import SensorChannel
from edge.sensors.clock import Clock
from edge.sensors.errors import ModbusError
from edge.sensors.modbus import ModbusLink
from edge.sensors.profiles import DeviceProfile
from edge.sensors.ratelog import RateLimitedLog
from edge.sensors.registers import ReadBlock, decode_profile, plan_reads, table_from_blocks
from edge.sensors.status import PortStatus
from edge.sensors.worker import TICK_S, PortWorker


@dataclass
class PolledDevice:
    """One Modbus device on the port: where it answers, what it holds, where its readings go."""

    unit: int
    poll_s: float
    profile: DeviceProfile
    channel: SensorChannel
    blocks: list[ReadBlock] = field(init=False)
    next_poll: float = 0.0

    def __post_init__(self) -> None:
        self.blocks = plan_reads(self.profile.registers)


class ModbusPoller(PortWorker):
    def __init__(self, link_factory: Callable[[], ModbusLink], devices: list[PolledDevice], status: PortStatus,
                 clock: Clock, backoff: Backoff, ratelog: RateLimitedLog, down_after: int) -> None:
        super().__init__(status, backoff, ratelog, down_after)
        self._link_factory = link_factory
        self._devices = devices
        self._clock = clock
        self._link: ModbusLink | None = None

    def _open(self) -> None:
        link = self._link_factory()
        link.open()
        self._link = link

    def _close(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None

    def _serve(self) -> None:
        start = self._clock.monotonic()
        for device in self._devices:
            device.next_poll = start
        while not self._stopping.is_set():
            for device in self._devices:
                if self._clock.monotonic() >= device.next_poll and not self._stopping.is_set():
                    self._poll(device)
                    device.next_poll = self._clock.monotonic() + device.poll_s
                device.channel.flush_due()
            next_due = min(d.next_poll for d in self._devices) - self._clock.monotonic()
            self._stopping.wait(min(max(next_due, 0.0), TICK_S))

    def _poll(self, device: PolledDevice) -> None:
        assert self._link is not None
        ts_ms = self._clock.now_ms()
        try:
            answers = {block: self._link.read(block, device.unit) for block in device.blocks}
        except ModbusError as exc:
            self.status.count(exc.counter)
            self._ratelog.warning(f"{self.status.port}:{device.unit}:{exc.counter}",
                                  "sensor.modbus_failed port=%s sensor=%s unit=%d kind=%s error=%s",
                                  self.status.port, device.channel.name, device.unit, exc.counter, exc)
            return
        values, invalid = decode_profile(device.profile, table_from_blocks(answers))
        if invalid:
            self.status.count("bad_values", len(invalid))
            self._ratelog.warning(f"{self.status.port}:{device.unit}:bad_values",
                                  "sensor.modbus_bad_values port=%s sensor=%s unit=%d values=%s",
                                  self.status.port, device.channel.name, device.unit, ",".join(invalid))
        self.status.count("polls")
        if values:
            device.channel.accept(values, ts_ms)
