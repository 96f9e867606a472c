"""Edge benchmark: the whole camera pipeline against the bare model, and motion gating on a still scene.

    .venv/bin/python bench/bench_edge.py [--rounds 5]

Prints, from one run on the same frames:
- pipeline fps / raw InferenceSession.run fps (target >= 0.9): the cost of
  everything around the model (resize, decode, NMS, filters, left-object
  finder, tracker, rules), measured on real frames with people walking;
- detector calls / frames on a still scene with motion gating (target <= 0.2).
Rounds alternate between the two measurements so that load from other
processes hits both alike; the median ratio is reported.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.camera import Frame, file_frames  # noqa: E402
from edge.config import load_config  # noqa: E402
from edge.detectors import create_detector  # noqa: E402
from edge.detectors.preprocess import model_input  # noqa: E402
from edge.pipeline import CameraPipeline  # noqa: E402

CONFIG = ROOT / "firmware_configs" / "demo-campus.toml"
CLIP = ROOT / "tests" / "data" / "vtest_cut.mp4"


def load_frames() -> list[Frame]:
    return list(file_frames("road", str(CLIP), 5.0, start_ms=0))


def interleaved_round(config, detector, frames: list[Frame]) -> tuple[float, float, int]:
    """Raw session.run and the whole pipeline, frame by frame, so load hits both alike.

    Returns raw fps, pipeline fps and how many frames the pipeline ran the detector on.
    """
    session, name = detector.session, detector.session.get_inputs()[0].name
    pipeline = CameraPipeline(config.cameras[0], config.rules, detector, config.static_objects, config.tracker)
    raw_s = whole_s = 0.0
    for frame in frames:
        blob, _ = model_input(frame.image, detector.card)
        started = time.perf_counter()
        session.run(None, {name: blob})
        raw_s += time.perf_counter() - started
        started = time.perf_counter()
        pipeline.process(frame)
        whole_s += time.perf_counter() - started
    return len(frames) / raw_s, len(frames) / whole_s, pipeline.detector_calls


def still_scene(frames: list[Frame], seconds: float, fps: float) -> list[Frame]:
    """The empty scene (median of the clip) with camera noise, frame after frame."""
    background = np.median(np.stack([f.image for f in frames[::5]]), axis=0).astype(np.float32)
    rng = np.random.default_rng(0)
    count = int(seconds * fps)
    return [Frame("road", i, i / fps, int(i * 1000 / fps),
                  np.clip(background + rng.normal(0, 2.0, background.shape), 0, 255).astype(np.uint8))
            for i in range(count)]


def gated_calls(config, detector, frames: list[Frame]) -> tuple[int, int]:
    pipeline = CameraPipeline(config.cameras[0], config.rules, detector, config.static_objects, config.tracker)
    for frame in frames:
        pipeline.process(frame)
    return pipeline.detector_calls, pipeline.frames


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    config = load_config(CONFIG)
    detector = create_detector(config.detector.model, threads=config.detector.threads,
                               min_score=config.detector.min_score)
    frames = load_frames()
    interleaved_round(config, detector, frames[:5])  # warm-up
    ratios = []
    for round_no in range(1, args.rounds + 1):
        raw, whole, calls = interleaved_round(config, detector, frames)
        ratios.append(whole / raw)
        print(f"round {round_no}: raw session.run {raw:6.1f} fps, whole pipeline {whole:6.1f} fps "
              f"(detector on {calls}/{len(frames)} frames), ratio {whole / raw:.3f}")
    ratio = statistics.median(ratios)
    print(f"pipeline fps / raw fps (median of {args.rounds}): {ratio:.3f}  target >= 0.9  "
          f"{'OK' if ratio >= 0.9 else 'MISSED'}")
    still = still_scene(frames, seconds=60, fps=config.cameras[0].fps)
    calls, count = gated_calls(config, detector, still)
    share = calls / count
    print(f"still scene: {calls} detector calls / {count} frames = {share:.3f}  target <= 0.2  "
          f"{'OK' if share <= 0.2 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
