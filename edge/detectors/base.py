"""The one interface every detector back-end implements, and the plugin registry.

A model ships as ``NAME.onnx`` with a model card ``NAME.card.toml`` beside it
(family, input size, colour order, normalisation, labels, licence, sha256).
The card is checked against the file when the detector is created.
"""

from __future__ import annotations

import hashlib
import tomllib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.detections import Detections


class DetectorError(RuntimeError):
    """The model cannot be loaded or run: wrong card, wrong file, wrong family."""


class ModelCard(BaseModel):
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
    labels: list[str] = Field(min_length=1, description="Class names in model order (or `labels_file`).")
    licence: str
    source: str


class Detector(ABC):
    """Frames in (BGR uint8, any size), detections out (pixel boxes of that frame)."""

    family: str = ""

    def __init__(self, card: ModelCard, model_path: Path, *, threads: int, min_score: float, nms_iou: float) -> None:
        self.card = card
        self.model_path = model_path
        self.threads = threads
        self.min_score = min_score
        self.nms_iou = nms_iou

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


def card_path_for(model_path: Path) -> Path:
    return model_path.with_suffix(".card.toml")


def load_card(model_path: Path) -> ModelCard:
    card_path = card_path_for(model_path)
    try:
        raw = tomllib.loads(card_path.read_text())
    except OSError as exc:
        raise DetectorError(f"model card {card_path} cannot be read: {exc.strerror}") from None
    labels_file = raw.pop("labels_file", None)
    if labels_file is not None and "labels" not in raw:
        try:
            raw["labels"] = [line.strip() for line in (card_path.parent / labels_file).read_text().splitlines()
                             if line.strip()]
        except OSError as exc:
            raise DetectorError(f"labels file {labels_file} of {card_path} cannot be read: {exc.strerror}") from None
    try:
        return ModelCard.model_validate(raw)
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
    try:
        plugin = _REGISTRY[card.family]
    except KeyError:
        raise DetectorError(f"no detector plugin for family {card.family!r}; known: {registered_families()}") from None
    return plugin(card, model_path, threads=threads, min_score=min_score, nms_iou=nms_iou)
