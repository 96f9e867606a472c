"""Wire contract v1 between edge boxes and the gateway: topics, payload models, the contract version.

Both sides import this package, and the gateway imports nothing else of the
box. It stays light: pydantic, the standard library and ``common.validation``
(how a pydantic error is put in words), so importing it is instant.

    contract.topics     Kind, Topic, subscription filters, status payloads
    contract.payloads   Detection, SensorReading, Health, ConfigAck, Confirmation, ResendRequest (``encode``/``decode``), evidence checks
    contract.chain      the hash chain over a box's messages and the Seal of its head (digest, link)
    contract.errors     ContractError

See docs/contract.md for the full field reference; tests/golden holds example
messages that both sides' tests check.
"""

from contract.chain import GENESIS, Seal, digest, link
from contract.errors import ContractError
from contract.payloads import (
    MAX_CLOCK_SKEW_MS,
    MAX_EVIDENCE_BYTES,
    MAX_JSON_BYTES,
    MAX_REASON_CHARS,
    MAX_RESEND_SPAN,
    RESERVED_SENSOR_VALUES,
    SHA256_PATTERN,
    VERSION,
    CameraHealth,
    Category,
    ConfigAck,
    Confirmation,
    Detection,
    DroppedSeqs,
    Health,
    Message,
    Position,
    ResendRequest,
    SensorReading,
    SerialPortHealth,
    check_evidence,
    describe_validation_error,
    seq_runs,
)
from contract.topics import (
    ID_PATTERN,
    NAME_PATTERN,
    STATUS_OFFLINE,
    STATUS_ONLINE,
    TOPIC_ROOT,
    Kind,
    Topic,
    decode_status,
    shared_subscription,
    subscription,
)

__all__ = [
    "ID_PATTERN", "MAX_CLOCK_SKEW_MS", "MAX_EVIDENCE_BYTES", "MAX_JSON_BYTES", "MAX_REASON_CHARS", "MAX_RESEND_SPAN", "NAME_PATTERN",
    "RESERVED_SENSOR_VALUES", "SHA256_PATTERN", "STATUS_OFFLINE", "STATUS_ONLINE", "TOPIC_ROOT", "VERSION",
    "GENESIS", "Seal", "digest", "link",
    "CameraHealth", "Category", "ConfigAck", "Confirmation", "DroppedSeqs", "ContractError", "Detection", "Health", "Kind", "Message", "Position", "ResendRequest",
    "SensorReading", "SerialPortHealth", "Topic", "check_evidence", "decode_status", "describe_validation_error",
    "shared_subscription", "subscription",
]
