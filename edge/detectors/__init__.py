"""Detector back-ends. Each plugin is one module that registers itself here.

Adding a model family means adding one file that defines a class with
``family = "<name>"`` decorated with ``@register``, and importing it below.
"""

from edge.detectors.base import (
    Detector,
    DetectorError,
    ModelCard,
    create_detector,
    detector_for,
    load_card,
    register,
    registered_families,
)
from edge.detectors import nanodet  # noqa: F401  (registers the plugin)
from edge.detectors import ssd  # noqa: F401  (registers the plugin)
from edge.detectors import yolov5  # noqa: F401  (registers the plugin)
from edge.detectors import yolov8  # noqa: F401  (registers the plugin)

__all__ = [
    "Detector",
    "DetectorError",
    "ModelCard",
    "create_detector",
    "detector_for",
    "load_card",
    "register",
    "registered_families",
]
