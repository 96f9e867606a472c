"""Device profiles: what a type of Modbus device holds in which register.

A profile describes a device type once (``firmware_configs/profiles/<name>.toml``);
a sensor in a box config names its profile and its unit id, as EdgeX separates
device profiles from devices. Each register entry becomes one reading value::

    description = "Ultrasonic bin-fill sensor"
    word_order = "big"            # default for 32-bit values: high word first

    [[registers]]
    value = "fill_pct"            # name in the SensorReading
    address = 0                   # 0-based register address
    function = "holding"          # holding (0x03) or input (0x04)
    type = "uint16"               # uint16 int16 uint32 int32 float32
    scale = 0.1                   # reading = raw * scale + offset
    unit = "%"
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, ValidationError, model_validator

from common.validation import validation_problems
from edge.sensors.config import Name, Strict, ValueName
from edge.sensors.errors import ProfileError

RegisterType = Literal["uint16", "int16", "uint32", "int32", "float32"]
WordOrder = Literal["big", "little"]
Function = Literal["holding", "input"]

WORDS = {"uint16": 1, "int16": 1, "uint32": 2, "int32": 2, "float32": 2}


def _nonzero(scale: float) -> float:
    if scale == 0:
        raise ValueError("a scale of 0 would make every reading 0")
    return scale


class RegisterSpec(Strict):
    value: ValueName = Field(title="Value", description="Name of the reading value, e.g. 'fill_pct'.")
    address: int = Field(ge=0, le=65535, title="Address", description="0-based address of the (first) register.")
    function: Function = Field("holding", title="Register table",
                               description="'holding' (read with 0x03) or 'input' (read with 0x04).")
    type: RegisterType = Field("uint16", title="Type", description="How the register words encode the number.")
    word_order: WordOrder | None = Field(None, title="Word order",
                                         description="32-bit types: 'big' = high word first; default: the profile's.")
    scale: Annotated[float, AfterValidator(_nonzero)] = Field(1.0, title="Scale",
                                                              description="Reading = raw * scale + offset.")
    offset: float = Field(0.0, title="Offset", description="Reading = raw * scale + offset.")
    unit: str = Field("", max_length=32, title="Unit",
                      description="Unit of the reading, for people: '%', 'mm', 'dB(A)'.")
    description: str = Field("", max_length=200, title="Description", description="What the value means.")

    @property
    def words(self) -> int:
        return WORDS[self.type]

    @property
    def last_address(self) -> int:
        return self.address + self.words - 1


class DeviceProfile(Strict):
    name: Name = Field(title="Name", description="The profile's file stem; sensors refer to it by this.")
    description: str = Field("", max_length=200, title="Description", description="The device type, for people.")
    manufacturer: str = Field("", max_length=100, title="Manufacturer", description="Maker of the device.")
    model: str = Field("", max_length=100, title="Model", description="Model name of the device.")
    word_order: WordOrder = Field("big", title="Word order",
                                  description="Default for 32-bit registers: 'big' = high word first.")
    registers: list[RegisterSpec] = Field(min_length=1, max_length=64, title="Registers",
                                          description="One entry per reading value.")

    @model_validator(mode="after")
    def _registers_consistent(self) -> Self:
        values = [r.value for r in self.registers]
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise ValueError(f"register values repeat: {', '.join(repeated)}")
        for i, reg in enumerate(self.registers):
            if reg.last_address > 65535:
                raise ValueError(f"registers.{i}: a {reg.type} at {reg.address} runs past address 65535")
            for j, other in enumerate(self.registers[:i]):
                if _overlap(reg, other):
                    raise ValueError(f"registers.{i} ({reg.value}) overlaps registers.{j} ({other.value}) "
                                     f"in the {reg.function} registers")
        return self

    def word_order_of(self, register: RegisterSpec) -> WordOrder:
        return register.word_order or self.word_order

    @property
    def value_names(self) -> list[str]:
        return [r.value for r in self.registers]


def _overlap(a: RegisterSpec, b: RegisterSpec) -> bool:
    return a.function == b.function and a.address <= b.last_address and b.address <= a.last_address


def parse_profile(raw: dict, name: str, source: str = "<profile>") -> DeviceProfile:
    """Validate a profile's TOML table; its ``name`` is the file stem."""
    if "name" in raw:
        raise ProfileError(source, ["name: the file name is the profile's name; leave the key out"])
    try:
        return DeviceProfile.model_validate({**raw, "name": name})
    except ValidationError as exc:
        raise ProfileError(source, validation_problems(exc)) from None


def load_profile(path: Path) -> DeviceProfile:
    """Read and validate one profile file; raise ProfileError naming each bad key."""
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ProfileError(str(path), [f"cannot read: {exc.strerror or exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(str(path), [f"not valid TOML: {exc}"]) from None
    return parse_profile(raw, path.stem, str(path))


def profile_path(profiles_dir: Path, name: str) -> Path:
    return profiles_dir / f"{name}.toml"


def available_profiles(profiles_dir: Path) -> list[str]:
    return sorted(p.stem for p in profiles_dir.glob("*.toml"))
