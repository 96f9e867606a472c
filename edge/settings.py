"""What one camera's pipeline reads, as one immutable snapshot.

The box builds a snapshot per camera from its validated config. A live
config change builds new snapshots and swaps them in whole; each camera
thread takes its snapshot at the start of a frame and, when it is a new one,
hands it to its pipeline's stages (``reconfigure``) before the frame. No
stage has its fields written from another thread, and a frame never sees
half of a change.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.config import BoxConfig, CameraConfig, RulesConfig, StaticObjectConfig, TrackerConfig


@dataclass(frozen=True)
class CameraSettings:
    camera: CameraConfig
    rules: RulesConfig
    static_objects: StaticObjectConfig
    tracker: TrackerConfig


def camera_settings(config: BoxConfig) -> dict[str, CameraSettings]:
    """One snapshot per camera of the box, by camera name."""
    return {camera.name: CameraSettings(camera, config.rules, config.static_objects, config.tracker)
            for camera in config.cameras}
