"""NMEA 0183 from a GNSS receiver: the box position from GGA and RMC sentences.

Values: ``lat``, ``lon`` (degrees, south and west negative), ``fix`` (GGA
quality: 0 none, 1 GPS, 2 DGPS, ...; from RMC alone 1 or 0), ``satellites``,
``altitude_m``, ``speed_mps`` and ``course_deg``. The parser merges the
sentences into the receiver's current view; without a fix the view has no
position, speed or course. Sentences must carry a valid checksum.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pynmea2

from edge.sensors.errors import LineRejected

KNOT_MPS = 1852.0 / 3600.0
_NEEDS_FIX = ("lat", "lon", "altitude_m", "speed_mps", "course_deg")


@dataclass(frozen=True, slots=True)
class Position:
    """The last fixed position of the box and when it was read."""

    lat: float
    lon: float
    fix: int
    satellites: int | None
    ts_ms: int

    def to_dict(self) -> dict:
        return {"lat": self.lat, "lon": self.lon, "fix": self.fix, "satellites": self.satellites, "ts": self.ts_ms}


class NmeaParser:
    """Turns sentences into the receiver's merged view; other sentence types are ignored."""

    def __init__(self) -> None:
        self._view: dict[str, float] = {}

    def parse(self, text: str) -> dict[str, float] | None:
        sentence = _parse_sentence(text)
        if sentence is None:
            return None
        _check_field_count(sentence)
        try:
            if isinstance(sentence, pynmea2.GGA):
                update = _gga_values(sentence)
            elif isinstance(sentence, pynmea2.RMC):
                update = _rmc_values(sentence, self._view.get("fix", 0))
            else:
                return None
        except (ValueError, TypeError, AttributeError) as exc:
            raise LineRejected("unparseable", f"{sentence.sentence_type}: {exc}") from None
        self._view.update(update)
        if not self._view.get("fix"):
            for name in _NEEDS_FIX:
                self._view.pop(name, None)
        return dict(self._view)


def _parse_sentence(text: str) -> pynmea2.NMEASentence | None:
    """The sentence, or None for a well-formed one of a type pynmea2 does not know."""
    try:
        return pynmea2.parse(text, check=True)
    except pynmea2.ChecksumError as exc:
        raise LineRejected("bad_checksum", str(exc.args[0] if exc.args else exc)) from None
    except pynmea2.SentenceTypeError:
        return None
    except (pynmea2.ParseError, ValueError, TypeError, AttributeError) as exc:
        raise LineRejected("unparseable", str(exc.args[0] if exc.args else exc)) from None


# Fields a sentence has in NMEA 0183 2.x and later; pynmea2 reads missing ones as empty.
_MIN_FIELDS = {"GGA": 14, "RMC": 11}


def _check_field_count(sentence: pynmea2.NMEASentence) -> None:
    needed = _MIN_FIELDS.get(sentence.sentence_type, 0)
    if len(sentence.data) < needed:
        raise LineRejected("unparseable", f"{sentence.sentence_type} with {len(sentence.data)} fields, needs {needed}")


def _gga_values(gga: pynmea2.GGA) -> dict[str, float]:
    fix = int(gga.gps_qual or 0)
    values: dict[str, float] = {"fix": float(fix)}
    if gga.num_sats:
        values["satellites"] = float(int(gga.num_sats))
    if fix and gga.lat and gga.lon:
        values["lat"] = round(gga.latitude, 7)
        values["lon"] = round(gga.longitude, 7)
        if gga.altitude is not None:
            values["altitude_m"] = float(gga.altitude)
    return values


def _rmc_values(rmc: pynmea2.RMC, fix_so_far: float) -> dict[str, float]:
    if rmc.status != "A":
        return {"fix": 0.0}
    # GGA's quality says more than RMC's valid flag; keep it when there is one.
    values: dict[str, float] = {"fix": fix_so_far or 1.0}
    if rmc.lat and rmc.lon:
        values["lat"] = round(rmc.latitude, 7)
        values["lon"] = round(rmc.longitude, 7)
    if rmc.spd_over_grnd is not None:
        values["speed_mps"] = round(float(rmc.spd_over_grnd) * KNOT_MPS, 3)
    if rmc.true_course is not None:
        values["course_deg"] = float(rmc.true_course)
    return values


class PositionTracker:
    """Keeps the last fixed position seen in a sensor's values."""

    def __init__(self) -> None:
        self.position: Position | None = None

    def update(self, values: Mapping[str, float], ts_ms: int) -> None:
        if values.get("fix") and "lat" in values and "lon" in values:
            satellites = values.get("satellites")
            self.position = Position(values["lat"], values["lon"], int(values["fix"]),
                                     int(satellites) if satellites is not None else None, ts_ms)
