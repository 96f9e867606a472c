"""Build the footage in tests/data/ from OpenCV's vtest.avi (Debian package opencv-doc).

    apt-get install opencv-doc
    .venv/bin/python tests/data/make_clips.py

Writes:
- vtest_cut.mp4: the first 20 s of vtest.avi, unchanged apart from re-encoding.
- campus_demo.mp4: the first 60 s at 5 fps, with two incidents made from the
  clip's own pixels, because the real footage has none: a man who stands on
  the road for about 6 s later in the video (frames 550-612: he gestures and
  shifts his weight) stands on the grass beside the path from 0 s to 45 s (a
  vendor) - each of his real frames is cut out with its own soft mask, the
  63 frames are played forward and backward for as long as he stays, with a
  slight sway and a soft shadow at his feet; the yellow cloth lying on the
  lawn is copied onto the lower-right verge from 15 s on (dumped waste).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import cv2
import numpy as np

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
HERE = Path(__file__).resolve().parent
FPS = 10

PERSON_FRAMES = range(550, 613)          # a man in black standing on the road, frames 550-612
PERSON_BOX = (630, 294, 684, 420)        # around him in those frames (x1, y1, x2, y2)
PERSON_FEET = (656, 410)                 # his feet there
PERSON_FEET_AT = (140, 345)              # where the vendor stands
PERSON_SCALE = (37 + 0.165 * 345) / (37 + 0.165 * 410)   # standing height on vtest's ground plane
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


def person_frames(frames: list[np.ndarray], background: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The standing man in each of PERSON_FRAMES, cut out with its own soft mask and scaled."""
    cuts = []
    for index in PERSON_FRAMES:
        patch, alpha = cut_out(frames[index], background, PERSON_BOX, threshold=110)   # not his shadow
        mask = (alpha[..., 0] > 0.5).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(mask, contours, -1, 1, thickness=-1)           # fill holes (a dark coat on grey)
        mask = cv2.erode(mask, np.ones((2, 2), np.uint8))              # no road-grey rim
        alpha = cv2.GaussianBlur(mask.astype(np.float32), (5, 5), 0)
        size = (round(patch.shape[1] * PERSON_SCALE), round(patch.shape[0] * PERSON_SCALE))
        cuts.append((cv2.resize(patch, size, interpolation=cv2.INTER_AREA),
                     cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)[..., None]))
    return cuts


def paste_person(frame: np.ndarray, cuts: list, t_s: float) -> np.ndarray:
    """The vendor at time t_s: his real frames played forward and backward, with a slight sway."""
    period = 2 * (len(cuts) - 1)
    k = int(round(t_s * FPS)) % period
    patch, alpha = cuts[k if k < len(cuts) else period - k]
    dx = 1.3 * math.sin(2 * math.pi * t_s / 3.7) + 0.6 * math.sin(2 * math.pi * t_s / 1.9 + 1.0)
    dy = 0.4 * math.sin(2 * math.pi * t_s / 2.3)
    shift = np.float32([[1, 0, dx % 1.0], [0, 1, dy % 1.0]])
    size = (patch.shape[1], patch.shape[0])
    patch = cv2.warpAffine(patch, shift, size, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(alpha, shift, size)[..., None]
    feet_x, feet_y = PERSON_FEET_AT
    x = int(math.floor(feet_x + (PERSON_BOX[0] - PERSON_FEET[0]) * PERSON_SCALE + dx))
    y = int(math.floor(feet_y + (PERSON_BOX[1] - PERSON_FEET[1]) * PERSON_SCALE + dy))
    # a soft shadow on the grass at his feet
    out = frame.copy()
    yy, xx = np.mgrid[feet_y - 12:feet_y + 8, feet_x - 30:feet_x + 30].astype(np.float32)
    shade = 0.3 * np.exp(-1.4 * (((xx - feet_x - dx) / 17) ** 2 + ((yy - feet_y + 1) / 4.5) ** 2))
    region = out[feet_y - 12:feet_y + 8, feet_x - 30:feet_x + 30].astype(np.float32)
    out[feet_y - 12:feet_y + 8, feet_x - 30:feet_x + 30] = (region * (1 - shade[..., None])).astype(np.uint8)
    return paste(out, patch, alpha, (x, y))


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
    person = person_frames(frames, background)
    x1, y1, x2, y2 = CLOTH_BOX
    cloth_patch = frames[0][y1:y2, x1:x2]
    cloth, cloth_alpha = cut_out(cloth_patch, lawn_colour_reference(cloth_patch), (0, 0, x2 - x1, y2 - y1),
                                 threshold=90)

    demo = []
    for index in range(0, 60 * FPS, 2):
        t_s = index / FPS
        frame = frames[index]
        if t_s < PERSON_UNTIL_S:
            frame = paste_person(frame, person, t_s)
        if t_s >= CLOTH_FROM_S:
            frame = paste(frame, cloth, cloth_alpha, CLOTH_AT)
        demo.append(frame)
    write_clip(HERE / "campus_demo.mp4", demo, FPS / 2)
    cv2.imwrite("/tmp/campus_demo_20s.png", demo[100])
    return 0


if __name__ == "__main__":
    sys.exit(main())
