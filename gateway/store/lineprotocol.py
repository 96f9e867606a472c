"""Encode points as InfluxDB line protocol.

One point is one line::

    measurement,tag1=v1,tag2=v2 field1=1.5,field2=7i,field3="text",field4=true 1700000000000

Escaping follows the InfluxDB line protocol reference: in the measurement a
backslash is put before commas and spaces; in tag keys, tag values and field
keys before commas, equals signs and spaces; string field values are double
quoted with backslashes and double quotes escaped.  Tags are sorted by key and
tags whose value is empty (or None) are left out, as InfluxDB rejects empty tag
values.  Fields keep the order of the mapping; a None field is left out.

Line protocol has no escape for some characters, so these are rejected with
:class:`LineProtocolError` rather than silently stored as something else:

* a newline or carriage return in the measurement, a tag key, a tag value or a
  field key (``\\n`` would be stored as a literal backslash and ``n``);
* a backslash at the end of those, or directly before a comma, equals sign or
  space (InfluxDB would read it as escaping the next character), and in the
  measurement and field keys also before a double quote (InfluxDB 1.6 reads
  ``\\"`` there as ``"``);
* a measurement that starts with ``#`` (the line would be a comment) or with a
  tab or NUL (InfluxDB strips them as leading whitespace), and a field key that
  starts with a tab (stripped the same way when it is the first field);
* NaN and infinite floats, and integers outside the signed 64-bit range.

String field values may contain anything, newlines included: inside the
quotes they cannot end the line.  So no input can add a line, a tag or a field.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from numbers import Integral, Real
from typing import TypeVar

__all__ = [
    "LineProtocolError",
    "LineProtocolTypeError",
    "EncodedPoint",
    "Point",
    "encode_point",
    "encoded",
    "encode_points",
]

FieldValue = float | int | bool | str

_T = TypeVar("_T")

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class LineProtocolError(ValueError):
    """A point cannot be written as line protocol without changing its meaning."""


class LineProtocolTypeError(LineProtocolError, TypeError):
    """A value of a type line protocol cannot carry."""


@dataclass(frozen=True, slots=True)
class Point:
    """One InfluxDB point; ``time`` is in the writer's precision (nanoseconds in the gateway, see ``schema.PRECISION``)."""

    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, FieldValue]
    time: int


@dataclass(frozen=True, slots=True)
class EncodedPoint(Point):
    """A point whose line is already made, so it is known to be representable."""

    line: str = ""


def encoded(point: Point) -> EncodedPoint:
    """``point`` with its line; raises LineProtocolError as ``encode_point`` does."""
    return EncodedPoint(point.measurement, point.tags, point.fields, point.time, encode_point(point))


# Characters and backslash positions that line protocol cannot represent in
# measurements, tag keys, tag values and field keys.
_UNREPRESENTABLE = re.compile(r"[\n\r]|\\(?=[,= ]|\Z)")
_UNREPRESENTABLE_BEFORE_QUOTE = re.compile(r'[\n\r]|\\(?=[,= "]|\Z)')  # measurements and field keys
_MEASUREMENT_BAD_START = ("#", "\t", "\0")
# Non-empty names of these characters need no escaping and cannot be refused: the fast path for tags.
_PLAIN = re.compile(r"[A-Za-z0-9_.:/-]+\Z")

_VALUE_SPECS: dict[type, str] = {float: "%r", int: "%di", str: '"%s"', bool: "%s"}

Renderer = Callable[[str, Mapping[str, FieldValue], int], str]

# A point's shape is its measurement, tag set, field keys and value types.  Each
# shape maps to its escaped "measurement,tags" prefix and a compiled renderer for
# its fields; renderers are shared by all tag sets with the same fields.  Shapes
# come from a small set in practice, so the common case is one dict lookup.
_CACHE_LIMIT = 20_000
_shapes: OrderedDict[tuple[object, ...], tuple[str, Renderer]] = OrderedDict()
_renderers: OrderedDict[tuple[object, ...], Renderer] = OrderedDict()


def encode_point(point: Point) -> str:
    """Return ``point`` as one line of line protocol, without a trailing newline."""
    if type(point) is EncodedPoint:
        return point.line
    tags = point.tags
    fields = point.fields
    time = point.time
    # Strings, then one type per field and one for the time: the number of
    # types tells how many strings are field keys, the rest are tag pairs.
    shape = (
        point.measurement, *tags, *tags.values(),
        *fields, *map(type, fields.values()), type(time),
    )  # fmt: skip
    try:
        prefix, render = _shapes[shape]
    except KeyError:
        return _encode_new_shape(point, shape)
    except TypeError:  # unhashable: reported by the slow path
        return _encode_new_shape(point, None)
    return render(prefix, fields, time)


