"""The box process: cameras -> pipelines -> spool -> sender -> MQTT, plus health."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from edge.camera import CameraError, Frame, file_frames
from edge.config import BoxConfig, CameraConfig
from edge.contract import CameraHealth, Health, Kind, Topic
from edge.detectors import create_detector
from edge.messages import detection_message, new_message_id
from edge.mqtt import BoxLink, Credentials
from edge.pipeline import CameraPipeline, evidence_for
from edge.rules import RuleHit
from edge.sender import Sender
from edge.spool import Spool

log = logging.getLogger(__name__)


@dataclass
class CameraState:
    state: str = "running"
    frames: int = 0
    started: float = field(default_factory=time.monotonic)

    def fps(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.frames / elapsed if elapsed > 0 else 0.0


def read_password(config: BoxConfig) -> str | None:
    if config.mqtt.password_env:
        return os.environ.get(config.mqtt.password_env)
    if config.mqtt.password_file:
        return config.mqtt.password_file.read_text().splitlines()[0].strip()
    return None


class Box:
    """Runs every camera of a box until their sources end or ``stop()`` is called."""

    def __init__(self, config: BoxConfig, *, mqtt_url: str | None = None, spool_path: Path | None = None,
                 health_interval_s: float = 60.0) -> None:
        self.config = config
        self.config_hash = config.config_hash()
        self.health_interval_s = health_interval_s
        self.spool = Spool(spool_path or config.spool.path)
        self.sender = Sender(self.spool)
        credentials = Credentials(config.mqtt.username, read_password(config),
                                  str(config.mqtt.ca_file) if config.mqtt.ca_file else None)
        self.link = BoxLink(mqtt_url or config.mqtt.url, config.district, config.box, credentials=credentials,
                            keepalive_s=config.mqtt.keepalive_s, on_ack=self.sender.acknowledge)
        self.sender.attach(self.link)
        self.detector = create_detector(config.detector.model, family=config.detector.type,
                                        threads=config.detector.threads, min_score=config.detector.min_score,
                                        nms_iou=config.detector.nms_iou)
        self.cameras = {c.name: CameraState() for c in config.cameras}
        self._pipelines = {c.name: CameraPipeline(c, config.rules, self.detector, config.static_objects)
                           for c in config.cameras}
        self._stop = threading.Event()
        self._detector_lock = threading.Lock()
        self.started = time.monotonic()
        self.incidents = 0

    def run(self) -> None:
        self.link.start()
        self.sender.start()
        threads = [threading.Thread(target=self._run_camera, args=(c,), name=f"camera-{c.name}")
                   for c in self.config.cameras]
        for thread in threads:
            thread.start()
        next_health = time.monotonic()
        while any(t.is_alive() for t in threads) and not self._stop.is_set():
            if time.monotonic() >= next_health:
                self._spool_health()
                next_health = time.monotonic() + self.health_interval_s
            self._stop.wait(0.2)
        for thread in threads:
            thread.join()
        self._spool_health()

    def stop(self) -> None:
        self._stop.set()

    def close(self, drain_timeout_s: float = 30.0) -> bool:
        """Try to deliver what is spooled, then disconnect; True if nothing is left."""
        delivered = self.link.wait_connected(min(drain_timeout_s, 10)) and self.sender.drain(drain_timeout_s)
        if not delivered:
            log.warning("box.spool_not_empty depth=%d (kept on disk for the next start)", self.spool.depth())
        self.sender.stop()
        self.link.stop()
        self.spool.close()
        return delivered

    def _run_camera(self, camera: CameraConfig) -> None:
        name = camera.name
        state = self.cameras[name]
        pipeline = self._pipelines[name]
        last: Frame | None = None
        try:
            for frame in file_frames(name, camera.source, camera.fps, realtime=camera.realtime, loop=camera.loop):
                if self._stop.is_set():
                    break
                with self._detector_lock:  # one onnxruntime session serves every camera
                    result = pipeline.process(frame)
                state.frames += 1
                last = frame
                for hit in result.hits:
                    self._spool_hit(hit, frame)
        except CameraError as exc:
            log.error("camera.unavailable camera=%s error=%s", name, exc)
            state.state = "down"
            return
        if last is not None:
            for hit in pipeline.finish(last.t_s):
                self._spool_hit(hit, last)
        state.state = "ended"

    def _spool_hit(self, hit: RuleHit, frame: Frame) -> None:
        message_id = new_message_id()
        evidence_sha = None
        if hit.event == "new":
            evidence = evidence_for(hit, frame, self.config.evidence_jpeg_quality)
            evidence_sha = evidence.sha256
            topic = Topic(self.config.district, self.config.box, Kind.EVIDENCE, message_id)
            self.spool.append_raw(str(topic), evidence.jpeg)
        topic = str(Topic(self.config.district, self.config.box, Kind.DETECTION))

        def build(seq: int) -> bytes:
            return detection_message(
                hit, message_id=message_id, box=self.config.box, district=self.config.district,
                camera=frame.camera, seq=seq, ts_ms=frame.ts_ms, frame_size=(frame.width, frame.height),
                model=self.detector.name, config_hash=self.config_hash, evidence_sha256=evidence_sha,
            ).encode()

        seq = self.spool.append(topic, build)
        self.sender.notify()
        self.incidents += hit.event == "new"
        log.info("incident.%s category=%s camera=%s zone=%s track=%d label=%s score=%.2f dwell_s=%.0f seq=%d",
                 hit.event, hit.category.value, frame.camera, hit.zone.name, hit.track_id, hit.label,
                 hit.score, hit.dwell_s, seq)

    def _spool_health(self) -> None:
        topic = str(Topic(self.config.district, self.config.box, Kind.HEALTH))
        cameras = {name: CameraHealth(state=s.state, fps=round(s.fps(), 2),
                                      detector_ms=round(self._pipelines[name].mean_detector_ms, 2))
                   for name, s in self.cameras.items()}

        depth, oldest_s = self.spool.depth(), round(self.spool.oldest_age_s(), 1)

        def build(seq: int) -> bytes:
            return Health(box=self.config.box, district=self.config.district, seq=seq,
                          ts=int(time.time() * 1000), uptime_s=round(time.monotonic() - self.started, 1),
                          config=self.config_hash, cameras=cameras, spool_depth=depth,
                          spool_oldest_s=oldest_s).encode()

        self.spool.append(topic, build, telemetry=True)
        self.sender.notify()
