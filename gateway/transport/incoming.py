"""A message as the transport hands it on: what the ingest sees of MQTT."""

from __future__ import annotations

from typing import NamedTuple

# At most this many packets are read from the socket in one go (and handed on as one list).
READ_BURST = 512


class Incoming(NamedTuple):
    """One message as received; a named tuple, made thousands of times a second, costs a fifth of a dataclass."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    received: float
    retain: bool = False   # a retained message the broker replays on subscribing, not a live one