def encode_points(points: Iterable[Point]) -> bytes:
    """Return the points as UTF-8 line protocol, one line per point, newline separated."""
    return "\n".join(map(encode_point, points)).encode("utf-8")


def _encode_new_shape(point: Point, shape: tuple[object, ...] | None) -> str:
    """Validate and encode a point whose shape is not cached yet (``shape``, None when unhashable), and cache it.

    New shapes are common: each new lead is a new tag set. So the tags are checked in one go when they are
    all plain, and a field renderer already made for the same fields is reused."""
    measurement = point.measurement
    tags = point.tags
    fields = point.fields
    prefix = _plain_prefix(measurement, tags)
    if prefix is None:
        prefix = _escape_measurement(measurement)
        for tag in _escaped_tags(measurement, tags):
            prefix = f"{prefix},{tag}"
    field_shape = (measurement, *fields, *map(type, fields.values()), type(point.time))
    render = _renderers.get(field_shape)
    if render is None:
        render = _renderer_for(point)
        if render is None:
            return encode_point(_with_builtin_types(point))
        _remember(_renderers, field_shape, render)
    if shape is not None:
        _remember(_shapes, shape, (prefix, render))
    return render(prefix, fields, point.time)


def _plain_prefix(measurement: str, tags: Mapping[str, str]) -> str | None:
    """``measurement,k1=v1,...`` when the measurement and every tag key and value are plain and non-empty
    (nothing to escape or refuse); None otherwise, for the slow path to escape or refuse."""
    try:
        every = "/".join([measurement, *tags, *tags.values()])   # "/" is plain: one match checks every name
    except TypeError:
        return None
    if not (measurement and all(tags) and all(tags.values()) and _PLAIN.match(every)):
        return None
    return ",".join([measurement, *[key + "=" + tags[key] for key in sorted(tags)]])


def _renderer_for(point: Point) -> Renderer | None:
    """Validate the field keys of ``point`` and compile the renderer for its fields.

    Returns None when a value is not exactly float, int, str, bool or None
    (a subclass or a numpy scalar, say); such points are converted first.
    """
    measurement = point.measurement
    specs = []
    kinds: dict[int, type] = {}
    for index, (key, value) in enumerate(point.fields.items()):
        escaped_key = _escape_name(measurement, "field key", key, _UNREPRESENTABLE_BEFORE_QUOTE)
        if key.startswith("\t"):
            raise LineProtocolError(
                f"field key {key!r} in measurement {measurement!r} starts with a tab, "
                "which InfluxDB strips as whitespace"
            )
        if value is None:
            continue
        kind = type(value)
        if kind not in _VALUE_SPECS:
            return None
        kinds[index] = kind
        specs.append(f"{_escape_percent(escaped_key)}={_VALUE_SPECS[kind]}")
    if not kinds:
        raise LineProtocolError(f"point in measurement {measurement!r} has no fields")
    if type(point.time) is not int:
        return None
    template = f"%s {','.join(specs)} %d"
    return _compile_renderer(measurement, template, len(point.fields), kinds)


def _compile_renderer(
    measurement: str, template: str, field_count: int, kinds: dict[int, type]
) -> Renderer:
    """Generate straight-line code that checks and formats one set of fields.

    Generated rather than looped over because per-field loops cost more than the
    formatting itself; only variable names go into the source, all data reaches
    it through the namespace.
    """
    names = [f"v{index}" for index in range(field_count)]
    lines = ["def render(prefix, fields, time):", f"    {', '.join(names)}, = fields.values()"]
    floats = [names[i] for i, kind in kinds.items() if kind is float]
    if floats:
        # x - x is NaN exactly when x is NaN or infinite.
        lines.append(f"    if {' or '.join(f'{v} - {v} != 0.0' for v in floats)}:")
        lines.append("        fail(fields)")
    for name in (names[i] for i, kind in kinds.items() if kind is int):
        lines.append(f"    if not INT64_MIN <= {name} <= INT64_MAX:")
        lines.append("        fail(fields)")
    for name in (names[i] for i, kind in kinds.items() if kind is str):
        lines.append(f"    if '\\\\' in {name} or '\"' in {name}:")
        lines.append(f"        {name} = escape_string({name})")
    arguments = [
        f'("true" if {names[i]} else "false")' if kind is bool else names[i]
        for i, kind in kinds.items()
    ]
    lines.append(f"    return TEMPLATE % (prefix, {', '.join(arguments)}, time)")
    namespace = {
        "TEMPLATE": template,
        "escape_string": _escape_string_field,
        "INT64_MIN": INT64_MIN,
        "INT64_MAX": INT64_MAX,
        "fail": partial(_raise_for_bad_value, measurement),
    }
    exec("\n".join(lines), namespace)  # noqa: S102 - source holds no data, see docstring
    return namespace["render"]


