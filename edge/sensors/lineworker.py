"""The reader of a port that sends text lines (ASCII devices, NMEA receivers)."""

from __future__ import annotations

from common.backoff import Backoff
from edge.sensors.channel import SensorChannel
from edge.sensors.clock import Clock
from edge.sensors.errors import LineRejected
from edge.sensors.lines import LineParser, decode_line
from edge.sensors.ratelog import RateLimitedLog
from edge.sensors.status import PortStatus
from edge.sensors.worker import TICK_S, PortWorker
from edge.serialport import Line, LineSettings, Port, PortOpener


class LineWorker(PortWorker):
    def __init__(self, settings: LineSettings, parser: LineParser, channel: SensorChannel, status: PortStatus,
                 opener: PortOpener, clock: Clock, backoff: Backoff, ratelog: RateLimitedLog, down_after: int) -> None:
        super().__init__(status, backoff, ratelog, down_after)
        self._settings = settings
        self._parser = parser
        self._channel = channel
        self._opener = opener
        self._clock = clock
        self._port: Port | None = None

    def _open(self) -> None:
        self._port = self._opener(self._settings)

    def _close(self) -> None:
        if self._port is not None:
            self._port.close()
            self._port = None

    def _serve(self) -> None:
        assert self._port is not None
        while not self._stopping.is_set():
            line = self._port.read_line(TICK_S)
            if line is not None:
                self._handle(line)
            self._channel.flush_due()

    def _handle(self, line: Line) -> None:
        ts_ms = self._clock.now_ms()
        try:
            text = decode_line(line)
            values = self._parser.parse(text) if text is not None else None
        except LineRejected as exc:
            self._reject(line, exc)
            return
        if text is None:
            return
        if values is None:
            self.status.count("ignored")
            return
        self.status.count("lines")
        self._channel.accept(values, ts_ms)

    def _reject(self, line: Line, exc: LineRejected) -> None:
        self.status.count(exc.reason)
        self.status.count("garbage_bytes", len(line.data))
        self._ratelog.warning(f"{self.status.port}:{exc.reason}",
                              "sensor.line_rejected port=%s sensor=%s reason=%s detail=%s",
                              self.status.port, self._channel.name, exc.reason, exc.detail)
