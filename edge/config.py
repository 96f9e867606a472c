"""Typed box configuration, read once from a TOML file under firmware_configs/.

Unknown keys are refused, every error names its key path, and relative paths
are resolved against the config file's folder. A loaded config is frozen: a
change (for example from the operator's ``config`` topic) builds a new one.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, ValidationError, model_validator

from common.broker import BrokerSettings
from common.validation import Strict, validation_problems
from contract import NAME_PATTERN, Category
from edge.detectors import registered_families
from edge.patchgate import RemoteConfigSettings
from edge.sensors.config import SensorList

CONFIG_VERSION = 1


class ConfigError(ValueError):
    """A box config cannot be used; ``problems`` lists ``key.path: message`` lines."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Point = tuple[float, float]


class MqttConfig(BrokerSettings):
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keepalive in seconds.")


class SecurityConfig(Strict):
    """The box's own key: it chains what the box sends and seals the chain head (contract.chain, SECURITY.md)."""

    signing_key_file: Path | None = Field(None, description=(
        "The box's own Ed25519 key (PEM, from `gateway provision-box`): chains and seals what the box sends "
        "(contract.chain). Without it messages go unchained, as from older firmware."))
    seal_every: int = Field(200, ge=1, le=100_000, description="Seal the chain head at least every this many messages.")
    seal_after_s: float = Field(0.2, gt=0, le=60, description=(
        "...and at most this long after the first message not yet sealed; a gateway that requires verified "
        "messages holds a detection until its seal, so this adds to a lead's latency."))

    def signer(self):
        """The box's signing key, or None without one (edge.chain)."""
        from common.signing import load_signer

        return None if self.signing_key_file is None else load_signer(self.signing_key_file)


class SpoolConfig(Strict):
    path: Path = Field(Path("spool.db"), description="SQLite file holding unsent messages and the seq counter.")
    max_mb: float = Field(512.0, gt=0, description="Size beyond which telemetry is dropped first.")
    resend_after_s: float = Field(60.0, gt=0, le=86400, description=(
        "A message the broker took and the gateway has not confirmed stored is sent again after this long; "
        "each further try waits twice as long, up to resend_max_s."))
    resend_max_s: float = Field(600.0, gt=0, le=86400, description="Longest wait between tries of one message.")
    resend_in_flight: int = Field(50, ge=1, le=10_000, description=(
        "Messages being sent again at most until a confirmation covers them (the oldest; others wait their turn)."))
    confirm_timeout_s: float = Field(600.0, ge=0, le=7 * 86400, description=(
        "A box that never heard a gateway confirmation frees messages on the broker's acknowledgement once one "
        "has waited this long (an older gateway); 0 always frees on the acknowledgement."))

    def delivery(self):
        """The sender's re-send and fallback policy."""
        from edge.sender import DeliveryPolicy

        return DeliveryPolicy(self.resend_after_s, max(self.resend_max_s, self.resend_after_s),
                              self.resend_in_flight, self.confirm_timeout_s)


# The detector types are the plugin families the registry found, so an unknown
# type fails validation at ``detector.type`` with the known ones listed, and a
# new plugin file is the only step to allow another. Every family takes the
# same settings today; a family with settings of its own would turn this into
# a discriminated union of per-plugin models.
DetectorType = Literal[tuple(registered_families())]  # type: ignore[valid-type]


class DetectorConfig(Strict):
    type: DetectorType = Field("nanodet", description="Detector plugin (see edge/detectors/).")
    model: Path = Field(description="ONNX model file; its model card sits next to it.")
    threads: int = Field(2, ge=1, le=64, description="onnxruntime intra-op threads.")
    min_score: float = Field(0.35, ge=0.0, le=1.0, description="Detections below this score are dropped.")
    nms_iou: float = Field(0.5, gt=0.0, le=1.0, description="IoU above which same-class boxes are merged.")


def _check_relative_polygon(polygon: list[Point], what: str) -> None:
    for i, (x, y) in enumerate(polygon):
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(f"{what} point {i} ({x}, {y}) is outside 0..1")


def _check_masks(masks: list[list[Point]]) -> None:
    for i, mask in enumerate(masks):
        if len(mask) < 3:
            raise ValueError(f"mask {i} needs at least 3 points")
        _check_relative_polygon(mask, f"mask {i}")


def _repeated(names: list[str]) -> list[str]:
    return sorted({n for n in names if names.count(n) > 1})


