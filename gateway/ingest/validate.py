"""Validation of incoming messages against the wire contract.

Every message ends as exactly one of: an accepted typed message, or a
rejection that carries the reason and the raw bytes for the dead-letter
record. Nothing here raises on bad input.
"""

from __future__ import annotations

import time
from typing import NamedTuple

from gateway.store.schema import Rejected
from contract import (
    ConfigAck,
    ContractError,
    Detection,
    Health,
    Kind,
    Seal,
    SensorReading,
    Topic,
    check_evidence,
    decode_status,
)

INT64_MAX = 2**63 - 1
# Sensor fields the gateway writes itself; a reading of that name would clash with them.
RESERVED_SENSOR_FIELDS = frozenset({"seq", "id", "event"})

_MODELS = {Kind.DETECTION: Detection, Kind.SENSOR: SensorReading, Kind.HEALTH: Health, Kind.CONFIG_ACK: ConfigAck,
           Kind.SEAL: Seal}
# Boxes publish on a few topics each; evidence topics name a detection and are not kept.
TOPIC_CACHE_LIMIT = 10_000
_topics: dict[str, Topic] = {}


class Accepted(NamedTuple):
    """A message the contract admits, with its parsed topic (a named tuple: one is made for every message)."""

    topic: Topic
    message: Detection | SensorReading | Health | ConfigAck | Seal | bool | bytes  # bool: status, bytes: evidence


def validate(topic: str, payload: bytes, now_ms: int | None = None) -> Accepted | Rejected:
    try:
        parsed = _parse_topic(topic)
        message = _decode(parsed, payload)
        if isinstance(message, (Detection, SensorReading, Health, Seal)) and (message.box, message.district) != (
            parsed.box, parsed.district
        ):
            raise ContractError(f"payload names box {message.district}/{message.box}, topic {parsed.district}/{parsed.box}")
        if isinstance(message, Detection):
            message.check_clock(int(time.time() * 1000) if now_ms is None else now_ms)
        check_storable(message)
        return Accepted(parsed, message)
    except ContractError as exc:
        return Rejected(topic, exc.reason, payload)


def _parse_topic(topic: str) -> Topic:
    parsed = _topics.get(topic)
    if parsed is None:
        parsed = Topic.parse(topic)
        if parsed.kind is not Kind.EVIDENCE:
            if len(_topics) >= TOPIC_CACHE_LIMIT:
                _topics.clear()
            _topics[topic] = parsed
    return parsed


def check_storable(message: object) -> None:
    """Refuse what the contract allows but InfluxDB cannot keep as it is."""
    counters: tuple[tuple[str, int], ...] = ()
    if isinstance(message, Detection):
        counters = (("seq", message.seq), ("track", message.track))
    elif isinstance(message, Health):
        counters = (("seq", message.seq), ("spool_depth", message.spool_depth))
    elif isinstance(message, SensorReading):
        counters = (("seq", message.seq),)
    for name, value in counters:
        if value > INT64_MAX:
            raise ContractError(f"{name}: {value} does not fit a 64-bit integer")
    if isinstance(message, SensorReading):
        clashes = sorted(RESERVED_SENSOR_FIELDS & message.values.keys())
        if clashes:
            raise ContractError(f"values.{clashes[0]}: reading name is reserved for the gateway's own field")


def _decode(topic: Topic, payload: bytes):
    if topic.kind is Kind.STATUS:
        return decode_status(payload)
    if topic.kind is Kind.EVIDENCE:
        check_evidence(payload)
        return payload
    model = _MODELS.get(topic.kind)
    if model is None:
        raise ContractError(f"the gateway does not consume {topic.kind.value} messages")
    return model.decode(payload)
