"""A message as the transport hands it on: what the ingest sees of MQTT."""

from __future__ import annotations

from collections.abc import Iterable
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


def mids_by_qos(messages: Iterable[Incoming]) -> tuple[list[int], list[int]]:
    """The MQTT ids to acknowledge: those of the QoS 1 messages, and those of the QoS 2 ones."""
    qos1: list[int] = []
    qos2: list[int] = []
    for message in messages:
        if message.qos == 1:
            qos1.append(message.mid)
        elif message.qos == 2:
            qos2.append(message.mid)
    return qos1, qos2
