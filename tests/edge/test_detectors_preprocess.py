"""Frames onto model inputs as a card describes them, and boxes back."""

from __future__ import annotations

import numpy as np
import pytest

from edge.detectors.base import ModelCard
from edge.detectors.preprocess import InputTransform, letterbox, model_input, stretch


def card(**fields) -> ModelCard:
    base = dict(name="m", family="yolov8", file="m.onnx", sha256="0" * 64, input_width=64, input_height=64,
                color_order="bgr", labels=["person"], licence="test", source="test")
    return ModelCard(**{**base, **fields})


def test_a_wide_frame_is_letterboxed_with_bands_above_and_below():
    frame = np.full((64, 128, 3), 255, np.uint8)
    placed, transform = letterbox(frame, (64, 64), pad_value=114)
    assert transform == InputTransform(0.5, 0.5, 0.0, 16.0)
    assert (placed[:16] == 114).all() and (placed[48:] == 114).all() and (placed[16:48] == 255).all()


def test_a_tall_frame_is_letterboxed_with_bands_left_and_right():
    frame = np.full((200, 100, 3), 255, np.uint8)
    placed, transform = letterbox(frame, (64, 64), pad_value=0)
    assert transform == InputTransform(0.32, 0.32, 16.0, 0.0)
    assert (placed[:, :16] == 0).all() and (placed[:, 48:] == 0).all() and (placed[:, 16:48] == 255).all()


@pytest.mark.parametrize("place", [lambda f: letterbox(f, (64, 48), 114), lambda f: stretch(f, (64, 48))])
def test_boxes_map_back_to_the_frame(place):
    frame = np.zeros((90, 160, 3), np.uint8)
    _, transform = place(frame)
    frame_box = np.array([[20.0, 30.0, 100.0, 60.0]], np.float32)
    scale = np.array([transform.scale_x, transform.scale_y] * 2)
    pad = np.array([transform.pad_x, transform.pad_y] * 2)
    input_box = (frame_box * scale + pad).astype(np.float32)
    assert np.allclose(transform.to_frame(input_box), frame_box, atol=1e-4)


def test_float_nchw_input_is_normalised_in_the_cards_colour_order():
    blue = np.zeros((32, 32, 3), np.uint8)
    blue[..., 0] = 255
    tensor, _ = model_input(blue, card(color_order="rgb", mean=(0, 0, 0), std=(255, 255, 255)))
    assert tensor.shape == (1, 3, 64, 64) and tensor.dtype == np.float32
    assert tensor[0, 2].min() == 1.0 and tensor[0, :2].max() == 0.0


def test_uint8_nhwc_input_gets_raw_pixels():
    frame = np.full((32, 64, 3), 200, np.uint8)
    tensor, transform = model_input(frame, card(input_layout="nhwc", input_dtype="uint8", resize="letterbox"))
    assert tensor.shape == (1, 64, 64, 3) and tensor.dtype == np.uint8
    assert tensor[0, 32, 32, 0] == 200 and tensor[0, 0, 0, 0] == 114
    assert transform.pad_y == 16.0
