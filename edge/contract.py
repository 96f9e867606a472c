"""Wire contract v1 between edge boxes and the gateway.

This module is the only thing the gateway imports from the edge package, so it
stays light: pydantic and the standard library, nothing else.

Topics (``district`` and ``box`` are lowercase names, see ``NAME_PATTERN``)::

    city/{district}/{box}/detection              JSON Detection, QoS 1
    city/{district}/{box}/sensor                 JSON SensorReading, QoS 1
    city/{district}/{box}/health                 JSON Health, QoS 1
    city/{district}/{box}/status                 b"online" / b"offline", retained (offline is the will)
    city/{district}/{box}/config                 JSON box config patch, retained, operator -> box
    city/{district}/{box}/config/ack             JSON ConfigAck
    city/{district}/{box}/evidence/{detection}   raw JPEG bytes

Every JSON payload carries ``v`` (the contract version). A receiver refuses a
payload of another version, an unknown field, or a value out of range; the
error names the field. See docs/contract.md for the full field reference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

VERSION = 1
TOPIC_ROOT = "city"
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"

MAX_JSON_BYTES = 64 * 1024
MAX_EVIDENCE_BYTES = 4 * 1024 * 1024
# Detections stamped further ahead than this are treated as a broken clock.
MAX_CLOCK_SKEW_MS = 5 * 60 * 1000

STATUS_ONLINE = b"online"
STATUS_OFFLINE = b"offline"


class Kind(StrEnum):
    DETECTION = "detection"
    SENSOR = "sensor"
    HEALTH = "health"
    STATUS = "status"
    CONFIG = "config"
    CONFIG_ACK = "config/ack"
    EVIDENCE = "evidence"


class Category(StrEnum):
    STREET_VENDING = "street_vending"
    ILLEGAL_DUMPING = "illegal_dumping"


class ContractError(ValueError):
    """A topic or payload does not follow the contract; ``reason`` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------- topics

_NAME_RE = re.compile(NAME_PATTERN)
_ID_RE = re.compile(ID_PATTERN)


@dataclass(frozen=True, slots=True)
class Topic:
    """One box's topic of one kind; ``detection_id`` only for evidence."""

    district: str
    box: str
    kind: Kind
    detection_id: str | None = None

    def __post_init__(self) -> None:
        for label, value in (("district", self.district), ("box", self.box)):
            if not _NAME_RE.fullmatch(value):
                raise ContractError(f"{label} {value!r} does not match {NAME_PATTERN}")
        if (self.kind is Kind.EVIDENCE) != (self.detection_id is not None):
            raise ContractError("an evidence topic, and only it, names a detection id")
        if self.detection_id is not None and not _ID_RE.fullmatch(self.detection_id):
            raise ContractError(f"detection id {self.detection_id!r} does not match {ID_PATTERN}")

    def __str__(self) -> str:
        base = f"{TOPIC_ROOT}/{self.district}/{self.box}/{self.kind.value}"
        return f"{base}/{self.detection_id}" if self.detection_id else base

    @classmethod
    def parse(cls, topic: str) -> Self:
        parts = topic.split("/")
        if len(parts) < 4 or parts[0] != TOPIC_ROOT:
            raise ContractError(f"topic {topic!r} is not under {TOPIC_ROOT}/{{district}}/{{box}}/")
        district, box, rest = parts[1], parts[2], parts[3:]
        if rest[0] == Kind.EVIDENCE.value and len(rest) == 2:
            return cls(district, box, Kind.EVIDENCE, rest[1])
        try:
            kind = Kind("/".join(rest))
        except ValueError:
            raise ContractError(f"topic {topic!r} has an unknown kind {'/'.join(rest)!r}") from None
        if kind is Kind.EVIDENCE:
            raise ContractError(f"evidence topic {topic!r} lacks a detection id")
        return cls(district, box, kind)


def subscription(kind: Kind, district: str = "+", box: str = "+") -> str:
    """A topic filter for one kind of message from many boxes."""
    suffix = f"{kind.value}/+" if kind is Kind.EVIDENCE else kind.value
    return f"{TOPIC_ROOT}/{district}/{box}/{suffix}"


