"""The one interface every detector back-end implements, and the plugin registry.

A model ships as ``NAME.onnx`` with a model card ``NAME.card.toml`` beside it
(family, input size and layout, colour order, normalisation, labels, licence,
sha256). A family may extend the card with its own fields by setting
``card_type``; the card is validated against that type, and checked against
the file when the detector is created.
"""

from __future__ import annotations

import hashlib
import tomllib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge.detections import Detections


if TYPE_CHECKING:
    from edge.config import DetectorConfig


class DetectorError(RuntimeError):
    """The model cannot be loaded or run: wrong card, wrong file, wrong family."""


class ModelCard(BaseModel):
    """Fields every family understands; a family's ``card_type`` may add more."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Model name sent in every detection's `model` field.")
    family: str = Field(description="Plugin that decodes this model's outputs.")
    file: str = Field(description="ONNX file name, relative to the card.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    input_width: int = Field(gt=0)
    input_height: int = Field(gt=0)
    color_order: Literal["bgr", "rgb"]
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    resize: Literal["stretch", "letterbox"] = Field(
        "stretch", description="Stretch the frame to the input, or scale it to fit and pad the rest (letterbox).")
    pad_value: int = Field(114, ge=0, le=255, description="Grey level of the letterbox padding, before normalising.")
    input_layout: Literal["nchw", "nhwc"] = "nchw"
    input_dtype: Literal["float32", "uint8"] = Field(
        "float32", description="float32 inputs are normalised with mean/std; uint8 inputs get raw pixels.")
    labels: list[str] = Field(min_length=1, description="Class names in model order (or `labels_file`).")
    licence: str
    source: str

    @model_validator(mode="after")
    def _uint8_input_takes_raw_pixels(self) -> Self:
        if self.input_dtype == "uint8" and (self.mean != (0.0, 0.0, 0.0) or self.std != (1.0, 1.0, 1.0)):
            raise ValueError("a uint8 input takes raw pixels: mean and std cannot be set")
        if any(s == 0 for s in self.std):
            raise ValueError("std cannot contain 0")
        return self


@dataclass(frozen=True)
class Thresholds:
    """A detector's score and overlap thresholds, swapped whole by ``Detector.reconfigure``."""

    min_score: float
    nms_iou: float


class Detector(ABC):
    """Frames in (BGR uint8, any size), detections out (pixel boxes of that frame).

    One detector may serve several cameras from their own threads: ``detect``
    reads ``thresholds`` once per frame, and ``reconfigure`` replaces them whole.
    """

    family: ClassVar[str] = ""
    card_type: ClassVar[type[ModelCard]] = ModelCard

    def __init__(self, card: ModelCard, model_path: Path, *, threads: int, min_score: float, nms_iou: float) -> None:
        self.card = card
        self.model_path = model_path
        self.threads = threads
        self.thresholds = Thresholds(min_score, nms_iou)

    def reconfigure(self, thresholds: Thresholds) -> None:
        self.thresholds = thresholds

    @property
    def min_score(self) -> float:
        return self.thresholds.min_score

    @property
    def nms_iou(self) -> float:
        return self.thresholds.nms_iou

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.card.labels)

    @abstractmethod
    def detect(self, image: np.ndarray) -> Detections:
        """Detect objects in one BGR frame."""


_REGISTRY: dict[str, type[Detector]] = {}


def register(cls: type[Detector]) -> type[Detector]:
    if not cls.family:
        raise TypeError(f"{cls.__name__} must set a family name")
    _REGISTRY[cls.family] = cls
    return cls


def registered_families() -> list[str]:
    return sorted(_REGISTRY)


def plugin_for(family: str) -> type[Detector]:
    try:
        return _REGISTRY[family]
    except KeyError:
        raise DetectorError(f"no detector plugin for family {family!r}; known: {registered_families()}") from None


def card_path_for(model_path: Path) -> Path:
    return model_path.with_suffix(".card.toml")


def _read_labels_file(raw: dict[str, Any], card_path: Path) -> dict[str, Any]:
    labels_file = raw.pop("labels_file", None)
    if labels_file is not None and "labels" not in raw:
        try:
            text = (card_path.parent / labels_file).read_text()
        except OSError as exc:
            raise DetectorError(f"labels file {labels_file} of {card_path} cannot be read: {exc.strerror}") from None
        raw["labels"] = [line.strip() for line in text.splitlines() if line.strip()]
    return raw


def load_card(model_path: Path) -> ModelCard:
    """Read the card beside a model, validated against its family's card type."""
    card_path = card_path_for(model_path)
    try:
        raw = tomllib.loads(card_path.read_text())
    except OSError as exc:
        raise DetectorError(f"model card {card_path} cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise DetectorError(f"model card {card_path} is not valid TOML: {exc}") from None
    raw = _read_labels_file(raw, card_path)
    family = raw.get("family")
    card_type = plugin_for(family).card_type if isinstance(family, str) else ModelCard
    try:
        return card_type.model_validate(raw)
    except ValidationError as exc:
        raise DetectorError(f"model card {card_path} is invalid: {exc}") from None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def create_detector(model_path: Path, *, family: str | None = None, threads: int = 2,
                    min_score: float = 0.35, nms_iou: float = 0.5) -> Detector:
    """Load a model through the plugin its card names, after checking the card."""
    model_path = Path(model_path)
    if not model_path.is_file():
        raise DetectorError(f"model file {model_path} does not exist")
    card = load_card(model_path)
    if family is not None and family != card.family:
        raise DetectorError(f"config asks for a {family!r} detector but {model_path.name} is a {card.family!r} model")
    if card.file != model_path.name:
        raise DetectorError(f"model card names {card.file!r}, not {model_path.name!r}")
    actual = file_sha256(model_path)
    if actual != card.sha256:
        raise DetectorError(f"{model_path.name} has sha256 {actual}, its card says {card.sha256}")
    plugin = plugin_for(card.family)
    return plugin(card, model_path, threads=threads, min_score=min_score, nms_iou=nms_iou)


def detector_for(settings: DetectorConfig) -> Detector:
    """The detector a box config's ``[detector]`` table describes."""
    return create_detector(settings.model, family=settings.type, threads=settings.threads,
                           min_score=settings.min_score, nms_iou=settings.nms_iou)
