"""What YOLO exports share: a letterboxed input and boxes as centre and size in input pixels."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edge.detectors.base import ModelCard


class YoloCard(ModelCard):
    """YOLO models are trained on letterboxed images, so that is the default here."""

    resize: Literal["stretch", "letterbox"] = Field(
        "letterbox", description="Stretch the frame to the input, or scale it to fit and pad the rest (letterbox).")
