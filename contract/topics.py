"""Topics as values: one box's topic of one kind, and the filters that subscribe to many boxes.

    city/{district}/{box}/detection              JSON Detection, QoS 1
    city/{district}/{box}/sensor                 JSON SensorReading, QoS 1
    city/{district}/{box}/health                 JSON Health, QoS 1
    city/{district}/{box}/status                 b"online" / b"offline", retained (offline is the will)
    city/{district}/{box}/config                 JSON box config patch, retained, operator -> box
    city/{district}/{box}/config/ack             JSON ConfigAck
    city/{district}/{box}/evidence/{detection}   raw JPEG bytes
    city/{district}/{box}/confirm                JSON Confirmation, retained, gateway -> box (optional, v1 addition)
    city/{district}/{box}/resend                 JSON ResendRequest, gateway -> box (optional, v1 addition)
    city/{district}/{box}/seal                   JSON Seal, box -> gateway (optional, v1 addition: contract.chain)

``district`` and ``box`` are lowercase names (``NAME_PATTERN``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Self

from contract.errors import ContractError

TOPIC_ROOT = "city"
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"

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
    CONFIRM = "confirm"
    RESEND = "resend"
    SEAL = "seal"


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


def decode_status(payload: bytes) -> bool:
    """True for online, False for offline."""
    if payload == STATUS_ONLINE:
        return True
    if payload == STATUS_OFFLINE:
        return False
    raise ContractError(f"status must be {STATUS_ONLINE!r} or {STATUS_OFFLINE!r}")