def shared_subscription(group: str, kind: Kind, district: str = "+") -> str:
    """An MQTT 5 shared subscription, for all districts or one: gateways in the group split its messages."""
    for what, name in (("share group", group), ("district", district)):
        if not (_NAME_RE.fullmatch(name) or (what == "district" and name == "+")):
            raise ContractError(f"{what} {name!r} does not match {NAME_PATTERN}")
    return f"$share/{group}/{subscription(kind, district)}"


# --------------------------------------------------------------------------- payloads


Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Ident = Annotated[str, Field(pattern=ID_PATTERN)]
# No control characters, no backslash: InfluxDB line protocol cannot carry every backslash position.
Label = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\\]+$")]
# Counters stay below 2**63 so that every store (InfluxDB integers are int64) can hold them.
Count = Annotated[int, Field(ge=0, lt=2**63)]
RESERVED_SENSOR_VALUES = frozenset({"seq", "id", "event"})
EpochMs = Annotated[int, Field(gt=946_684_800_000, lt=4_102_444_800_000)]  # 2000..2100
Finite = Annotated[float, Field(allow_inf_nan=False)]
Unit = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Latitude = Annotated[float, Field(ge=-90.0, le=90.0, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180.0, le=180.0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
ConfigHash = Annotated[str, Field(pattern=r"^[0-9a-f]{8,64}$")]


class Message(BaseModel):
    """Base of every JSON payload: frozen, strict about unknown keys, versioned."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    v: Literal[1] = VERSION

    def encode(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        """Parse and validate; raise ContractError naming every bad field."""
        if len(payload) > MAX_JSON_BYTES:
            raise ContractError(f"payload of {len(payload)} bytes exceeds {MAX_JSON_BYTES}")
        try:
            return cls.model_validate_json(payload)
        except ValidationError as exc:
            raise ContractError(describe_validation_error(exc)) from None


class Detection(Message):
    """One rule hit on a box: something a case officer may have to act on."""

    id: Ident = Field(description="Unique id of this message (uuid4 hex on the box).")
    box: Name
    district: Name
    seq: Count = Field(description="Per-box message counter, +1 per message, kept across restarts.")
    ts: EpochMs = Field(description="Event time, UTC epoch milliseconds.")
    camera: Name
    category: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    event: Literal["new", "update", "end"] = "new"
    label: Label = Field(description="Model class that triggered the rule.")
    score: Unit
    bbox: tuple[Unit, Unit, Unit, Unit] = Field(description="x1, y1, x2, y2, normalised 0..1.")
    zone: Name
    track: Count
    dwell_s: NonNegative
    lat: Latitude
    lon: Longitude
    model: Label
    config: ConfigHash
    evidence_sha256: Annotated[str, Field(pattern=SHA256_PATTERN)] | None = None

    @field_validator("bbox")
    @classmethod
    def _ordered_corners(cls, bbox: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        x1, y1, x2, y2 = bbox
        if x1 > x2 or y1 > y2:
            raise ValueError("corners must be ordered x1 <= x2 and y1 <= y2")
        return bbox

    def check_clock(self, now_ms: int) -> None:
        """Refuse an event time from the future beyond the allowed clock skew."""
        if self.ts > now_ms + MAX_CLOCK_SKEW_MS:
            raise ContractError(f"ts: {self.ts} is {(self.ts - now_ms) / 1000:.0f} s in the future")


class SensorReading(Message):
    """Readings of one serial sensor, or an event a threshold rule derived from them."""

    id: Ident
    box: Name
    district: Name
    seq: Count
    ts: EpochMs
    sensor: Name
    values: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")], Finite] = Field(
        max_length=64, description="Readings by name; seq, id and event are reserved.")
    event: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")] | None = None
    config: ConfigHash


    @field_validator("values")
    @classmethod
    def _no_reserved_names(cls, values: dict[str, float]) -> dict[str, float]:
        reserved = sorted(RESERVED_SENSOR_VALUES & values.keys())
        if reserved:
            raise ValueError(f"value names {', '.join(reserved)} are reserved")
        return values


MAX_REASON_CHARS = 256
Reason = Annotated[str, Field(min_length=1, max_length=MAX_REASON_CHARS, pattern=r"^[^\x00-\x1f]+$")]


class CameraHealth(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    state: Literal["running", "reconnecting", "down", "ended"]
    fps: NonNegative
    detector_ms: NonNegative = 0.0
    reason: Reason | None = Field(None, description="Why a down camera is down, for example a pixel zone outside "
                                                   "its frame; the box cuts it to MAX_REASON_CHARS.")


class SerialPortHealth(BaseModel):
    """One serial port of the box: its state and its error counters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    port: Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f]+$")]
    state: Literal["open", "reconnecting", "down", "stopped"]
    sensors: list[Name] = Field(default_factory=list, max_length=32)
    counters: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")], Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict, max_length=32)


class Position(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    lat: Latitude
    lon: Longitude
    ts: EpochMs


class Health(Message):
    """Periodic self-report of a box."""

    box: Name
    district: Name
    seq: Count
    ts: EpochMs
    uptime_s: NonNegative
    config: ConfigHash
    cameras: dict[Name, CameraHealth] = Field(default_factory=dict)
    spool_depth: Count = 0
    spool_oldest_s: NonNegative = 0.0
    spool_dropped: dict[Literal["telemetry", "evidence", "keep"], Annotated[int, Field(ge=0)]] | None = Field(
        None, description="Messages the spool gave up since it was created, by class.")
    serial: list[SerialPortHealth] | None = Field(None, max_length=32, description="Serial sensor ports.")
    position: Position | None = Field(None, description="Last GPS fix of the box.")


class ConfigAck(Message):
    """The box's answer to a config published on its ``config`` topic."""

    box: Name
    ts: EpochMs
    status: Literal["accepted", "rejected"]
    reason: str = Field(default="", max_length=4096)
    config: ConfigHash

    @model_validator(mode="after")
    def _rejection_has_reason(self) -> Self:
        if self.status == "rejected" and not self.reason:
            raise ValueError("a rejected config needs a reason")
        return self


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, each naming the field path: ``bbox.2: ...``."""
    lines = []
    for err in exc.errors(include_url=False):
        path = ".".join(str(p) for p in err["loc"]) or "(payload)"
        lines.append(f"{path}: {err['msg']}")
    return "; ".join(lines)


def decode_status(payload: bytes) -> bool:
    """True for online, False for offline."""
    if payload == STATUS_ONLINE:
        return True
    if payload == STATUS_OFFLINE:
        return False
    raise ContractError(f"status must be {STATUS_ONLINE!r} or {STATUS_OFFLINE!r}")


def check_evidence(payload: bytes) -> None:
    """Evidence is a JPEG of bounded size."""
    if len(payload) > MAX_EVIDENCE_BYTES:
        raise ContractError(f"evidence of {len(payload)} bytes exceeds {MAX_EVIDENCE_BYTES}")
    if not payload.startswith(b"\xff\xd8\xff"):
        raise ContractError("evidence is not a JPEG (no SOI marker)")


# --------------------------------------------------------------------------- broker address


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where the broker is: ``mqtt://host[:1883]`` or ``mqtts://host[:8883]`` (TLS)."""

    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> Self:
        scheme, sep, rest = url.partition("://")
        if not sep or scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ContractError(f"broker URL {url!r} must start with mqtt:// or mqtts://")
        tls = scheme in ("mqtts", "ssl")
        hostport = rest.rstrip("/")
        host, colon, port_text = hostport.rpartition(":")
        if not colon or "]" in port_text:
            host, port_text = hostport, ""
        host = host.strip("[]")
        if not host:
            raise ContractError(f"broker URL {url!r} has no host")
        try:
            port = int(port_text) if port_text else (8883 if tls else 1883)
        except ValueError:
            raise ContractError(f"broker URL {url!r} has a bad port {port_text!r}") from None
        if not 0 < port < 65536:
            raise ContractError(f"broker URL {url!r} has a port out of range")
        return cls(host, port, tls)
