"""The JSON payloads of contract v1: frozen, versioned pydantic models with ``encode`` and ``decode``.

Every JSON payload carries ``v`` (the contract version). A receiver refuses a
payload of another version, an unknown field, or a value out of range; the
error names the field. See docs/contract.md for the full field reference.
"""

from __future__ import annotations

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

from common.validation import validation_problems
from contract.errors import ContractError
from contract.topics import ID_PATTERN, NAME_PATTERN

VERSION = 1
SHA256_PATTERN = r"^[0-9a-f]{64}$"

MAX_JSON_BYTES = 64 * 1024
MAX_EVIDENCE_BYTES = 4 * 1024 * 1024
# Detections stamped further ahead than this are treated as a broken clock.
MAX_CLOCK_SKEW_MS = 5 * 60 * 1000


class Category(StrEnum):
    STREET_VENDING = "street_vending"
    ILLEGAL_DUMPING = "illegal_dumping"


Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Ident = Annotated[str, Field(pattern=ID_PATTERN)]
# No label holds a Unicode control (C0, DEL, C1), format (soft hyphen, zero-width and direction marks, ...),
# line or paragraph separator character, nor a backslash (InfluxDB line protocol cannot carry every backslash
# position); the ordinary space is allowed ("dining table"). Checked by pydantic's Rust regex engine, which
# knows Unicode categories, at no cost per character in Python.
UNPRINTABLE = r"\p{Cc}\p{Cf}\p{Zl}\p{Zp}"
Label = Annotated[str, Field(min_length=1, max_length=64, pattern=rf"^[^{UNPRINTABLE}\\]+$")]
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
    prev: Annotated[str, Field(pattern=SHA256_PATTERN)] | None = Field(None, description=(
        "Chain link (contract.chain): sha256 of the box's message with the seq before; boxes without a key omit it."))

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
    prev: Annotated[str, Field(pattern=SHA256_PATTERN)] | None = Field(None, description="Chain link, as Detection.prev.")

    @field_validator("values")
    @classmethod
    def _no_reserved_names(cls, values: dict[str, float]) -> dict[str, float]:
        reserved = sorted(RESERVED_SENSOR_VALUES & values.keys())
        if reserved:
            raise ValueError(f"value names {', '.join(reserved)} are reserved")
        return values


MAX_REASON_CHARS = 256
Reason = Annotated[str, Field(min_length=1, max_length=MAX_REASON_CHARS, pattern=rf"^[^{UNPRINTABLE}]+$")]


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

    port: Annotated[str, Field(min_length=1, max_length=256, pattern=rf"^[^{UNPRINTABLE}]+$")]
    state: Literal["open", "reconnecting", "down", "stopped"]
    sensors: list[Name] = Field(default_factory=list, max_length=32)
    counters: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")], Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict, max_length=32)


class Position(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    lat: Latitude
    lon: Longitude
    ts: EpochMs


class DroppedSeqs(BaseModel):
    """A run of seqs the box's spool gave up under its size policy: announced, so not a gap to wait for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["telemetry", "keep"] = Field(description="Class dropped: telemetry (health, readings) or keep.")
    from_seq: Count
    to_seq: Count
    # Chain-aware announcement (contract.chain): the links around the dropped run, so the chain goes on past it.
    first_prev: Annotated[str, Field(pattern=SHA256_PATTERN)] | None = Field(None, description=(
        "The prev of the message at from_seq: the hash of the message before the run."))
    last_hash: Annotated[str, Field(pattern=SHA256_PATTERN)] | None = Field(None, description=(
        "The hash of the message at to_seq: what the message after the run names as its prev."))

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.from_seq > self.to_seq:
            raise ValueError("from_seq must not exceed to_seq")
        return self


MAX_RANGES = 256


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
    # Optional v1 additions of confirmed delivery (docs/contract.md).
    last_seq: Count | None = Field(None, description="The last seq the box assigned when it built this message.")
    delivery: Literal["confirmed", "puback"] | None = Field(None, description=(
        "How the box frees its spool: on the gateway's confirmation, or on the broker's PUBACK (fallback)."))
    dropped_seqs: list[DroppedSeqs] | None = Field(None, max_length=MAX_RANGES, description=(
        "Seqs the spool gave up under its size policy and no confirmation covers yet."))
    prev: Annotated[str, Field(pattern=SHA256_PATTERN)] | None = Field(None, description="Chain link, as Detection.prev.")


def seq_runs(seqs: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs of sorted seqs, as confirmations and re-send requests carry them: [1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    runs: list[tuple[int, int]] = []
    for n in seqs:
        if runs and n == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs


def _sorted_disjoint(ranges: list[tuple[int, int]], above: int, what: str) -> list[tuple[int, int]]:
    previous = above
    for index, (first, last) in enumerate(ranges):
        if first > last:
            raise ValueError(f"{what}.{index}: {first} > {last}")
        if first <= previous:
            raise ValueError(f"{what}.{index}: ranges must be sorted, disjoint and above {above}")
        previous = last
    return ranges


SeqRange = tuple[Count, Count]


class Confirmation(Message):
    """Gateway -> box, retained on ``confirm``: every seq up to ``upto`` is stored, and so are ``ranges`` above it."""

    box: Name
    district: Name
    ts: EpochMs
    upto: Count = Field(description="Every seq at or below this is stored (or was announced dropped by policy).")
    ranges: list[SeqRange] = Field(default_factory=list, max_length=MAX_RANGES, description=(
        "Stored seqs above upto, as inclusive [first, last] runs, sorted and disjoint."))

    @model_validator(mode="after")
    def _ranges_above_upto(self) -> Self:
        _sorted_disjoint(list(self.ranges), self.upto, "ranges")
        return self

    def covers(self, seq: int) -> bool:
        return seq <= self.upto or any(first <= seq <= last for first, last in self.ranges)


MAX_RESEND_SPAN = 100_000


class ResendRequest(Message):
    """Gateway -> box on ``resend``: send again the seqs ``from_seq``..``to_seq`` still in your spool."""

    box: Name
    district: Name
    ts: EpochMs
    from_seq: Count
    to_seq: Count

    @model_validator(mode="after")
    def _bounded(self) -> Self:
        if self.from_seq > self.to_seq:
            raise ValueError("from_seq must not exceed to_seq")
        if self.to_seq - self.from_seq >= MAX_RESEND_SPAN:
            raise ValueError(f"a request spans at most {MAX_RESEND_SPAN} seqs")
        return self


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
    return "; ".join(validation_problems(exc, top="(payload)"))


def check_evidence(payload: bytes) -> None:
    """Evidence is a JPEG of bounded size."""
    if len(payload) > MAX_EVIDENCE_BYTES:
        raise ContractError(f"evidence of {len(payload)} bytes exceeds {MAX_EVIDENCE_BYTES}")
    if not payload.startswith(b"\xff\xd8\xff"):
        raise ContractError("evidence is not a JPEG (no SOI marker)")
