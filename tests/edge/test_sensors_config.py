"""Sensor configs as a box config holds them: defaults, key-naming errors, ports, profiles."""

import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.sensors import SensorConfigError, SensorHub, SensorList, check_sensors
from edge.sensors.config import AsciiSensorConfig, ModbusSensorConfig, NmeaSensorConfig

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "firmware_configs" / "profiles"


class Box(BaseModel):
    """How BoxConfig holds the sensors."""

    model_config = ConfigDict(extra="forbid")
    sensors: SensorList = Field(default_factory=list)


EXAMPLE = """
[[sensors]]
name = "bin-7"
port = "/dev/ttyUSB0"
protocol = "modbus"
unit = 7
profile = "ultrasonic-bin"
poll_s = 30
publish_s = 300

  [[sensors.rules]]
  event = "bin_overflow"
  value = "fill_pct"
  above = 90
  hysteresis = 5

[[sensors]]
name = "noise-7"
port = "/dev/ttyUSB0"
protocol = "modbus"
unit = 8
profile = "noise-meter"

  [[sensors.rules]]
  event = "night_construction_noise"
  value = "laeq_dba"
  above = 65
  hold_s = 120
  window = { start = 22:00:00, end = "06:00", timezone = "Europe/Vienna" }

[[sensors]]
name = "dust-7"
port = "/dev/ttyS1"
protocol = "ascii"
baudrate = 115200
format = "csv"
columns = ["pm2_5", "", "pm10"]

  [[sensors.rules]]
  event = "dust"
  value = "pm10"
  above = 50

[[sensors]]
name = "gps"
port = "/dev/ttyACM0"
protocol = "nmea"
"""


def parse(text: str) -> list:
    return Box.model_validate(tomllib.loads(text)).sensors


def errors_of(raw: dict) -> str:
    with pytest.raises(ValidationError) as info:
        Box.model_validate(raw)
    return "; ".join(".".join(map(str, e["loc"])) + ": " + e["msg"] for e in info.value.errors(include_url=False))


def test_example_config_parses_with_defaults():
    bin_, noise, dust, gps = parse(EXAMPLE)
    assert isinstance(bin_, ModbusSensorConfig) and bin_.timeout_s == 1.0 and bin_.baudrate == 9600
    assert isinstance(dust, AsciiSensorConfig) and dust.publish_s == 60.0 and dust.parity == "N"
    assert isinstance(gps, NmeaSensorConfig) and gps.baudrate == 4800
    assert noise.rules[0].window.start.hour == 22 and noise.rules[0].window.end.hour == 6
    assert dust.line_settings().baudrate == 115200


def test_example_profiles_and_rules_fit():
    assert check_sensors(parse(EXAMPLE), PROFILES) == []


def base(**extra) -> dict:
    return {"sensors": [{"name": "s1", "port": "/dev/ttyS0", "protocol": "ascii", **extra}]}


@pytest.mark.parametrize("raw, expected", [
    (base(baud=9600), "sensors.0.ascii.baud: Extra inputs are not permitted"),
    (base(parity="X"), "sensors.0.ascii.parity: Input should be 'N', 'E' or 'O'"),
    (base(publish_s=0), "sensors.0.ascii.publish_s: Input should be greater than 0"),
    (base(format="csv"), "format 'csv' needs 'columns'"),
    (base(columns=["a"]), "'columns' is for format 'csv'"),
    (base(format="csv", columns=["a", "a"]), "columns repeat: a"),
    (base(format="csv", columns=["a"], rules=[{"event": "e", "value": "b", "above": 1}]),
     "rules.0.value: 'b' is not one of the columns"),
    (base(rules=[{"event": "e", "value": "v", "above": 1}, {"event": "e", "value": "w", "above": 1}]),
     "rule events repeat: e"),
    ({"sensors": [{"name": "s1", "port": "/dev/ttyS0", "protocol": "can"}]}, "sensors.0: Input tag 'can'"),
    ({"sensors": [{"name": "g", "port": "/dev/ttyS0", "protocol": "nmea",
                   "rules": [{"event": "e", "value": "pm10", "above": 1}]}]}, "'pm10' is not one of the NMEA values"),
    ({"sensors": [{"name": "m", "port": "/dev/ttyS0", "protocol": "modbus", "profile": "x", "unit": 0}]},
     "sensors.0.modbus.unit: Input should be greater than or equal to 1"),
    ({"sensors": [{"name": "m", "port": "/dev/ttyS0", "protocol": "modbus", "unit": 1}]},
     "sensors.0.modbus.profile: Field required"),
])
def test_bad_sensor_configs_name_the_key(raw, expected):
    assert expected in errors_of(raw)


def modbus(name: str, unit: int, port: str = "/dev/ttyUSB0", **extra) -> dict:
    return {"name": name, "port": port, "protocol": "modbus", "unit": unit, "profile": "ultrasonic-bin", **extra}


def test_modbus_devices_share_a_port():
    assert len(Box.model_validate({"sensors": [modbus("a", 1), modbus("b", 2)]}).sensors) == 2


@pytest.mark.parametrize("sensors, expected", [
    ([modbus("a", 1), modbus("a", 2, port="/dev/ttyUSB1")], "sensor names repeat: a"),
    ([modbus("a", 1), modbus("b", 1)], "unit ids repeat: 1"),
    ([modbus("a", 1), modbus("b", 2, baudrate=19200)], "different baudrate"),
    ([modbus("a", 1), {"name": "b", "port": "/dev/ttyUSB0", "protocol": "ascii"}], "only Modbus devices can share"),
])
def test_port_sharing_rules(sensors, expected):
    assert expected in errors_of({"sensors": sensors})


def test_profiles_are_checked_when_a_hub_is_built():
    sensors = Box.model_validate({"sensors": [
        modbus("a", 1),
        modbus("b", 2, profile="no-such-device"),
        modbus("c", 3, rules=[{"event": "bin_overflow", "value": "fill", "above": 90}]),
    ]}).sensors
    problems = check_sensors(sensors, PROFILES)
    assert problems[0].startswith("sensors.1.profile: no profile 'no-such-device' in ")
    assert "known: noise-meter, particulate, ultrasonic-bin" in problems[0]
    assert problems[1].startswith("sensors.2.rules.0.value: 'fill' is not a value of profile 'ultrasonic-bin'")
    with pytest.raises(SensorConfigError) as info:
        SensorHub(sensors, PROFILES, lambda *a: None)
    assert info.value.problems == problems


def test_a_broken_profile_is_named_under_the_sensor(tmp_path):
    (tmp_path / "odd.toml").write_text('[[registers]]\nvalue = "a"\naddress = 0\ntype = "uint8"\n')
    sensors = Box.model_validate({"sensors": [modbus("a", 1, profile="odd")]}).sensors
    [problem] = check_sensors(sensors, tmp_path)
    assert problem.startswith("sensors.0.profile: ") and "odd.toml: registers.0.type: Input should be" in problem


def test_an_empty_sensor_list_is_fine():
    assert Box.model_validate({}).sensors == []
    hub = SensorHub([], PROFILES, lambda *a: None)
    hub.start()
    assert hub.snapshot().ports == {}
    hub.stop()


def test_a_hub_checks_sensors_that_skipped_validation():
    shared = [ModbusSensorConfig.model_validate(modbus("a", 1)),
              AsciiSensorConfig.model_validate({"name": "b", "port": "/dev/ttyUSB0", "protocol": "ascii"})]
    with pytest.raises(SensorConfigError, match="only Modbus devices can share"):
        SensorHub(shared, PROFILES, lambda *a: None)