def _raise_for_bad_value(measurement: str, fields: Mapping[str, FieldValue]) -> None:
    """Raise the error for the first non-finite float or out-of-range integer."""
    for key, value in fields.items():
        if type(value) is float and value - value != 0.0:
            problem = "float must be finite"
        elif type(value) is int and not INT64_MIN <= value <= INT64_MAX:
            problem = "integer out of int64 range"
        else:
            continue
        raise LineProtocolError(
            f"field {key!r} in measurement {measurement!r}: {problem} (got {value!r})"
        )
    raise AssertionError("renderer reported a bad value but none was found")


def _escaped_tags(measurement: str, tags: Mapping[str, str]) -> list[str]:
    """Escaped ``key=value`` pairs sorted by key, leaving out empty values."""
    escaped = []
    for key, value in tags.items():
        if type(key) is str and type(value) is str and _PLAIN.match(key) and _PLAIN.match(value):
            escaped.append((key, f"{key}={value}"))  # nothing to escape or refuse
            continue
        escaped_key = _escape_name(measurement, "tag key", key)
        if value is None or value == "":
            continue
        escaped_value = _escape_name(measurement, f"value of tag {key!r}", value)
        escaped.append((key, f"{escaped_key}={escaped_value}"))
    escaped.sort()
    return [pair for _, pair in escaped]


def _escape_measurement(measurement: str) -> str:
    if not isinstance(measurement, str):
        raise LineProtocolTypeError(f"measurement must be a str, not {type(measurement).__name__}")
    if not measurement:
        raise LineProtocolError("measurement must not be empty")
    if measurement.startswith(_MEASUREMENT_BAD_START):
        raise LineProtocolError(
            f"measurement {measurement!r} must not start with '#', a tab or NUL"
        )
    _check_representable(measurement, "measurement", measurement, _UNREPRESENTABLE_BEFORE_QUOTE)
    return measurement.replace(",", "\\,").replace(" ", "\\ ")


def _escape_name(measurement: str, role: str, name: object, unrepresentable: re.Pattern = _UNREPRESENTABLE) -> str:
    """Escape a tag key, tag value or field key."""
    if not isinstance(name, str):
        raise LineProtocolTypeError(
            f"{role} in measurement {measurement!r} must be a str, not {type(name).__name__}"
        )
    if not name:
        raise LineProtocolError(f"{role} in measurement {measurement!r} must not be empty")
    _check_representable(measurement, role, name, unrepresentable)
    return name.replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _check_representable(measurement: str, role: str, text: str,
                          unrepresentable: re.Pattern = _UNREPRESENTABLE) -> None:
    match = unrepresentable.search(text)
    if match is None:
        return
    if match.group() == "\\":
        quote = " or '\"'" if unrepresentable is _UNREPRESENTABLE_BEFORE_QUOTE else ""
        problem = f"a backslash at the end or before ',', '=', ' '{quote}"
    else:
        problem = "a newline or carriage return"
    raise LineProtocolError(
        f"{role} {text!r} in measurement {measurement!r} contains {problem}, "
        "which line protocol cannot represent"
    )


def _escape_string_field(text: str) -> str:
    """Escape a string field value for use inside double quotes."""
    # Backslashes first, so the ones added before quotes are not doubled.
    # (str.replace is several times faster here than str.translate.)
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _escape_percent(text: str) -> str:
    """Make literal text safe inside a printf-style template."""
    return text.replace("%", "%%")


def _with_builtin_types(point: Point) -> Point:
    """The same point with subclasses and numpy-like scalars turned into builtin types."""
    fields = {
        key: _builtin_field_value(point.measurement, key, value)
        for key, value in point.fields.items()
    }
    return Point(point.measurement, point.tags, fields, _builtin_time(point))


def _builtin_field_value(measurement: str, key: str, value: object) -> FieldValue | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        return float(value)
    raise LineProtocolTypeError(
        f"field {key!r} in measurement {measurement!r}: unsupported type "
        f"{type(value).__name__} (got {value!r})"
    )


def _builtin_time(point: Point) -> int:
    time = point.time
    if isinstance(time, Integral) and not isinstance(time, bool):
        return int(time)
    raise LineProtocolTypeError(
        f"time of point in measurement {point.measurement!r} must be an int, "
        f"not {type(time).__name__}"
    )


def _remember(cache: OrderedDict[tuple[object, ...], _T], key: tuple[object, ...], value: _T) -> None:
    """Cache with first-in-first-out eviction, so one-off tag sets (ids) never flush the common shapes.

    An OrderedDict: taking the oldest out of a plain dict (``next(iter(d))``) walks over the holes that
    earlier evictions left, 10-14 us per new shape once the cache is full, as it is in a gateway that has
    seen more than a few thousand leads."""
    if key in cache:
        return
    if len(cache) >= _CACHE_LIMIT:
        cache.popitem(last=False)
    cache[key] = value
