"""Text lines from a port: decoding, and the parsers for ASCII devices.

A parser turns one line into reading values or raises ``LineRejected`` whose
``reason`` names the port counter it bumps. A line is taken whole or not at
all: a garbled line is not mined for the pairs that still look right.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Protocol

from edge.sensors.config import VALUE_PATTERN, AsciiSensorConfig
from edge.sensors.errors import LineRejected
from edge.serialport import Line

# SensorReading allows this many values.
MAX_VALUES = 64

_VALUE_NAME = re.compile(VALUE_PATTERN)
# Plain decimal numbers only: float() would also take "nan", "inf" and "1_000".
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_PAIR_SEPARATORS = re.compile(r"[,;\s]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class LineParser(Protocol):
    def parse(self, text: str) -> dict[str, float] | None:
        """Values of one line; None for a line that is fine but carries none for us."""


def decode_line(line: Line) -> str | None:
    """The text of a line, or None for a blank one."""
    if line.truncated:
        raise LineRejected("overlong", f"{len(line.data)} bytes without a newline")
    try:
        text = line.data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LineRejected("non_utf8", f"byte {line.data[exc.start]:#04x} at {exc.start}") from None
    text = text.strip()
    if _CONTROL.search(text):
        raise LineRejected("unparseable", f"control characters in {_preview(text)}")
    return text or None


def parse_number(text: str) -> float:
    if not _NUMBER.match(text):
        raise LineRejected("unparseable", f"{_preview(text)} is not a number")
    return float(text)


class KeyValueParser:
    """``key=value`` pairs separated by commas, semicolons or spaces: ``pm2_5=12.1;pm10=20``.

    A key becomes a value name as listed in ``rename``, else lowercased; a key
    that is neither a value name nor renamed rejects the line.
    """

    def __init__(self, rename: Mapping[str, str]) -> None:
        self._rename = dict(rename)

    def parse(self, text: str) -> dict[str, float]:
        values: dict[str, float] = {}
        for pair in filter(None, _PAIR_SEPARATORS.split(text)):
            key, sep, raw = pair.partition("=")
            if not sep or not key:
                raise LineRejected("unparseable", f"{_preview(pair)} is not key=value")
            values[self._value_name(key)] = parse_number(raw)
        if not values:
            raise LineRejected("unparseable", "no key=value pairs")
        if len(values) > MAX_VALUES:
            raise LineRejected("unparseable", f"{len(values)} values, at most {MAX_VALUES}")
        return values

    def _value_name(self, key: str) -> str:
        name = self._rename.get(key, key.lower())
        if not _VALUE_NAME.match(name):
            raise LineRejected("unparseable", f"key {_preview(key)} is not a value name (map it in 'rename')")
        return name


class CsvParser:
    """Values in fixed columns: ``12.1,20.4``; a column named "" is skipped."""

    def __init__(self, columns: Sequence[str], delimiter: str = ",") -> None:
        self._columns = list(columns)
        self._delimiter = delimiter

    def parse(self, text: str) -> dict[str, float]:
        fields = text.split(self._delimiter)
        if len(fields) != len(self._columns):
            raise LineRejected("unparseable", f"{len(fields)} columns, expected {len(self._columns)}")
        return {name: parse_number(field.strip()) for name, field in zip(self._columns, fields, strict=True) if name}


def ascii_parser(config: AsciiSensorConfig) -> LineParser:
    if config.format == "csv":
        return CsvParser(config.columns, config.delimiter)
    return KeyValueParser(config.rename)


def _preview(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")
