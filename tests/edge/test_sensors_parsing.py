"""Line parsers: ASCII key=value and CSV, and NMEA 0183 (GGA/RMC) through pynmea2."""

from functools import reduce
from operator import xor

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.sensors.errors import LineRejected
from edge.sensors.lines import CsvParser, KeyValueParser, decode_line, parse_number
from edge.sensors.nmea import NmeaParser, PositionTracker
from edge.serialport import Line


def nmea(body: str) -> str:
    """A sentence with its checksum (XOR of the bytes between $ and *)."""
    checksum = reduce(xor, body.encode(), 0)
    return f"${body}*{checksum:02X}"


# ------------------------------------------------------------------ decoding


def test_decode_strips_whitespace_and_skips_blank_lines():
    assert decode_line(Line(b"  pm10=3 \t")) == "pm10=3"
    assert decode_line(Line(b"")) is None
    assert decode_line(Line(b"   ")) is None


@pytest.mark.parametrize("raw, reason", [
    (Line(b"pm10=\xff\xfe"), "non_utf8"),
    (Line(b"pm10=1", truncated=True), "overlong"),
    (Line(b"pm\x00\x01=1"), "unparseable"),
])
def test_decode_rejects_garbage_with_its_reason(raw, reason):
    with pytest.raises(LineRejected) as info:
        decode_line(raw)
    assert info.value.reason == reason


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "1_000", "0x10", "", "1e", "--1", "1.2.3"])
def test_only_plain_finite_numbers_are_numbers(text):
    with pytest.raises(LineRejected):
        parse_number(text)


@pytest.mark.parametrize("text, number", [("12", 12.0), ("-3.5", -3.5), ("+.5", 0.5), ("1e3", 1000.0), ("7.", 7.0)])
def test_plain_numbers_parse(text, number):
    assert parse_number(text) == number


# ------------------------------------------------------------------ key=value


def test_key_value_pairs_with_any_separator():
    parser = KeyValueParser({})
    assert parser.parse("pm2_5=12.1,pm10=20") == {"pm2_5": 12.1, "pm10": 20.0}
    assert parser.parse("PM10=20; temp=-1.5  rh=40") == {"pm10": 20.0, "temp": -1.5, "rh": 40.0}


def test_key_value_rename_maps_device_keys():
    parser = KeyValueParser({"PM2.5": "pm2_5", "T": "temperature_c"})
    assert parser.parse("PM2.5=3,T=21.5") == {"pm2_5": 3.0, "temperature_c": 21.5}


@pytest.mark.parametrize("text", ["pm10", "pm10=", "=3", "pm10=abc", "PM2.5=3", "2x=1", "pm10=1,junk"])
def test_key_value_rejects_the_whole_line(text):
    with pytest.raises(LineRejected) as info:
        KeyValueParser({}).parse(text)
    assert info.value.reason == "unparseable"


def test_key_value_refuses_more_values_than_a_reading_holds():
    with pytest.raises(LineRejected):
        KeyValueParser({}).parse(",".join(f"v{i}=1" for i in range(65)))


value_names = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@given(st.dictionaries(value_names, finite, min_size=1, max_size=10), st.sampled_from([",", ";", " "]))
def test_key_value_round_trip(values, separator):
    line = separator.join(f"{k}={v!r}" for k, v in values.items())
    assert KeyValueParser({}).parse(line) == values


# ------------------------------------------------------------------ csv


def test_csv_columns_and_skipped_columns():
    parser = CsvParser(["pm2_5", "", "pm10"])
    assert parser.parse("12.5, 99 ,20") == {"pm2_5": 12.5, "pm10": 20.0}
    assert parser.parse("12.5,,20") == {"pm2_5": 12.5, "pm10": 20.0}


def test_csv_with_another_delimiter():
    assert CsvParser(["a", "b"], ";").parse("1;2") == {"a": 1.0, "b": 2.0}


@pytest.mark.parametrize("text", ["1,2", "1,2,3,4", "pm2_5,x,pm10", "1,2,"])
def test_csv_rejects_wrong_column_counts_headers_and_blanks(text):
    with pytest.raises(LineRejected):
        CsvParser(["pm2_5", "", "pm10"]).parse(text)


# ------------------------------------------------------------------ NMEA

GGA = nmea("GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,")
GGA_SOUTH_WEST_DGPS = nmea("GNGGA,101010.00,3352.1280,S,15112.5570,W,2,11,0.8,20.0,M,,M,,")
GGA_NO_FIX = nmea("GPGGA,123520,,,,,0,03,,,M,,M,,")
RMC = nmea("GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W")
RMC_VOID = nmea("GPRMC,123521,V,,,,,,,230394,,")


def test_gga_gives_position_fix_and_satellites():
    values = NmeaParser().parse(GGA)
    assert values == {"fix": 1.0, "satellites": 8.0, "lat": pytest.approx(48.1173),
                      "lon": pytest.approx(11.516667, abs=1e-6), "altitude_m": 545.4}


def test_south_and_west_are_negative():
    values = NmeaParser().parse(GGA_SOUTH_WEST_DGPS)
    assert values["lat"] == pytest.approx(-33.8688, abs=1e-4)
    assert values["lon"] == pytest.approx(-151.209283, abs=1e-5)
    assert values["fix"] == 2.0


def test_rmc_gives_speed_in_metres_per_second_and_keeps_the_gga_quality():
    parser = NmeaParser()
    parser.parse(GGA_SOUTH_WEST_DGPS)
    values = parser.parse(RMC)
    assert values["speed_mps"] == pytest.approx(22.4 * 1852 / 3600, abs=1e-3)
    assert values["course_deg"] == 84.4
    assert values["fix"] == 2.0
    assert values["lat"] == pytest.approx(48.1173)


def test_rmc_alone_means_a_plain_fix():
    assert NmeaParser().parse(RMC)["fix"] == 1.0


def test_losing_the_fix_drops_position_and_motion():
    parser = NmeaParser()
    parser.parse(GGA)
    parser.parse(RMC)
    assert parser.parse(GGA_NO_FIX) == {"fix": 0.0, "satellites": 3.0}
    assert parser.parse(RMC_VOID) == {"fix": 0.0, "satellites": 3.0}


@pytest.mark.parametrize("text, reason", [
    (GGA[:-2] + "00", "bad_checksum"),
    (GGA.split("*")[0], "bad_checksum"),  # a receiver always sends one; a missing one is damage
    ("$GPGGA,garbage", "bad_checksum"),
    (nmea("GPGGA,garbage"), "unparseable"),
    ("hello", "unparseable"),
    (nmea("GPGGA,123519,48x7.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"), "unparseable"),
])
def test_damaged_sentences_are_rejected_with_their_reason(text, reason):
    with pytest.raises(LineRejected) as info:
        NmeaParser().parse(text)
    assert info.value.reason == reason


def test_other_sentence_types_are_ignored():
    parser = NmeaParser()
    assert parser.parse(nmea("GPGSV,3,1,11,03,03,111,00,04,15,270,00,06,01,010,00,13,06,292,00")) is None
    assert parser.parse(nmea("GPZZZ,1,2,3")) is None


def test_position_tracker_keeps_the_last_fix():
    tracker = PositionTracker()
    parser = NmeaParser()
    tracker.update(parser.parse(GGA), 1_800_000_000_000)
    tracker.update(parser.parse(GGA_NO_FIX), 1_800_000_001_000)
    assert tracker.position is not None
    assert tracker.position.lat == pytest.approx(48.1173)
    assert (tracker.position.fix, tracker.position.satellites, tracker.position.ts_ms) == (1, 8, 1_800_000_000_000)
