"""From raw 16-bit Modbus registers to reading values, per a device profile.

Modbus sends each register big-endian. A 32-bit number spans two registers;
``word_order`` says which comes first: "big" (high word first, ABCD) or
"little" (low word first, CDAB, common on devices with a little-endian CPU).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from edge.sensors.profiles import DeviceProfile, Function, RegisterSpec, RegisterType, WordOrder

# Modbus allows at most 125 registers in one read.
MAX_REGISTERS_PER_READ = 125

_STRUCT = {"uint16": ">H", "int16": ">h", "uint32": ">I", "int32": ">i", "float32": ">f"}


def decode_words(words: Sequence[int], kind: RegisterType, word_order: WordOrder = "big") -> int | float:
    """The number that ``words`` (each 0..65535) encode as ``kind``."""
    fmt = _STRUCT[kind]
    expected = struct.calcsize(fmt) // 2
    if len(words) != expected:
        raise ValueError(f"{kind} needs {expected} register(s), got {len(words)}")
    ordered = list(words) if word_order == "big" else list(reversed(words))
    raw = b"".join(w.to_bytes(2, "big") for w in ordered)
    return struct.unpack(fmt, raw)[0]


def encode_words(number: int | float, kind: RegisterType, word_order: WordOrder = "big") -> list[int]:
    """The registers a device would hold for ``number``; the inverse of ``decode_words``."""
    raw = struct.pack(_STRUCT[kind], number)
    words = [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2)]
    return words if word_order == "big" else list(reversed(words))


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One read request: ``count`` registers of one table from ``address``."""

    function: Function
    address: int
    count: int


def plan_reads(registers: Sequence[RegisterSpec]) -> list[ReadBlock]:
    """As few reads as cover every register, joining only adjacent ones.

    Gaps are never bridged: a device may answer "illegal address" for a
    register that its profile does not list.
    """
    blocks: list[ReadBlock] = []
    for function in ("holding", "input"):
        spans = sorted((r.address, r.last_address) for r in registers if r.function == function)
        start = end = None
        for first, last in spans:
            if start is not None and first == end + 1 and last - start + 1 <= MAX_REGISTERS_PER_READ:
                end = last
                continue
            if start is not None:
                blocks.append(ReadBlock(function, start, end - start + 1))
            start, end = first, last
        if start is not None:
            blocks.append(ReadBlock(function, start, end - start + 1))
    return blocks


def _trim(reading: float, kind: RegisterType) -> float:
    """Drop digits the source cannot carry: float32 holds ~7 significant digits, and
    scaling adds binary noise (950 * 0.1 is 95.00000000000001)."""
    digits = 7 if kind == "float32" else 10
    return float(f"{reading:.{digits}g}")


RegisterTable = Mapping[tuple[Function, int], int]


def table_from_blocks(results: Mapping[ReadBlock, Sequence[int]]) -> dict[tuple[Function, int], int]:
    """Register values by (table, address) from the answers to each block."""
    table: dict[tuple[Function, int], int] = {}
    for block, words in results.items():
        for i, word in enumerate(words[:block.count]):
            table[(block.function, block.address + i)] = word
    return table


def decode_profile(profile: DeviceProfile, table: RegisterTable) -> tuple[dict[str, float], list[str]]:
    """Reading values from register contents, and the names of values that were not finite.

    A float32 register holding NaN or infinity (how many devices say "no
    measurement") gives no value rather than a wrong one.
    """
    values: dict[str, float] = {}
    invalid: list[str] = []
    for reg in profile.registers:
        words = [table[(reg.function, reg.address + i)] for i in range(reg.words)]
        raw = decode_words(words, reg.type, profile.word_order_of(reg))
        reading = raw * reg.scale + reg.offset
        if math.isfinite(reading):
            values[reg.value] = _trim(reading, reg.type)
        else:
            invalid.append(reg.value)
    return values, invalid