class ObjectFilter(Strict):
    """Which detections of a label count; per camera, and per zone overriding the camera's."""

    min_score: float = Field(0.0, ge=0, le=1, description="Detections scoring lower are dropped.")
    threshold: float = Field(0.0, ge=0, le=1, description="Median of a track's recent scores needed to report it.")
    min_area: float = Field(0.0, ge=0, le=1, description="Smallest box, as a fraction of the frame area.")
    max_area: float = Field(1.0, gt=0, le=1, description="Largest box, as a fraction of the frame area.")
    min_ratio: float = Field(0.0, ge=0, description="Smallest width / height of a box.")
    max_ratio: float = Field(100.0, gt=0, description="Largest width / height of a box.")
    masks: list[list[Point]] = Field(default_factory=list,
                                     description="Relative polygons where this label is ignored (bottom-centre inside).")

    @model_validator(mode="after")
    def _bounds_ordered(self) -> Self:
        if self.min_area > self.max_area:
            raise ValueError("min_area must not exceed max_area")
        if self.min_ratio > self.max_ratio:
            raise ValueError("min_ratio must not exceed max_ratio")
        _check_masks(self.masks)
        return self


class MotionConfig(Strict):
    """Run the detector only while something moves, and re-check still scenes periodically."""

    enabled: bool = True
    threshold: float = Field(20.0, gt=0, le=255, description="Grey-level change that counts as motion.")
    min_area: float = Field(0.0008, gt=0, lt=1, description="Share of the frame that must change to count as motion.")
    recheck_s: float = Field(5.0, gt=0, description="Seconds after which a still scene is detected again anyway.")
    masks: list[list[Point]] = Field(default_factory=list,
                                     description="Relative polygons whose motion is ignored (trees, screens, clocks).")

    @model_validator(mode="after")
    def _masks_in_frame(self) -> Self:
        _check_masks(self.masks)
        return self


class ZoneConfig(Strict):
    name: Name
    type: Literal["no_vending", "dumping_hotspot"] = Field(description="What the zone forbids.")
    polygon: list[Point] = Field(min_length=3, description="Vertices as [x, y]; relative 0..1 unless coords = 'pixel'.")
    coords: Literal["relative", "pixel"] = "relative"
    lat: float = Field(ge=-90, le=90, description="Latitude of the zone's real-world location.")
    lon: float = Field(ge=-180, le=180, description="Longitude of the zone's real-world location.")
    dwell_s: float | None = Field(None, gt=0, description="Overrides the rule's dwell time for this zone.")
    filters: dict[str, ObjectFilter] = Field(default_factory=dict,
                                             description="Per-label filters for objects in this zone.")

    @model_validator(mode="after")
    def _relative_points_in_frame(self) -> Self:
        if self.coords == "relative":
            for i, (x, y) in enumerate(self.polygon):
                if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                    raise ValueError(f"polygon point {i} ({x}, {y}) is outside 0..1 (set coords = 'pixel'?)")
        return self


class ReconnectConfig(Strict):
    """How a live camera that drops is reopened."""

    first_s: float = Field(0.5, gt=0, description="First wait before reopening.")
    max_s: float = Field(30.0, gt=0, description="Longest wait between attempts (the waits double up to it).")
    down_after: int = Field(5, ge=1, description="Failed attempts in a row before the camera is reported down.")


