"""Device profiles and register decoding: types, word order, scale, signedness, read planning."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.client import ModbusSerialClient

from edge.sensors.errors import ProfileError
from edge.sensors.profiles import load_profile, parse_profile
from edge.sensors.registers import (
    MAX_REGISTERS_PER_READ,
    ReadBlock,
    decode_profile,
    decode_words,
    encode_words,
    plan_reads,
    table_from_blocks,
)

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "firmware_configs" / "profiles"
SHIPPED = sorted(PROFILES.glob("*.toml"))
DATATYPE = ModbusSerialClient.DATATYPE
PYMODBUS_TYPE = {"uint16": DATATYPE.UINT16, "int16": DATATYPE.INT16, "uint32": DATATYPE.UINT32,
                 "int32": DATATYPE.INT32, "float32": DATATYPE.FLOAT32}


# ------------------------------------------------------------------ decoding


@pytest.mark.parametrize("words, kind, order, expected", [
    ([0xFFFF], "uint16", "big", 65535),
    ([0xFFFF], "int16", "big", -1),
    ([0x8000], "int16", "big", -32768),
    ([0x0001, 0x0002], "uint32", "big", 0x0001_0002),
    ([0x0001, 0x0002], "uint32", "little", 0x0002_0001),
    ([0xFFFF, 0xFFFE], "int32", "big", -2),
    ([0xFFFE, 0xFFFF], "int32", "little", -2),
    ([0x4048, 0xF5C3], "float32", "big", pytest.approx(3.14, abs=1e-6)),
    ([0xF5C3, 0x4048], "float32", "little", pytest.approx(3.14, abs=1e-6)),
])
def test_decode_known_words(words, kind, order, expected):
    assert decode_words(words, kind, order) == expected


def test_decode_refuses_the_wrong_number_of_words():
    with pytest.raises(ValueError):
        decode_words([1], "uint32")


integers = {
    "uint16": st.integers(0, 2**16 - 1), "int16": st.integers(-2**15, 2**15 - 1),
    "uint32": st.integers(0, 2**32 - 1), "int32": st.integers(-2**31, 2**31 - 1),
}


@given(st.sampled_from(sorted(integers)).flatmap(lambda k: st.tuples(st.just(k), integers[k])),
       st.sampled_from(["big", "little"]))
def test_integers_agree_with_pymodbus(kind_and_number, order):
    kind, number = kind_and_number
    words = ModbusSerialClient.convert_to_registers(number, PYMODBUS_TYPE[kind], word_order=order)
    assert decode_words(words, kind, order) == number
    assert encode_words(number, kind, order) == words


@given(st.floats(width=32, allow_nan=False), st.sampled_from(["big", "little"]))
def test_float32_agrees_with_pymodbus(number, order):
    words = ModbusSerialClient.convert_to_registers(number, DATATYPE.FLOAT32, word_order=order)
    assert decode_words(words, "float32", order) == number
    assert encode_words(number, "float32", order) == words


# ------------------------------------------------------------------ profiles


def profile(registers: list[dict], **top) -> object:
    return parse_profile({"registers": registers, **top}, "test-device")


def test_scale_offset_and_signedness_apply():
    prof = profile([
        {"value": "fill_pct", "address": 0, "scale": 0.1},
        {"value": "temperature_c", "address": 1, "type": "int16", "scale": 0.1, "offset": -2},
        {"value": "energy_wh", "address": 2, "type": "uint32", "word_order": "little"},
    ])
    table = {("holding", 0): 950, ("holding", 1): encode_words(-52, "int16")[0],
             ("holding", 2): 0x5678, ("holding", 3): 0x1234}
    values, invalid = decode_profile(prof, table)
    assert values == {"fill_pct": 95.0, "temperature_c": -7.2, "energy_wh": 0x1234_5678}
    assert invalid == []


def test_profile_word_order_is_the_default_for_its_registers():
    prof = profile([{"value": "pm10", "address": 0, "function": "input", "type": "float32"},
                    {"value": "pm2_5", "address": 2, "function": "input", "type": "float32", "word_order": "big"}],
                   word_order="little")
    table = table_from_blocks({ReadBlock("input", 0, 4): encode_words(12.5, "float32", "little")
                               + encode_words(7.25, "float32", "big")})
    assert decode_profile(prof, table)[0] == {"pm10": 12.5, "pm2_5": 7.25}


def test_float32_of_seven_digits_comes_back_clean():
    prof = profile([{"value": "laeq_dba", "address": 0, "type": "float32"}])
    words = encode_words(63.7, "float32")
    values, _ = decode_profile(prof, {("holding", 0): words[0], ("holding", 1): words[1]})
    assert values == {"laeq_dba": 63.7}


def test_not_a_number_registers_give_no_value():
    prof = profile([{"value": "pm10", "address": 0, "type": "float32"}, {"value": "rh", "address": 2}])
    words = encode_words(float("nan"), "float32")
    values, invalid = decode_profile(prof, {("holding", 0): words[0], ("holding", 1): words[1], ("holding", 2): 5})
    assert values == {"rh": 5.0}
    assert invalid == ["pm10"]


@pytest.mark.parametrize("registers, top, expected", [
    ([{"value": "a", "address": 0, "type": "uint64"}], {}, "registers.0.type: Input should be"),
    ([{"value": "a", "address": 0, "function": "coil"}], {}, "registers.0.function: Input should be"),
    ([{"value": "A", "address": 0}], {}, "registers.0.value: String should match pattern"),
    ([{"value": "a", "address": 70000}], {}, "registers.0.address: Input should be less than or equal to 65535"),
    ([{"value": "a", "address": 0, "scale": 0}], {}, "registers.0.scale: Value error, a scale of 0"),
    ([{"value": "a", "address": 0, "sacle": 2}], {}, "registers.0.sacle: Extra inputs are not permitted"),
    ([{"value": "a", "address": 0, "type": "uint32"}, {"value": "b", "address": 1}], {},
     "registers.1 (b) overlaps registers.0 (a)"),
    ([{"value": "a", "address": 65535, "type": "float32"}], {}, "registers.0: a float32 at 65535 runs past"),
    ([{"value": "a", "address": 0}, {"value": "a", "address": 1}], {}, "register values repeat: a"),
    ([], {}, "registers: List should have at least 1 item"),
    ([{"value": "a", "address": 0}], {"word_order": "middle"}, "word_order: Input should be"),
    ([{"value": "a", "address": 0}], {"name": "x"}, "name: the file name is the profile's name"),
])
def test_bad_profiles_name_the_key(registers, top, expected):
    with pytest.raises(ProfileError) as info:
        profile(registers, **top)
    assert expected in str(info.value)


def test_same_address_in_both_tables_is_no_overlap():
    profile([{"value": "a", "address": 0, "function": "holding"}, {"value": "b", "address": 0, "function": "input"}])


def test_bad_profile_files_name_the_file(tmp_path):
    (tmp_path / "broken.toml").write_text("registers = [ {")
    with pytest.raises(ProfileError, match="broken.toml: not valid TOML"):
        load_profile(tmp_path / "broken.toml")
    with pytest.raises(ProfileError, match="cannot read"):
        load_profile(tmp_path / "missing.toml")


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_profiles_load(path):
    assert load_profile(path).name == path.stem


def test_the_promised_device_types_are_shipped():
    names = {p.stem: load_profile(p).value_names for p in SHIPPED}
    assert {"fill_pct", "distance_mm", "battery_v"} <= set(names["ultrasonic-bin"])
    assert "laeq_dba" in names["noise-meter"]
    assert {"pm2_5", "pm10"} <= set(names["particulate"])


# ------------------------------------------------------------------ read planning


def spec(address: int, kind: str = "uint16", function: str = "holding") -> dict:
    return {"value": f"v{function[0]}{address}", "address": address, "type": kind, "function": function}


def test_adjacent_registers_are_read_together_and_gaps_are_not_bridged():
    prof = profile([spec(0), spec(1, "float32"), spec(3), spec(10), spec(0, function="input")])
    assert plan_reads(prof.registers) == [ReadBlock("holding", 0, 4), ReadBlock("holding", 10, 1),
                                          ReadBlock("input", 0, 1)]


@given(st.sets(st.integers(0, 400), min_size=1, max_size=60))
def test_plan_covers_every_register_exactly_within_limits(addresses):
    prof = profile([spec(a) for a in sorted(addresses)])
    blocks = plan_reads(prof.registers)
    covered = [a for b in blocks for a in range(b.address, b.address + b.count)]
    assert sorted(covered) == sorted(addresses)
    assert all(1 <= b.count <= MAX_REGISTERS_PER_READ for b in blocks)


def test_long_runs_are_split_at_the_modbus_limit():
    prof = profile([spec(a) for a in range(64)])
    assert plan_reads(prof.registers) == [ReadBlock("holding", 0, 64)]
    wide = profile([spec(a * 2, "uint32") for a in range(64)])
    blocks = plan_reads(wide.registers)
    assert [b.count for b in blocks] == [124, 4]
