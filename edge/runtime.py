"""The box process: cameras -> pipelines -> outbox (spool -> MQTT), plus health and live config.

A camera whose pixel zones do not fit its frame is an error found at its
first frame: that camera is closed and reported ``down`` with the reason in
the health message, and the other cameras go on. A live config change whose
pixel zones do not fit a camera's known frame size is rejected.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from common.backoff import Backoff
from edge.camera import Frame, open_camera
from edge.config import BoxConfig, CameraConfig
from contract import (
    MAX_REASON_CHARS,
    CameraHealth,
    ConfigAck,
    Health,
    Kind,
    Position,
    SensorReading,
    SerialPortHealth,
    Topic,
)
from edge.detectors import detector_for
from edge.detectors.base import Thresholds
from edge.messages import detection_message, new_message_id
from edge.outbox import Outbox
from edge.patchgate import AlreadyApplied, ChangeRefused, PatchGate
from edge.pipeline import CameraPipeline, evidence_for
from edge.remote import Decision, RemoteConfig
from edge.rules import RuleHit
from edge.sensors import SensorHub
from edge.settings import camera_settings
from edge.zones import ZoneOutsideFrame, frame_problems

log = logging.getLogger(__name__)


@dataclass
class CameraState:
    state: str = "running"
    reason: str = ""            # why the camera is down; empty in any other state
    frames: int = 0
    frame_size: tuple[int, int] | None = None   # (width, height) of its frames, once one came
    started: float = field(default_factory=time.monotonic)

    def fps(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.frames / elapsed if elapsed > 0 else 0.0

    def change(self, state: str, reason: str = "") -> None:
        """Only a down camera keeps its reason: it is what the health message says about it."""
        self.state = state
        self.reason = reason if state == "down" else ""

    def health(self, detector_ms: float) -> CameraHealth:
        reason = " ".join(self.reason.split())[:MAX_REASON_CHARS] or None
        return CameraHealth(state=self.state, fps=round(self.fps(), 2), detector_ms=round(detector_ms, 2),
                            reason=reason)


class Box:
    """Runs every camera of a box until their sources end or ``stop()`` is called."""

    def __init__(self, config: BoxConfig, *, file_table: dict | None = None, config_dir: Path | None = None,
                 mqtt_url: str | None = None, spool_path: Path | None = None,
                 health_interval_s: float = 60.0) -> None:
        spool_path = spool_path or config.spool.path
        self.remote = RemoteConfig(file_table or {}, config_dir or Path.cwd(),
                                   spool_path.with_name("remote-config.json"))
        self._lock = threading.RLock()   # one live config change at a time; cameras never take it
        self.config = config
        self.config_hash = config.config_hash()
        self.detector = None if config.detector is None else detector_for(config.detector)
        self.cameras = {c.name: CameraState() for c in config.cameras}
        self._settings = camera_settings(config)   # swapped whole by a live change, read per frame
        self._pipelines = {name: CameraPipeline.from_settings(settings, self.detector)
                           for name, settings in self._settings.items()}
        self.gate = PatchGate(config.remote_config, config.box, config.district,
                              spool_path.with_name("remote-config-counter.json"))
        if file_table is not None:
            self.gate.describe()
            remembered = self.remote.remembered() if self.gate.trusts_remembered() else None
            if remembered is None and self.remote.state_file.exists() and not self.gate.trusts_remembered():
                log.warning("config.remembered_change_ignored file=%s: not let through under this box's "
                            "[remote_config]; starting from the file config", self.remote.state_file)
            if remembered is not None and remembered.accepted:
                self._apply(remembered.config)
        self.config_topic = Topic(config.district, config.box, Kind.CONFIG)
        self.outbox = Outbox(spool_path, mqtt_url or config.mqtt.url, config.district, config.box,
                             credentials=config.mqtt.credentials(), keepalive_s=config.mqtt.keepalive_s,
                             max_bytes=int(config.spool.max_mb * 1024 * 1024), policy=config.spool.delivery(),
                             on_message=self._on_message,
                             subscriptions=(str(self.config_topic),) if file_table is not None else (),
                             signer=config.security.signer(), seal_every=config.security.seal_every,
                             seal_after_s=config.security.seal_after_s)
        self.sensors = SensorHub(config.sensors, config.sensor_profiles, self._put_sensor)
        self.health_interval_s = health_interval_s
        self._stop = threading.Event()
        self.started = time.monotonic()
        self.incidents = 0

    def run(self) -> None:
        self.outbox.start()
        self.sensors.start()
        threads = [threading.Thread(target=self._run_camera, args=(c,), name=f"camera-{c.name}")
                   for c in self.config.cameras]
        for thread in threads:
            thread.start()
        next_health = time.monotonic()
        # A box with sensors runs until stopped; a camera-only box until its sources end.
        while (self.config.sensors or any(t.is_alive() for t in threads)) and not self._stop.is_set():
            if time.monotonic() >= next_health:
                self._put_health()
                next_health = time.monotonic() + self.health_interval_s
            self._stop.wait(0.2)
        for thread in threads:
            thread.join()
        self.sensors.stop()
        self._put_health()

    def stop(self) -> None:
        self._stop.set()

    def close(self, drain_timeout_s: float = 30.0) -> bool:
        self.sensors.stop()
        return self.outbox.close(drain_timeout_s)

    # ----------------------------------------------------------------- cameras

    def _run_camera(self, camera: CameraConfig) -> None:
        """Feed one camera's frames through its pipeline; a failing source is reported, never fatal."""
        state = self.cameras[camera.name]
        pipeline = self._pipelines[camera.name]
        backoff = Backoff(first_s=camera.reconnect.first_s, max_s=camera.reconnect.max_s,
                          down_after=camera.reconnect.down_after)
        source = open_camera(camera.name, camera.source, camera.fps, realtime=camera.realtime, loop=camera.loop,
                             backoff=backoff, on_state=lambda change: state.change(change.state.value, change.reason),
                             stop=self._stop)
        state.state = source.state.value
        frames = source.frames()
        try:
            last = self._feed(camera.name, frames, state, pipeline)
        except ZoneOutsideFrame as exc:
            frames.close()  # first, so that the source's own 'ended' does not replace the reason below
            log.error("camera.zone_outside_frame camera=%s zone=%s frame=%dx%d points=%s", camera.name, exc.zone,
                      exc.width, exc.height, exc.points)
            state.change("down", str(exc))
            return
        if last is not None:
            for hit in pipeline.finish(last.t_s):
                self._put_hit(hit, last)

    def _feed(self, name: str, frames, state: CameraState, pipeline: CameraPipeline) -> Frame | None:
        """Pass frames through the pipeline and their hits to the outbox; the last frame."""
        last: Frame | None = None
        for frame in frames:
            state.frame_size = (frame.width, frame.height)
            settings = self._settings[name]
            if settings is not pipeline.settings:
                pipeline.reconfigure(settings)
            result = pipeline.process(frame)   # the shared onnxruntime session takes calls from several threads
            state.frames += 1
            last = frame
            for hit in result.hits:
                self._put_hit(hit, frame)
        return last

    def _put_hit(self, hit: RuleHit, frame: Frame) -> None:
        message_id = new_message_id()
        evidence_sha = None
        if hit.event == "new":
            evidence = evidence_for(hit, frame, self.config.evidence_jpeg_quality)
            evidence_sha = evidence.sha256
            self.outbox.put_raw(Topic(self.config.district, self.config.box, Kind.EVIDENCE, message_id),
                                evidence.jpeg, evidence=True)
        config_hash = self.config_hash

        def build(seq: int) -> bytes:
            return detection_message(
                hit, message_id=message_id, box=self.config.box, district=self.config.district,
                camera=frame.camera, seq=seq, ts_ms=frame.ts_ms, frame_size=(frame.width, frame.height),
                model=self.detector.name, config_hash=config_hash, evidence_sha256=evidence_sha,
            ).encode()

        seq = self.outbox.put(Topic(self.config.district, self.config.box, Kind.DETECTION), build)
        self.incidents += hit.event == "new"
        log.info("incident.%s category=%s camera=%s zone=%s track=%d label=%s score=%.2f dwell_s=%.0f seq=%d",
                 hit.event, hit.category.value, frame.camera, hit.zone.name, hit.track_id, hit.label,
                 hit.score, hit.dwell_s, seq)

    # ----------------------------------------------------------------- sensors

    def _put_sensor(self, sensor: str, values: dict[str, float], event: str | None, ts_ms: int) -> None:
        """Called from the sensor readers: readings are telemetry, events are kept like detections."""
        message_id = new_message_id()
        config_hash = self.config_hash

        def build(seq: int) -> bytes:
            return SensorReading(id=message_id, box=self.config.box, district=self.config.district, seq=seq,
                                 ts=ts_ms, sensor=sensor, values=values, event=event, config=config_hash).encode()

        self.outbox.put(Topic(self.config.district, self.config.box, Kind.SENSOR), build, telemetry=event is None)
        if event:
            log.info("sensor.event sensor=%s event=%s values=%s", sensor, event, values)

    # ----------------------------------------------------------------- health

    def _put_health(self) -> None:
        cameras = {name: s.health(self._pipelines[name].mean_detector_ms) for name, s in self.cameras.items()}
        depth, oldest_s = self.outbox.depth(), round(self.outbox.oldest_age_s(), 1)
        dropped = self.outbox.spool.dropped() or None
        config_hash = self.config_hash
        serial, position = self._sensor_health()
        delivery = self.outbox.delivery_health()

        def build(seq: int) -> bytes:
            return Health(box=self.config.box, district=self.config.district, seq=seq,
                          ts=int(time.time() * 1000), uptime_s=round(time.monotonic() - self.started, 1),
                          config=config_hash, cameras=cameras, spool_depth=depth,
                          spool_oldest_s=oldest_s, spool_dropped=dropped, serial=serial,
                          position=position, **delivery).encode()

        self.outbox.put(Topic(self.config.district, self.config.box, Kind.HEALTH), build, telemetry=True)

    def _sensor_health(self) -> tuple[list[SerialPortHealth] | None, Position | None]:
        if not self.config.sensors:
            return None, None
        snapshot = self.sensors.snapshot()
        serial = [SerialPortHealth(port=p.port, state=p.state.value, sensors=list(p.sensors), counters=p.counters)
                  for p in snapshot.ports.values()]
        fix = snapshot.position
        position = None if fix is None else Position(lat=fix.lat, lon=fix.lon, ts=fix.ts_ms)
        return serial, position

    # ----------------------------------------------------------------- live config

    def _on_message(self, topic: str, payload: bytes) -> None:
        if topic != str(self.config_topic):
            return
        if not payload:
            return  # a cleared retained config: nothing to apply
        try:
            opened = self.gate.open(payload)
        except AlreadyApplied:
            log.info("config.already_applied counter=%d", self.gate.counter)
            return
        except ChangeRefused as exc:
            opened, decision = None, Decision(None, str(exc))
        else:
            decision = self.remote.decide(opened.patch)
        with self._lock:  # no camera sets its zones up between the check and the change
            decision = self._fitting_frames(decision)
            if decision.accepted:
                self._apply(decision.config)
        if decision.accepted:
            self.remote.remember(opened.patch)
            self.gate.applied(opened)
            log.info("config.accepted hash=%s counter=%s key=%s reset=%s", self.config_hash, opened.counter,
                     opened.key, opened.reset)
        else:
            log.warning("config.rejected reason=%s", decision.reason[:300])
        ack = ConfigAck(box=self.config.box, ts=int(time.time() * 1000),
                        status="accepted" if decision.accepted else "rejected",
                        reason=decision.reason[:4096], config=self.config_hash)
        self.outbox.put_raw(Topic(self.config.district, self.config.box, Kind.CONFIG_ACK), ack.encode())

    def _fitting_frames(self, decision: Decision) -> Decision:
        """A change whose pixel zones do not fit a camera's frame is rejected, naming each zone."""
        if not decision.accepted:
            return decision
        sizes = {name: s.frame_size for name, s in self.cameras.items() if s.frame_size is not None}
        problems = frame_problems(decision.config.cameras, sizes)
        return Decision(None, "; ".join(problems)) if problems else decision

    def _apply(self, config: BoxConfig) -> None:
        """Switch to a validated config without a restart: new snapshots, swapped in whole.

        Each camera thread takes its new snapshot at the start of its next frame.
        """
        with self._lock:
            if self.detector is not None and config.detector is not None:
                self.detector.reconfigure(Thresholds(config.detector.min_score, config.detector.nms_iou))
            self._settings = camera_settings(config)
            self.config = config
            self.config_hash = config.config_hash()

