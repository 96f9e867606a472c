"""Build the footage in tests/data/ from OpenCV's vtest.avi (Debian package opencv-doc).

    apt-get install opencv-doc
    .venv/bin/python tests/data/make_clips.py

Writes:
- vtest_cut.mp4: the first 20 s of vtest.avi, unchanged apart from re-encoding.
- campus_demo.mp4: the first 60 s at 5 fps, with two incidents made from the
  clip's own pixels, because the real footage has none: a man seen standing
  in frame 0 is cut out and stands on the grass beside the path from 0 s to
  45 s (a vendor); the yellow cloth lying on the lawn is copied onto the
  lower-right verge from 15 s on (dumped waste).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
HERE = Path(__file__).resolve().parent
FPS = 10

PERSON_BOX = (246, 214, 290, 314)        # the standing man in frame 0 (x1, y1, x2, y2)
PERSON_FEET_AT = (140, 345)              # where the clone stands
PERSON_UNTIL_S = 45.0
CLOTH_BOX = (62, 490, 164, 532)          # the yellow cloth on the lawn
CLOTH_AT = (560, 500)                    # top-left corner of the copy
CLOTH_FROM_S = 15.0


def read_frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


def write_clip(path: Path, frames: list[np.ndarray], fps: float) -> None:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    print(f"{path.name}: {len(frames)} frames, {path.stat().st_size / 1e6:.1f} MB")


def cut_out(image: np.ndarray, reference: np.ndarray, box: tuple[int, int, int, int], threshold: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of ``box`` that differ from ``reference``, with a soft alpha mask."""
    x1, y1, x2, y2 = box
    patch = image[y1:y2, x1:x2]
    diff = cv2.absdiff(patch, reference[y1:y2, x1:x2]).sum(axis=2)
    mask = (diff > threshold).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    mask = (labels == largest).astype(np.float32)
    alpha = cv2.GaussianBlur(mask, (5, 5), 0)[..., None]
    return patch.copy(), alpha


def paste(frame: np.ndarray, patch: np.ndarray, alpha: np.ndarray, top_left: tuple[int, int]) -> np.ndarray:
    x, y = top_left
    h, w = patch.shape[:2]
    out = frame.copy()
    region = out[y:y + h, x:x + w].astype(np.float32)
    out[y:y + h, x:x + w] = (alpha * patch + (1 - alpha) * region).astype(np.uint8)
    return out


def lawn_colour_reference(patch: np.ndarray) -> np.ndarray:
    """A patch of plain lawn: the median colour of the patch's border."""
    border = np.concatenate([patch[0], patch[-1], patch[:, 0], patch[:, -1]])
    return np.broadcast_to(np.median(border, axis=0).astype(np.uint8), patch.shape).copy()


def main() -> int:
    if not VTEST.is_file():
        print(f"{VTEST} is missing: apt-get install opencv-doc", file=sys.stderr)
        return 1
    frames = read_frames(VTEST)
    write_clip(HERE / "vtest_cut.mp4", frames[: 20 * FPS], FPS)

    background = np.median(np.stack(frames[::13]), axis=0).astype(np.uint8)
    person, person_alpha = cut_out(frames[0], background, PERSON_BOX, threshold=60)
    feet_x = PERSON_FEET_AT[0] - (PERSON_BOX[2] - PERSON_BOX[0]) // 2
    feet_y = PERSON_FEET_AT[1] - (PERSON_BOX[3] - PERSON_BOX[1])
    x1, y1, x2, y2 = CLOTH_BOX
    cloth_patch = frames[0][y1:y2, x1:x2]
    cloth, cloth_alpha = cut_out(cloth_patch, lawn_colour_reference(cloth_patch), (0, 0, x2 - x1, y2 - y1),
                                 threshold=90)

    demo = []
    for index in range(0, 60 * FPS, 2):
        t_s = index / FPS
        frame = frames[index]
        if t_s < PERSON_UNTIL_S:
            frame = paste(frame, person, person_alpha, (feet_x, feet_y))
        if t_s >= CLOTH_FROM_S:
            frame = paste(frame, cloth, cloth_alpha, CLOTH_AT)
        demo.append(frame)
    write_clip(HERE / "campus_demo.mp4", demo, FPS / 2)
    cv2.imwrite("/tmp/campus_demo_20s.png", demo[100])
    return 0


if __name__ == "__main__":
    sys.exit(main())
