"""Frame -> model input tensor as the card describes it, and the way back for boxes."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.detectors.base import ModelCard


@dataclass(frozen=True)
class InputTransform:
    """How frame pixels were placed on the model input: input = frame * scale + pad."""

    scale_x: float
    scale_y: float
    pad_x: float = 0.0
    pad_y: float = 0.0

    def to_frame(self, xyxy: np.ndarray) -> np.ndarray:
        """Boxes in model-input pixels -> boxes in frame pixels (not clipped)."""
        scale = np.array([self.scale_x, self.scale_y] * 2, dtype=np.float32)
        pad = np.array([self.pad_x, self.pad_y] * 2, dtype=np.float32)
        return ((xyxy - pad) / scale).astype(np.float32)


@dataclass
class InputBuffers:
    """Arrays one thread fills frame after frame instead of allocating (and page-faulting) fresh ones.

    Filled on first use; each is replaced when a frame needs another shape.
    """

    placed: np.ndarray | None = None         # the resized frame, uint8 HxWx3
    planes: list[np.ndarray] | None = None   # its three channels
    tensor: np.ndarray | None = None         # the float32 1x3xHxW model input


def _reused(buffer: np.ndarray | None, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    if buffer is None or buffer.shape != shape or buffer.dtype != dtype:
        return np.empty(shape, dtype=dtype)
    return buffer


def stretch(image: np.ndarray, size: tuple[int, int],
            dst: np.ndarray | None = None) -> tuple[np.ndarray, InputTransform]:
    width, height = size
    frame_h, frame_w = image.shape[:2]
    dst = _reused(dst, (height, width) + image.shape[2:], image.dtype)
    resized = cv2.resize(image, size, dst=dst, interpolation=cv2.INTER_LINEAR)
    return resized, InputTransform(width / frame_w, height / frame_h)


def letterbox(image: np.ndarray, size: tuple[int, int], pad_value: int) -> tuple[np.ndarray, InputTransform]:
    """Scale to fit inside ``size`` keeping the aspect ratio, centred on a padded canvas."""
    width, height = size
    frame_h, frame_w = image.shape[:2]
    scale = min(width / frame_w, height / frame_h)
    new_w, new_h = max(1, round(frame_w * scale)), max(1, round(frame_h * scale))
    left, top = (width - new_w) // 2, (height - new_h) // 2
    canvas = np.full((height, width, 3), pad_value, dtype=np.uint8)
    canvas[top:top + new_h, left:left + new_w] = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return canvas, InputTransform(new_w / frame_w, new_h / frame_h, float(left), float(top))


def model_input(image: np.ndarray, card: ModelCard,
                buffers: InputBuffers | None = None) -> tuple[np.ndarray, InputTransform]:
    """A BGR uint8 frame as the batch-of-one tensor the card's model takes.

    With ``buffers``, the resized frame and the float32 NCHW tensor are written
    into the arrays it holds (kept there for the next frame), so a detector
    reuses them; the returned tensor is then one of those arrays.
    """
    size = (card.input_width, card.input_height)
    if card.resize == "letterbox":
        placed, transform = letterbox(image, size, card.pad_value)
    else:
        placed, transform = stretch(image, size, None if buffers is None else buffers.placed)
        if buffers is not None:
            buffers.placed = placed
    if card.color_order == "rgb":
        placed = cv2.cvtColor(placed, cv2.COLOR_BGR2RGB)
    if card.input_dtype == "float32" and card.input_layout == "nchw":
        if buffers is None:
            return normalised_nchw(placed, card.mean, card.std), transform
        buffers.tensor = normalised_nchw(placed, card.mean, card.std, buffers.tensor, buffers)
        return buffers.tensor, transform
    if card.input_dtype == "float32":
        mean = np.asarray(card.mean, dtype=np.float32)
        std = np.asarray(card.std, dtype=np.float32)
        tensor = (placed.astype(np.float32) - mean) / std
    else:
        tensor = placed
    if card.input_layout == "nchw":
        tensor = tensor.transpose(2, 0, 1)
    return np.ascontiguousarray(tensor[None]), transform


def normalised_nchw(image: np.ndarray, mean: tuple[float, float, float], std: tuple[float, float, float],
                    out: np.ndarray | None = None, buffers: InputBuffers | None = None) -> np.ndarray:
    """(pixel - mean) / std as a 1x3xHxW float32 tensor, written into ``out`` when it fits.

    One OpenCV pass per channel straight into the output planes: several
    times faster than the numpy expression, and this runs on every frame.
    """
    height, width = image.shape[:2]
    out = _reused(out, (1, 3, height, width), np.float32)
    planes = None
    if buffers is not None:
        planes = buffers.planes = [_reused(p, (height, width), np.uint8) for p in buffers.planes or [None] * 3]
    for c, channel in enumerate(cv2.split(image, planes)):
        scale = 1.0 / std[c]
        cv2.addWeighted(channel, scale, channel, 0.0, -mean[c] * scale, dst=out[0, c], dtype=cv2.CV_32F)
    return out