class CameraConfig(Strict):
    name: Name
    source: str = Field(description="Video file path, rtsp:// or http:// URL, or a USB device number.")
    fps: float = Field(5.0, gt=0, le=60, description="Frames per second the pipeline processes.")
    loop: bool = Field(False, description="Restart a video file at its end (demo and soak use).")
    motion: MotionConfig = Field(default_factory=MotionConfig)
    reconnect: ReconnectConfig = Field(default_factory=ReconnectConfig)
    filters: dict[str, ObjectFilter] = Field(default_factory=dict, description="Per-label filters for this camera.")
    realtime: bool = Field(True, description="Play a video file at the speed it was recorded, like a live camera.")
    zones: list[ZoneConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_zone_names(self) -> Self:
        duplicates = _repeated([z.name for z in self.zones])
        if duplicates:
            raise ValueError(f"zone names repeat: {', '.join(duplicates)}")
        return self


class DwellRuleConfig(Strict):
    enabled: bool = True
    labels: list[str] = Field(min_length=1, description="Model labels this rule watches.")
    dwell_s: float = Field(gt=0, description="Seconds an object must stay in the zone.")
    min_score: float = Field(0.4, ge=0, le=1, description="Median track score needed to report.")
    stationary_px: float = Field(0.04, gt=0, le=1, description="Max drift of the box's foot point, as a fraction of frame width.")
    update_s: float = Field(30.0, gt=0, description="At most one 'update' message per incident this often.")
    support_labels: list[str] = Field(default_factory=list,
                                      description="Labels that, seen in the same zone, raise an incident's score.")
    support_boost: float = Field(0.15, ge=0, le=1, description="Score added while a support label is in the zone.")
    leave_s: float = Field(2.0, ge=0, description="A stay ends when its object is seen outside the zone this long.")
    regain_s: float = Field(10.0, ge=0, description="A stay whose object the detector lost is taken up again by an "
                                                    "object found on the same spot within this time.")
    min_moves: int = Field(0, ge=0, description="Times the object must be seen to move in place (pixels changing "
                                                "within its box, a second apart) before it is reported; "
                                                "rejects fixed things taken for people. 0: no check.")


STATIC_OBJECT_LABEL = "static_object"


class StaticObjectConfig(Strict):
    """Class-agnostic left-object finder, run on cameras that have a dumping hotspot."""

    enabled: bool = True
    warmup_s: float = Field(5.0, gt=0, description="Seconds of frames whose median is the empty scene.")
    interval_s: float = Field(1.0, ge=0, description="Look for left objects this often; they change slowly.")
    long_tau_s: float = Field(600.0, gt=0, description="Time constant of the long-term scene model.")
    short_tau_s: float = Field(2.0, gt=0, description="Time constant of the short-term scene model.")
    diff_threshold: float = Field(22.0, gt=0, le=255, description="Grey-level difference that counts as change.")
    min_area: float = Field(0.0004, gt=0, lt=1, description="Smallest blob, as a fraction of the frame.")
    max_area: float = Field(0.05, gt=0, le=1, description="Largest blob, as a fraction of the frame.")
    base_score: float = Field(0.5, ge=0, le=1, description="Score of a blob no detector label supports.")
    mover_overlap: float = Field(0.3, ge=0, le=1, description="Blobs this much covered by a person or vehicle are skipped.")
    mover_margin: float = Field(0.1, ge=0, le=5, description="Boxes of people and vehicles that linger are widened by this share of their size on each side, so an object still attended by whoever brought it (at their feet) is not yet left.")
    linger_speed: float = Field(0.25, gt=0, description="A person or vehicle moving slower than this many box heights per second lingers (may be attending an object); faster ones pass by.")
    occlusion_s: float = Field(30.0, gt=0, description="A left object hidden this long by passers-by is still the "
                                                       "same object; its clock runs on and it is checked when seen again.")
    mover_labels: list[str] = Field(
        default_factory=lambda: ["person", "bicycle", "car", "motorcycle", "bus", "truck", "dog"],
        description="Labels whose boxes are never left objects.")
    boost_labels: list[str] = Field(
        default_factory=lambda: ["backpack", "handbag", "suitcase", "bottle", "chair", "couch", "bed", "tv",
                                 "refrigerator", "microwave", "oven", "toilet", "umbrella", "potted plant"],
        description="Detector labels that raise a blob's score to theirs when they overlap it.")

    @model_validator(mode="after")
    def _area_bounds_ordered(self) -> Self:
        if self.min_area >= self.max_area:
            raise ValueError("min_area must be below max_area")
        return self


class TrackerConfig(Strict):
    """How detections become tracks with stable ids, per camera."""

    iou_threshold: float = Field(0.2, gt=0, lt=1,
                                 description="Least IoU between a track's predicted box and a detection of its class.")
    max_missing_s: float = Field(3.0, gt=0, description="A track not seen this long ends (left objects: "
                                                         "static_objects.occlusion_s).")
    stationary_s: float = Field(5.0, ge=0, description="A track whose foot point stays put this long is stationary.")
    stationary_drift: float = Field(0.25, gt=0, le=2, description="Staying put: the foot point moves less than this "
                                                                   "share of the box height from where it settled.")


VENDING_MIN_MOVES = 2   # a vendor who stands still still moves; a cone taken for a person never does


def _default_vending() -> DwellRuleConfig:
    return DwellRuleConfig(labels=["person"], dwell_s=60.0, min_moves=VENDING_MIN_MOVES,
                           support_labels=["umbrella", "dining table", "chair", "bench", "suitcase", "handbag",
                                           "backpack", "bicycle", "motorcycle", "potted plant", "bowl", "cup",
                                           "bottle", "banana", "apple", "orange"])


def _default_dumping() -> DwellRuleConfig:
    return DwellRuleConfig(labels=[STATIC_OBJECT_LABEL], dwell_s=120.0, min_score=0.3)


class RulesConfig(Strict):
    street_vending: DwellRuleConfig = Field(default_factory=_default_vending)
    illegal_dumping: DwellRuleConfig = Field(default_factory=_default_dumping)

    @model_validator(mode="before")
    @classmethod
    def _vending_checks_for_life(cls, raw: object) -> object:
        """A [rules.street_vending] table that does not say min_moves gets the vending default, not 0."""
        if isinstance(raw, dict) and isinstance(raw.get("street_vending"), dict) \
                and "min_moves" not in raw["street_vending"]:
            raw = {**raw, "street_vending": {**raw["street_vending"], "min_moves": VENDING_MIN_MOVES}}
        return raw

    def for_zone_type(self, zone_type: str) -> tuple[Category, DwellRuleConfig]:
        if zone_type == "no_vending":
            return Category.STREET_VENDING, self.street_vending
        return Category.ILLEGAL_DUMPING, self.illegal_dumping


class BoxConfig(Strict):
    version: Literal[1] = Field(description="Config schema version.")
    box: Name = Field(description="Box id; also its MQTT client id.")
    district: Name = Field(description="District the box reports to.")
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    spool: SpoolConfig = Field(default_factory=SpoolConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig, description=(
        "The box's signing key and seal schedule (security.toml from `gateway provision-box`)."))
    detector: DetectorConfig | None = Field(None, description="Object detector; needed when the box has cameras.")
    cameras: list[CameraConfig] = Field(default_factory=list, description="Cameras; a sensor-only box has none.")
    rules: RulesConfig = Field(default_factory=RulesConfig)
    static_objects: StaticObjectConfig = Field(default_factory=StaticObjectConfig)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    sensors: SensorList = Field(default_factory=list, description="Serial sensors of the box.")
    sensor_profiles: Path = Field(Path("profiles"),
                                  description="Folder of Modbus device profiles, relative to the config file.")
    evidence_jpeg_quality: int = Field(80, ge=30, le=100)
    remote_config: RemoteConfigSettings = Field(default_factory=RemoteConfigSettings, description=(
        "Whose live config changes the box takes (edge/patchgate.py): signed ones by trusted_keys, or explicitly "
        "unsigned ones; by default none."))

    @model_validator(mode="after")
    def _cameras_need_a_detector(self) -> Self:
        if self.cameras and self.detector is None:
            raise ValueError("detector: a box with cameras needs a [detector] table")
        if not self.cameras and not self.sensors:
            raise ValueError("cameras, sensors: a box needs at least one camera or sensor")
        return self

    @model_validator(mode="after")
    def _unique_camera_names(self) -> Self:
        duplicates = _repeated([c.name for c in self.cameras])
        if duplicates:
            raise ValueError(f"camera names repeat: {', '.join(duplicates)}")
        return self

    def config_hash(self) -> str:
        """A short hash of what decides the box's reports, sent with every detection.

        Where the box keeps its files (spool, broker credentials, the checkout the
        model and clips sit in) does not change a report, so it is left out: the
        same file hashes the same on every box.
        """
        decisive = self.model_dump(mode="json", exclude={"mqtt", "spool", "sensor_profiles", "remote_config",
                                                                  "security"})
        if decisive.get("detector"):
            decisive["detector"]["model"] = Path(decisive["detector"]["model"]).name
        for camera in decisive["cameras"]:
            if "://" not in camera["source"] and not camera["source"].isdigit():
                camera["source"] = Path(camera["source"]).name
        canonical = json.dumps(decisive, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _resolve_paths(raw: dict, base: Path) -> dict:
    """Make file paths relative to the config file's folder, before validation."""
    detector = raw.get("detector")
    if isinstance(detector, dict) and isinstance(detector.get("model"), str):
        detector["model"] = str((base / detector["model"]).resolve())
    raw["sensor_profiles"] = str((base / raw.get("sensor_profiles", "profiles")).resolve()) \
        if isinstance(raw.get("sensor_profiles", "profiles"), str) else raw["sensor_profiles"]
    spool = raw.get("spool")
    if isinstance(spool, dict) and isinstance(spool.get("path"), str):
        spool["path"] = str((base / spool["path"]).resolve())
    for camera in raw.get("cameras", []) if isinstance(raw.get("cameras"), list) else []:
        source = camera.get("source") if isinstance(camera, dict) else None
        if isinstance(source, str) and "://" not in source and not source.isdigit():
            camera["source"] = str((base / source).resolve())
    return raw


def parse_config(raw: dict, source: str = "<config>", base: Path | None = None) -> BoxConfig:
    if base is not None:
        raw = _resolve_paths(raw, base)
    try:
        return BoxConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(source, validation_problems(exc)) from None


def load_table(path: Path) -> dict:
    """The config file as a TOML table, before validation."""
    try:
        return tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read: {exc.strerror}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [f"not valid TOML: {exc}"]) from None


def load_config(path: Path) -> BoxConfig:
    """Read, resolve and validate a box config; raise ConfigError naming each bad key."""
    return parse_config(load_table(path), str(path), path.parent)
