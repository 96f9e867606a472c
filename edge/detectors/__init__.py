"""Detector back-ends. Each plugin is one module that registers itself here.

Adding a model family means adding one file to this package that defines a
class with ``family = "<name>"`` decorated with ``@register``: every module of
the package is imported below, so the registry, and with it the detector
types the box config accepts, knows the family without a second step.
Modules keep heavy imports (onnxruntime) out of their top level, because the
box config imports this package to learn the types.
"""

import importlib
import pkgutil

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

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

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
