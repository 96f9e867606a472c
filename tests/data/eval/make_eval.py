"""Build the incident evaluation clips in tests/data/eval/clips/ from their real sources.

    .venv/bin/python tests/data/eval/make_eval.py            # build what is missing or stale
    .venv/bin/python tests/data/eval/make_eval.py --force    # rebuild every clip
    .venv/bin/python tests/data/eval/make_eval.py --only vtest-bag-busy
    .venv/bin/python tests/data/eval/make_eval.py --write-truth   # (re)write the ground-truth TOMLs

Sources (sha256-checked before use, see README.md beside this file):

- vtest.avi and box.png from Debian's opencv-doc 4.6.0 (Apache-2.0 AND BSD-3-Clause), read from
  /usr/share/doc/opencv-doc/examples/data/; when absent they are fetched with ``apt-get download
  opencv-doc`` into a temporary directory and only those files are extracted with
  ``dpkg-deb --fsys-tarfile | tar -x`` (nothing is installed);
- car-detection.mp4 and one-by-one-person-detection.mp4 from intel-iot-devkit/sample-videos
  (CC BY 4.0), committed unchanged in sources/.

Every clip is real footage of one fixed camera (played forward, sometimes then backward:
"ping-pong") with incidents pasted in from real pixels: objects cut from the footage or from a
photo with a soft mask and a soft shadow, composited *under* the real passers-by (each frame's
foreground is estimated by difference to a clean per-pixel median background and the object is
not painted where foreground is), and standing people made of a sequence of real frames of one
real standing person, ping-ponged, with a slight sway. The recipe of each clip is in CLIPS below;
the ground truth (``<clip>.toml``) is written from the same recipe with ``--write-truth``.

Deterministic: no randomness is used (the sway is a fixed sum of sines). Idempotent:
clips/manifest.json keeps each clip's recipe hash and output sha256; a clip whose output exists
with a matching sha256 and recipe hash is skipped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from edge.detectors.base import file_sha256

HERE = Path(__file__).resolve().parent
CLIPS_DIR = HERE / "clips"
CACHE_DIR = CLIPS_DIR / "cache"
MANIFEST = CLIPS_DIR / "manifest.json"
DEBIAN_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
DEBIAN_PACKAGE = "opencv-doc"

# name -> (file name, sha256, where it comes from)
SOURCE_FILES = {
    "vtest": ("vtest.avi", "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf", "debian"),
    "box_photo": ("box.png", "1094629c1e2ebbc8a9ae2c9c63e18c1dff0f5f1481146e02f3b11a3d30feb20a", "debian"),
    "lot": ("car-detection.mp4", "d31e0ebf194cc16e50eea784e7c3b0b1bb7976a4fb9b3fec26cb92a6704cca34", "sources"),
    "hall": ("one-by-one-person-detection.mp4",
             "a5964aa259099a482a8b360ffc2c57b5a30f84d5919236a4dad01f8e929ac07c", "sources"),
}

# Per scene: the source video, its frame rate, the frames whose median is the clean background
# (the hall's people stand long at the table, so only its empty moments are used), the
# foreground threshold (sum of absolute BGR differences) and the smallest foreground blob.
SCENES = {
    "vtest": dict(source="vtest", fps=10.0, config="scenes/vtest.toml", camera="street",
                  bg_frames=[(0, 794, 13)], fg_threshold=55, fg_min_area=40, shadow_ratio=(0.8, 0.97)),
    "hall": dict(source="hall", fps=10.0, config="scenes/hall.toml", camera="hall",
                 bg_frames=[(0, 70, 5), (190, 235, 5), (450, 505, 5), (700, 760, 5), (870, 920, 5),
                            (1210, 1235, 5), (1360, 1393, 5)], fg_threshold=60, fg_min_area=150,
                 shadow_ratio=(0.5, 0.95)),
    "lot": dict(source="lot", fps=12.5, config="scenes/lot.toml", camera="lot",
                bg_frames=[(0, 60, 4), (125, 200, 4), (245, 325, 4)], fg_threshold=60, fg_min_area=150,
                shadow_ratio=(0.5, 0.97)),
}

# ---------------------------------------------------------------------------------------------
# Pasted things. Objects: (x, y) is the bottom centre where it lies, "width" its width in pixels
# there. Actors: real frames of one real person (walk-in frames, then standing frames that are
# ping-ponged), cut with their own per-frame soft mask.
# ---------------------------------------------------------------------------------------------

# vtest: the man in black who stands on the road from frame 550 to 612 (he gestures, shifts his
# weight); he walks the last metre to that spot in frames 530-549. Boxes from the detector at
# 2 fps, interpolated.
VT_MAN = dict(scene="vtest", walk=(530, 549), stand=(550, 612), feet=(656, 410), threshold=110,  # not his shadow
              boxes={530: (629, 268, 669, 370), 535: (630, 276, 676, 380), 540: (634, 283, 682, 390),
                     545: (630, 292, 676, 402), 550: (636, 300, 678, 414), 612: (636, 300, 678, 414)})
# hall: the woman in the grey cardigan who walks in from the camera (frames 924-944) and stands
# at the table reading (945-1170).
HALL_WOMAN = dict(scene="hall", walk=(926, 944), stand=(945, 1170), feet=(455, 402),
                  boxes={926: (330, 0, 600, 432), 1170: (330, 0, 600, 432)})
ACTORS = {"vt_man": VT_MAN, "hall_woman": HALL_WOMAN}


def person_height_vtest(feet_y: float) -> float:
    """Height in pixels of a standing adult on the vtest ground plane (fitted to detector boxes)."""
    return 37.0 + 0.165 * feet_y


# ---------------------------------------------------------------------------------------------
# The clips. Times are output seconds. Timelines are lists of source frame ranges (inclusive,
# backward when the first is larger) or ("pp", a, b, n): n frames bouncing between a and b.
# ---------------------------------------------------------------------------------------------

VT_FWD = [(0, 794)]
VT_PINGPONG = [(0, 794), (793, 1)]
# the real man in black is in view from about frame 340 (he crosses the road, comes back and stands
# at 550-612): clips that paste him use only frames 0-335, ping-ponged
VT_NO_MAN = [(0, 335), (334, 0), (1, 200)]
VT_NO_MAN_LONG = [(0, 335), (334, 0), (1, 335), (334, 100)]
HALL_FWD = [(0, 1393)]
HALL_NO_WOMAN = [(0, 899), (898, 500)]           # avoids 920-1210 where the real woman stands
HALL_NO_WOMAN_LONG = [(0, 899), (898, 0)]
HALL_NO_WOMAN_SHORT = [(0, 899)]
LOT_PINGPONG = [(0, 376), (375, 1), (0, 376)]

CLIPS: list[dict] = [
    # ------------------------------------------------------------------ vtest: dumping
    dict(name="vtest-bag-busy", scene="vtest", split="tune", timeline=VT_FWD,
         description="A black bin bag (cut from the footage, where one lies by the kerb) is dropped on the "
                     "busiest stretch of the road at 10.2 s by a passer-by and stays to the end; real "
                     "passers-by walk over and in front of it about 20 times.",
         objects=[dict(obj="binbag", at=(375, 240), width=38, from_s=10.2, left_s=12.3,
                       incident=dict(category="illegal_dumping", zone="road"))]),
    dict(name="vtest-box-early", scene="vtest", split="holdout", timeline=VT_FWD,
         description="A light cardboard box is left on the road at 3 s, while people are in the scene from "
                     "the first frame (no clean background at start); it stays to the end.",
         objects=[dict(obj="box", at=(495, 255), width=30, from_s=1.6, left_s=2.0,
                       incident=dict(category="illegal_dumping", zone="road"))]),
    dict(name="vtest-bag-early", scene="vtest", split="tune", timeline=[(300, 794), (793, 500)],
         description="A black bin bag is left on the road at 0.8 s (left 1.2 s), within the first seconds "
                     "after the box starts, while people walk the road (source frames 300-794, then back "
                     "to 500): one dumping incident.",
         objects=[dict(obj="binbag", at=(430, 300), width=36, from_s=0.8, left_s=1.2,
                       incident=dict(category="illegal_dumping", zone="road"))]),
    dict(name="vtest-two-objects", scene="vtest", split="tune", timeline=[(400, 794), (793, 200)],
         description="Two objects left at different spots: a yellow cloth dropped on the verge below the "
                     "kerb at 11 s by two passers-by, and a white plastic bag on the road at 28 s; both stay "
                     "to the end (source frames 400-794 forward, then back to 200).",
         objects=[dict(obj="cloth", at=(680, 520), width=74, from_s=11.0, left_s=11.5,
                       incident=dict(category="illegal_dumping", zone="verge")),
                  dict(obj="whitebag", at=(470, 290), width=30, from_s=28.0, left_s=28.2,
                       incident=dict(category="illegal_dumping", zone="road"))]),
    dict(name="vtest-taken-away", scene="vtest", split="tune", timeline=VT_FWD,
         description="A box is put down on the road at 12 s by a passer-by and picked up by another at "
                     "25.5 s (13.5 s, shorter than the zone's dwell): no incident.",
         objects=[dict(obj="box", at=(530, 252), width=28, from_s=12.0, until_s=25.5, incident=None)]),
    dict(name="vtest-carried", scene="vtest", split="holdout", timeline=VT_FWD,
         description="A man carries a white plastic bag across the road and the plaza (34-41 s) without "
                     "stopping: no incident (he is followed by the bag's keyframed position, interpolated).",
         carried=[dict(obj="whitebag", width=24, hand=(0.78, 0.62),
                       boxes={340: (331, 213, 369, 298), 350: (384, 230, 415, 320), 360: (433, 240, 466, 336),
                              365: (469, 245, 504, 347), 370: (500, 255, 537, 350), 375: (533, 259, 570, 359),
                              380: (562, 268, 612, 370), 385: (596, 274, 637, 382), 390: (624, 284, 679, 391),
                              395: (666, 294, 712, 405), 400: (687, 300, 744, 409), 403: (700, 303, 757, 411)})]),
    # ------------------------------------------------------------------ vtest: no incident, light
    dict(name="vtest-light", scene="vtest", split="tune", timeline=VT_PINGPONG,
         description="The real footage played forward then backward (158.8 s) under a slow light change "
                     "(a cloud: 100% to 70% over 50 s and back) and two camera auto-exposure steps "
                     "(+25% at 110 s, back at 140 s): no incident.",
         light=[(0, 1.0), (10, 1.0), (60, 0.70), (75, 0.70), (100, 1.0), (110, 1.0), (110.3, 1.25),
                (140, 1.25), (140.3, 1.0), (999, 1.0)]),
    dict(name="vtest-crowd-cone", scene="vtest", split="tune", timeline=VT_PINGPONG,
         description="The real footage played forward then backward (158.8 s), nothing pasted: groups of "
                     "people cross the plaza zone, and the traffic cone in the barrier-kerb zone (which the "
                     "detector calls 'person') stands all along: no incident."),
    # ------------------------------------------------------------------ vtest: vending
    dict(name="vtest-vendor", scene="vtest", split="tune", timeline=VT_NO_MAN,
         description="A man walks onto the plaza and stands there from 8 s to 52 s (44 s), then walks off: "
                     "one street-vending incident.",
         actors=[dict(actor="vt_man", at=(600, 336), stays=[(8.0, 52.0)], zone="plaza")]),
    dict(name="vtest-vendor-short", scene="vtest", split="tune", timeline=VT_NO_MAN,
         description="The same man stands on the plaza for only 12 s (30-42 s), shorter than the zone's "
                     "dwell: no incident.",
         actors=[dict(actor="vt_man", at=(620, 350), stays=[(30.0, 42.0)], zone=None)]),
    dict(name="vtest-vendor-return", scene="vtest", split="holdout", timeline=VT_NO_MAN_LONG,
         description="A man stands on the plaza from 5 s to 37 s, walks off, and comes back to stand near "
                     "the same spot from 62 s to 96 s: two street-vending incidents.",
         actors=[dict(actor="vt_man", at=(700, 392), stays=[(5.0, 37.0)], zone="plaza"),
                 dict(actor="vt_man", at=(690, 388), stays=[(62.0, 96.0)], zone="plaza")]),
    dict(name="vtest-vendor-kerb", scene="vtest", split="tune", timeline=VT_NO_MAN,
         description="A man stands on the kerb by the barrier tape, a few metres from the traffic cones, "
                     "from 6 s to 40 s while people walk along the kerb past him: one street-vending incident.",
         actors=[dict(actor="vt_man", at=(235, 228), stays=[(6.0, 40.0)], zone="barrier-kerb")]),
    # ------------------------------------------------------------------ hall
    dict(name="hall-vendor", scene="hall", split="tune", timeline=HALL_NO_WOMAN,
         description="A woman walks in and stands by the wall left of the table from 10 s to 55 s (45 s), "
                     "reading: one street-vending incident (the hall's floor is a no-vending zone).",
         actors=[dict(actor="hall_woman", at=(260, 402), stays=[(10.0, 55.0)], zone="floor-west")]),
    dict(name="hall-vendor-return", scene="hall", split="holdout", timeline=HALL_NO_WOMAN_LONG,
         description="A woman stands left of the table from 8 s to 44 s, leaves, and stands there again "
                     "from 90 s to 128 s: two street-vending incidents.",
         actors=[dict(actor="hall_woman", at=(255, 402), stays=[(8.0, 44.0)], zone="floor-west"),
                 dict(actor="hall_woman", at=(266, 404), stays=[(90.0, 128.0)], zone="floor-west")]),
    dict(name="hall-vendor-short", scene="hall", split="holdout", timeline=HALL_NO_WOMAN_SHORT,
         description="A woman stands left of the table for 12 s only (40-52 s): no incident.",
         actors=[dict(actor="hall_woman", at=(262, 402), stays=[(40.0, 52.0)], zone=None)]),
    dict(name="hall-table", scene="hall", split="tune", timeline=HALL_FWD,
         description="A second bistro table (cut from the footage's own empty frame) is left on the right "
                     "of the hall at 44.5 s as a man walks out past it; later people walk out past it "
                     "again: one dumping incident.",
         objects=[dict(obj="table", at=(668, 338), width=146, from_s=44.5, left_s=45.4, shadow=False,
                       incident=dict(category="illegal_dumping", zone="floor-east"))]),
    dict(name="hall-box", scene="hall", split="holdout", timeline=HALL_FWD,
         description="A cardboard box is left on the floor right of the table at 19.3 s by a man walking "
                     "out, and stays: one dumping incident.",
         objects=[dict(obj="box", at=(600, 392), width=84, from_s=19.3, left_s=19.7,
                       incident=dict(category="illegal_dumping", zone="floor-east"))]),
    dict(name="hall-cloth", scene="hall", split="tune", timeline=HALL_FWD,
         description="A yellow cloth (cut from the lawn in vtest) is dropped on the floor by the pillar at "
                     "69.6 s by a man walking out; later people walk over it: one dumping incident.",
         objects=[dict(obj="cloth", at=(690, 424), width=150, from_s=69.6, left_s=70.5,
                       incident=dict(category="illegal_dumping", zone="floor-east"))]),
    dict(name="hall-bag-early", scene="hall", split="tune", timeline=[(950, 1393), (1392, 1100)],
         description="A black bin bag is left on the floor by the pillar at 1.5 s (left 2.0 s), within the "
                     "first seconds after the box starts, while a woman stands at the table and others walk "
                     "by (source frames 950-1393, then back to 1100): one dumping incident.",
         objects=[dict(obj="binbag", at=(650, 372), width=56, from_s=1.5, left_s=2.0,
                       incident=dict(category="illegal_dumping", zone="floor-east"))]),
    dict(name="hall-light", scene="hall", split="tune", timeline=HALL_FWD,
         description="The real footage (139.4 s) with the lights dimmed in a step at 30 s (to 75%), a slow "
                     "return over 40 s and an auto-exposure step (+20%) at 100 s: no incident.",
         light=[(0, 1.0), (30, 1.0), (30.3, 0.75), (45, 0.75), (85, 1.0), (100, 1.0), (100.2, 1.2),
                (999, 1.2)]),
    # ------------------------------------------------------------------ lot
    dict(name="lot-cars-park", scene="lot", split="tune",
         timeline=[(0, 75), ("pp", 130, 195, 500), (76, 215), ("pp", 255, 325, 375), (216, 376)],
         description="The real footage with the cars held where they stand: a white car drives in and "
                     "parks for 40 s (6-46 s), drives off; later a red and a silver car park for 30 s "
                     "(57-87 s) and drive off. The camera's real auto-exposure dips whenever a car comes. "
                     "No incident.",
         freezes=[dict(src=75, boxes=[(200, 90, 500, 432)], from_f=76, until_f=576),
                  dict(src=215, boxes=[(250, 10, 490, 320), (30, 170, 260, 432)], from_f=716,
                       until_f=1091)]),
    dict(name="lot-box", scene="lot", split="tune", timeline=LOT_PINGPONG,
         description="A cardboard box is left on the lot at 5.8 s as the white car passes over the spot; cars "
                     "drive past it (the footage is played forward, backward, forward; 90.3 s): one "
                     "dumping incident.",
         objects=[dict(obj="box", at=(360, 300), width=32, from_s=5.8, left_s=7.1,
                       incident=dict(category="illegal_dumping", zone="lot"))]),
    dict(name="lot-binbag", scene="lot", split="holdout", timeline=LOT_PINGPONG,
         description="A black bin bag is left on the lot at 17 s as the red car passes; it stays to the end "
                     "(90.3 s, forward-backward-forward): one dumping incident.",
         objects=[dict(obj="binbag", at=(390, 220), width=44, from_s=16.6, left_s=18.1,
                       incident=dict(category="illegal_dumping", zone="lot"))]),
]


# =============================================================================================
# Sources
# =============================================================================================

def fetch_from_debian(names: list[str]) -> None:
    """apt-get download opencv-doc into a temp dir and extract only ``names`` into CACHE_DIR."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)                                  # apt's _apt user may write there
        print(f"fetching {', '.join(names)} from the Debian package {DEBIAN_PACKAGE} (not installing it)")
        if subprocess.run(["apt-get", "download", DEBIAN_PACKAGE], cwd=tmp).returncode != 0:
            subprocess.run(["apt-get", "update"], check=True)            # no package lists yet
            subprocess.run(["apt-get", "download", DEBIAN_PACKAGE], cwd=tmp, check=True)
        debs = sorted(Path(tmp).glob(f"{DEBIAN_PACKAGE}_*.deb"))
        if not debs:
            raise SystemExit(f"apt-get download {DEBIAN_PACKAGE} produced no .deb")
        members = [f".{DEBIAN_DATA}/{name}" for name in names]
        tar_in = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(debs[0])], stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", tmp, *members], stdin=tar_in.stdout, check=True)
        tar_in.stdout.close()
        if tar_in.wait() != 0:
            raise SystemExit("dpkg-deb --fsys-tarfile failed")
        for name in names:
            shutil.copyfile(Path(tmp) / f".{DEBIAN_DATA}" / name, CACHE_DIR / name)


def source_paths() -> dict[str, Path]:
    """Locate every source file, fetch the Debian ones if needed, and verify all sha256s."""
    paths: dict[str, Path] = {}
    missing_debian = []
    for key, (name, _, origin) in SOURCE_FILES.items():
        if origin == "sources":
            paths[key] = HERE / "sources" / name
        elif (DEBIAN_DATA / name).is_file():
            paths[key] = DEBIAN_DATA / name
        elif (CACHE_DIR / name).is_file():
            paths[key] = CACHE_DIR / name
        else:
            missing_debian.append(name)
            paths[key] = CACHE_DIR / name
    if missing_debian:
        fetch_from_debian(missing_debian)
    for key, (name, digest, _) in SOURCE_FILES.items():
        if not paths[key].is_file():
            raise SystemExit(f"source {name} is missing ({paths[key]})")
        actual = file_sha256(paths[key])
        if actual != digest:
            raise SystemExit(f"source {paths[key]}: sha256 {actual}, expected {digest}")
    return paths


# =============================================================================================
# Per-process scene data (frames, clean background, per-frame gain) and the pasted things
# =============================================================================================

_PATHS: dict[str, Path] = {}
_SCENE_CACHE: dict[str, dict] = {}
_OBJECT_CACHE: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def read_frames(path: Path) -> np.ndarray:
    capture = cv2.VideoCapture(str(path))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    frames = np.empty((count + 8, height, width, 3), np.uint8)
    n = 0
    while n < len(frames) and capture.read(frames[n])[0]:
        n += 1
    capture.release()
    return frames[:n]


def scene_data(scene: str) -> dict:
    if scene in _SCENE_CACHE:
        return _SCENE_CACHE[scene]
    spec = SCENES[scene]
    frames = read_frames(_PATHS[spec["source"]])
    picks = [i for a, b, step in spec["bg_frames"] for i in range(a, min(b, len(frames) - 1) + 1, step)]
    background = np.median(frames[picks], axis=0).astype(np.float32)
    small_bg = background[::8, ::8] + 1.0
    gain = np.array([float(np.median(f[::8, ::8].astype(np.float32) / small_bg)) for f in frames],
                    dtype=np.float32)
    data = dict(frames=frames, bg=background, gain=gain, **spec)
    _SCENE_CACHE[scene] = data
    return data


def foreground(data: dict, index: int, roi: tuple[int, int, int, int], threshold: float | None = None,
               shadows_too: bool = False) -> np.ndarray:
    """uint8 0/1 mask of the source frame's foreground (people, cars) inside roi; cast shadows
    (ground darker than the background within the scene's shadow_ratio, same colour) are not
    foreground unless ``shadows_too``."""
    x1, y1, x2, y2 = roi
    frame = data["frames"][index][y1:y2, x1:x2].astype(np.float32) / data["gain"][index]
    bg = data["bg"][y1:y2, x1:x2]
    diff = np.abs(frame - bg).sum(axis=2)
    mask = diff > (threshold or data["fg_threshold"])
    lum_f, lum_b = frame.sum(axis=2) + 1.0, bg.sum(axis=2) + 1.0
    ratio = lum_f / lum_b
    chroma = np.abs(frame / lum_f[..., None] - bg / lum_b[..., None]).sum(axis=2)
    if not shadows_too:
        low, high = data["shadow_ratio"]
        mask &= ~((ratio > low) & (ratio < high) & (chroma < 0.05))
    mask = mask.astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
    keep = np.zeros(count, np.uint8)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= data["fg_min_area"]
    return keep[labels]


def shading(data: dict, index: int, roi: tuple[int, int, int, int]) -> np.ndarray:
    """How much darker than the clean background the ground is inside roi (a passer-by's or a
    car's shadow falling on a pasted object darkens it too)."""
    x1, y1, x2, y2 = roi
    frame = data["frames"][index][y1:y2, x1:x2].astype(np.float32) / data["gain"][index]
    ratio = (frame.sum(axis=2) + 1.0) / (data["bg"][y1:y2, x1:x2].sum(axis=2) + 1.0)
    return cv2.GaussianBlur(np.clip(ratio, 0.45, 1.0), (7, 7), 0)


def soft(mask: np.ndarray, blur: int = 5) -> np.ndarray:
    return cv2.GaussianBlur(mask.astype(np.float32), (blur, blur), 0)


def largest_component(mask: np.ndarray) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
    if count <= 1:
        return mask.astype(np.uint8)
    return (labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.zeros_like(mask, np.uint8)
    cv2.drawContours(out, contours, -1, 1, thickness=-1)
    return out


def object_cutout(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(patch float32 BGR, alpha float32) of a pasteable object at its native size."""
    if name in _OBJECT_CACHE:
        return _OBJECT_CACHE[name]
    if name in ("cloth", "whitebag", "binbag"):
        bg = scene_data("vtest")["bg"]
        box = {"cloth": (62, 488, 166, 534), "whitebag": (318, 444, 360, 474), "binbag": (402, 164, 431, 190)}[name]
        x1, y1, x2, y2 = box
        patch = bg[y1:y2, x1:x2].copy()
        if name == "binbag":
            mask = (patch.sum(axis=2) < 170).astype(np.uint8)        # the black plastic
        else:
            border = np.concatenate([patch[0], patch[-1], patch[:, 0], patch[:, -1]])
            lawn = np.median(border, axis=0)
            mask = (np.abs(patch - lawn).sum(axis=2) > 90).astype(np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
        keep = np.zeros(count, np.uint8)
        keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= 12
        mask = fill_holes(keep[labels])
        if name != "binbag":                                  # drop the lawn-coloured rim
            mask = cv2.erode(mask, np.ones((2, 2), np.uint8))
        alpha = soft(mask, 3)
        # mirrored, so that the copy does not look like a twin of the original lying in view
        patch, alpha = patch[:, ::-1].copy(), alpha[:, ::-1].copy()
    elif name == "box":
        photo = cv2.imread(str(_PATHS["box_photo"])).astype(np.float32)
        mask = (photo.mean(axis=2) > 60).astype(np.uint8)
        mask = fill_holes(largest_component(cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))))
        ys, xs = np.nonzero(mask)
        photo = photo[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        # the photo is the box's flat front: lay it on the ground (squashed, seen from above) and
        # give it a shaded side face made of the photo's own bottom rows, so it reads as a box
        ph, pw = photo.shape[:2]
        top = cv2.resize(photo, (pw, int(ph * 0.55)), interpolation=cv2.INTER_AREA)
        side = cv2.resize(photo[int(ph * 0.8):], (pw, int(ph * 0.22)), interpolation=cv2.INTER_AREA) * 0.62
        patch = np.vstack([top, side])
        alpha = soft(cv2.erode(np.ones(patch.shape[:2], np.uint8), np.ones((9, 9), np.uint8),
                               borderType=cv2.BORDER_CONSTANT, borderValue=0), 9)
    elif name == "table":
        hall = scene_data("hall")
        frame = hall["frames"][0].astype(np.float32)          # the empty hall
        x1, y1, x2, y2 = 382, 78, 532, 342
        patch = frame[y1:y2, x1:x2].copy()
        mask = np.zeros(patch.shape[:2], np.uint8)
        cv2.ellipse(mask, (455 - x1, 116 - y1), (71, 33), 0, 0, 360, 1, -1)          # the top
        cv2.rectangle(mask, (443 - x1, 140 - y1), (456 - x1, 292 - y1), 1, -1)        # the column
        base = np.array([[395, 318], [440, 288], [418, 272], [446, 280], [458, 268], [470, 282],
                         [500, 276], [468, 292], [500, 326], [480, 330], [452, 300], [424, 336],
                         [404, 334], [436, 300]]) - [x1, y1]
        legs = np.zeros_like(mask)
        cv2.fillPoly(legs, [base.astype(np.int32)], 1)
        legs = cv2.dilate(legs, np.ones((9, 9), np.uint8))
        saturation = cv2.cvtColor(patch.astype(np.uint8), cv2.COLOR_BGR2HSV)[..., 1]
        legs &= (saturation < 95).astype(np.uint8)          # chrome, not the orange floor
        legs = cv2.morphologyEx(legs, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
        mask = cv2.dilate(mask, np.ones((3, 3), np.uint8)) | legs
        alpha = soft(mask, 5)
    else:
        raise KeyError(name)
    ys, xs = np.nonzero(alpha > 0.02)                     # trim to the object
    patch = patch[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    alpha = alpha[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    _OBJECT_CACHE[name] = (patch.astype(np.float32), alpha.astype(np.float32))
    return _OBJECT_CACHE[name]


def scaled_object(name: str, width: int) -> tuple[np.ndarray, np.ndarray]:
    patch, alpha = object_cutout(name)
    scale = width / patch.shape[1]
    size = (max(1, round(patch.shape[1] * scale)), max(1, round(patch.shape[0] * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(patch, size, interpolation=interp), np.clip(cv2.resize(alpha, size, interpolation=interp), 0, 1)


def interpolate_box(boxes: dict[int, tuple], index: int) -> tuple[int, int, int, int]:
    keys = sorted(boxes)
    if index <= keys[0]:
        return boxes[keys[0]]
    if index >= keys[-1]:
        return boxes[keys[-1]]
    for a, b in zip(keys, keys[1:]):
        if a <= index <= b:
            w = (index - a) / (b - a)
            return tuple(int(round((1 - w) * p + w * q)) for p, q in zip(boxes[a], boxes[b]))
    raise AssertionError


def actor_frame(actor: str, index: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Cut-out of the actor in source frame ``index``: patch, alpha, and the patch's offset from the
    actor's reference feet point."""
    key = f"{actor}@{index}"
    if key in _OBJECT_CACHE:
        return _OBJECT_CACHE[key]
    spec = ACTORS[actor]
    data = scene_data(spec["scene"])
    h, w = data["frames"].shape[1:3]
    x1, y1, x2, y2 = interpolate_box(spec["boxes"], index)
    x1, y1, x2, y2 = max(0, x1 - 6), max(0, y1 - 6), min(w, x2 + 6), min(h, y2 + 6)
    mask = foreground(data, index, (x1, y1, x2, y2), spec.get("threshold"), shadows_too=True)
    mask = fill_holes(largest_component(cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))))
    alpha = soft(cv2.erode(mask, np.ones((2, 2), np.uint8)), 5)
    patch = data["frames"][index][y1:y2, x1:x2].astype(np.float32) / data["gain"][index]
    fx, fy = spec["feet"]
    rows = np.nonzero((alpha > 0.5).any(axis=1))[0]
    bottom = rows.max() if len(rows) else alpha.shape[0] - 1
    cols = np.nonzero((alpha[max(0, bottom - 6):bottom + 1] > 0.5).any(axis=0))[0]
    feet = ((cols.mean() if len(cols) else alpha.shape[1] / 2) + x1 - fx, bottom + y1 - fy)
    _OBJECT_CACHE[key] = (patch, alpha, (x1 - fx, y1 - fy), feet)
    return _OBJECT_CACHE[key]


def actor_stand_box(actor: str, at: tuple[int, int], scale: float) -> tuple[int, int, int, int]:
    """The pasted person's box while standing: the union of the standing frames' masks."""
    spec = ACTORS[actor]
    xs, ys = [], []
    for index in range(spec["stand"][0], spec["stand"][1] + 1, 3):
        patch, alpha, (ox, oy), _ = actor_frame(actor, index)
        yy, xx = np.nonzero(alpha > 0.5)
        xs += [at[0] + (ox + xx.min()) * scale, at[0] + (ox + xx.max()) * scale]
        ys += [at[1] + (oy + yy.min()) * scale, at[1] + (oy + yy.max()) * scale]
    return (int(np.percentile(xs[::2], 10)), int(np.percentile(ys[::2], 10)),
            int(np.percentile(xs[1::2], 90)) + 1, int(np.percentile(ys[1::2], 90)) + 1)


# =============================================================================================
# Compositing
# =============================================================================================

def expand_timeline(timeline: list) -> list[int]:
    out: list[int] = []
    for segment in timeline:
        if segment[0] == "pp":
            _, a, b, n = segment
            period = 2 * (b - a)
            for k in range(n):
                m = k % period
                out.append(a + m if m <= b - a else b - (m - (b - a)))
        else:
            a, b = segment
            out.extend(range(a, b + 1) if a <= b else range(a, b - 1, -1))
    return out


def paste(frame: np.ndarray, patch: np.ndarray, alpha: np.ndarray, x: int, y: int,
          hide: np.ndarray | None = None) -> None:
    """Alpha-blend patch (float BGR) into frame (uint8) at top-left (x, y), in place; ``hide`` is a
    0..1 float mask over the same patch area that removes the patch (foreground in front)."""
    h, w = alpha.shape
    fx1, fy1, fx2, fy2 = max(0, x), max(0, y), min(frame.shape[1], x + w), min(frame.shape[0], y + h)
    if fx1 >= fx2 or fy1 >= fy2:
        return
    px1, py1 = fx1 - x, fy1 - y
    a = alpha[py1:py1 + fy2 - fy1, px1:px1 + fx2 - fx1]
    if hide is not None:
        a = a * (1.0 - hide[py1:py1 + fy2 - fy1, px1:px1 + fx2 - fx1])
    p = patch[py1:py1 + fy2 - fy1, px1:px1 + fx2 - fx1]
    region = frame[fy1:fy2, fx1:fx2].astype(np.float32)
    frame[fy1:fy2, fx1:fx2] = np.clip(a[..., None] * p + (1 - a[..., None]) * region, 0, 255).astype(np.uint8)


def shadow_under(frame: np.ndarray, cx: float, bottom: float, width: float, hide_fn, strength: float = 0.35) -> None:
    """A soft contact shadow: an ellipse darkening the ground under an object (not over foreground)."""
    rx, ry = width * 0.62, max(3.0, width * 0.16)
    x1, y1 = int(cx - rx * 1.6), int(bottom - ry * 2.6)
    x2, y2 = int(cx + rx * 1.6) + 1, int(bottom + ry * 1.6) + 1
    h, w = frame.shape[:2]
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if x1 >= x2 or y1 >= y2:
        return
    yy, xx = np.mgrid[y1:y2, x1:x2].astype(np.float32)
    d = ((xx - cx) / rx) ** 2 + ((yy - (bottom - ry * 0.5)) / ry) ** 2
    shade = strength * np.exp(-d * 1.4)
    shade *= 1.0 - hide_fn((x1, y1, x2, y2))
    region = frame[y1:y2, x1:x2].astype(np.float32)
    frame[y1:y2, x1:x2] = (region * (1.0 - shade[..., None])).astype(np.uint8)


def actor_is_small(spec: dict) -> bool:
    return ACTORS[spec["actor"]]["scene"] == "vtest"


def sway(t: float, seed: float) -> tuple[float, float]:
    dx = 1.3 * math.sin(2 * math.pi * t / 3.7 + seed) + 0.6 * math.sin(2 * math.pi * t / 1.9 + 2 * seed)
    dy = 0.4 * math.sin(2 * math.pi * t / 2.3 + 3 * seed)
    return dx, dy


def brightness_lut(gain: float) -> np.ndarray:
    return np.clip(np.arange(256, dtype=np.float32) * gain + 0.5, 0, 255).astype(np.uint8)


def light_gain(points: list[tuple[float, float]], t: float) -> float:
    for (t0, g0), (t1, g1) in zip(points, points[1:]):
        if t0 <= t <= t1:
            return g0 + (g1 - g0) * (t - t0) / (t1 - t0)
    return points[-1][1]


def actor_schedule(actor: str, stays: list[tuple[float, float]], fps_src: float, t: float):
    """Which source frame of the actor to show at output time t (None: not in view)."""
    spec = ACTORS[actor]
    walk = list(range(spec["walk"][0], spec["walk"][1] + 1))
    stand = list(range(spec["stand"][0], spec["stand"][1] + 1))
    walk_s = len(walk) / fps_src
    for t_in, t_out in stays:
        if t_in - walk_s <= t < t_in:
            return walk[min(len(walk) - 1, int((t - (t_in - walk_s)) * fps_src))]
        if t_in <= t < t_out:
            k = int((t - t_in) * fps_src)
            period = 2 * (len(stand) - 1)
            m = k % period
            return stand[m] if m < len(stand) else stand[period - m]
        if t_out <= t < t_out + walk_s:
            return walk[max(0, len(walk) - 1 - int((t - t_out) * fps_src))]
    return None


def build_clip(clip: dict, out_path: Path) -> dict:
    data = scene_data(clip["scene"])
    fps = data["fps"]
    timeline = expand_timeline(clip["timeline"])
    frames = data["frames"]
    h, w = frames.shape[1:3]
    tmp_path = out_path.with_suffix(".tmp.mp4")
    writer = cv2.VideoWriter(str(tmp_path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise SystemExit(f"cannot write {tmp_path}")

    objects = []
    for spec in clip.get("objects", []):
        patch, alpha = scaled_object(spec["obj"], spec["width"])
        ph, pw = alpha.shape
        x, y = int(round(spec["at"][0] - pw / 2)), int(round(spec["at"][1] - ph))
        objects.append((spec, patch, alpha, x, y))
    carried = []
    for spec in clip.get("carried", []):
        carried.append((spec, *scaled_object(spec["obj"], spec["width"])))
    actors = []
    for k, spec in enumerate(clip.get("actors", [])):
        actor = ACTORS[spec["actor"]]
        scale = 1.0
        if actor["scene"] == "vtest":
            scale = person_height_vtest(spec["at"][1]) / person_height_vtest(actor["feet"][1])
        actors.append((spec, scale, 0.9 * k + 0.4))
    freezes = []
    for spec in clip.get("freezes", []):
        cuts = []
        for box in spec["boxes"]:
            x1, y1, x2, y2 = box
            crop = frames[spec["src"]][y1:y2, x1:x2].astype(np.float32) / data["gain"][spec["src"]]
            mask = (np.abs(crop - data["bg"][y1:y2, x1:x2]).sum(axis=2) > 110).astype(np.uint8)
            mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
            mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((15, 15), np.uint8))
            mask = cv2.dilate(fill_holes(largest_component(mask)), np.ones((5, 5), np.uint8))
            x1, y1, x2, y2 = box
            cuts.append((frames[spec["src"]][y1:y2, x1:x2].astype(np.float32), soft(mask, 21), x1, y1))
        freezes.append((spec, cuts))

    for out_index, src_index in enumerate(timeline):
        t = out_index / fps
        frame = frames[src_index].copy()
        gain = float(data["gain"][src_index])
        hide = lambda roi, i=src_index: soft(cv2.dilate(foreground(data, i, roi), np.ones((5, 5), np.uint8)), 5)

        for spec, cuts in freezes:
            if spec["from_f"] <= out_index < spec["until_f"]:
                target = float(data["gain"][spec["src"]])
                frame = cv2.LUT(frame, brightness_lut(target / gain))
                for patch, alpha, x1, y1 in cuts:
                    paste(frame, patch, alpha, x1, y1)
                gain = target

        for spec, patch, alpha, x, y in objects:
            if t < spec["from_s"] or ("until_s" in spec and t >= spec["until_s"]):
                continue
            ph, pw = alpha.shape
            if spec.get("shadow", True):
                shadow_under(frame, x + pw / 2, y + ph, pw, hide)
            roi = (max(0, x), max(0, y), min(w, x + pw), min(h, y + ph))
            cover = np.zeros((ph, pw), np.float32)
            cover[roi[1] - y:roi[3] - y, roi[0] - x:roi[2] - x] = hide(roi)
            shade = np.ones((ph, pw), np.float32)
            shade[roi[1] - y:roi[3] - y, roi[0] - x:roi[2] - x] = shading(data, src_index, roi)
            paste(frame, patch * (gain * shade[..., None]), alpha, x, y, cover)

        for spec, patch, alpha in carried:
            keys = sorted(spec["boxes"])
            if not keys[0] <= src_index <= keys[-1]:
                continue
            bx1, by1, bx2, by2 = interpolate_box(spec["boxes"], src_index)
            ph, pw = alpha.shape
            cx = bx1 + spec["hand"][0] * (bx2 - bx1)
            cy = by1 + spec["hand"][1] * (by2 - by1)
            paste(frame, patch * gain, alpha, int(round(cx - pw / 2)), int(round(cy - ph / 2)))

        for spec, scale, seed in actors:
            index = actor_schedule(spec["actor"], spec["stays"], SCENES[ACTORS[spec["actor"]]["scene"]]["fps"], t)
            if index is None:
                continue
            patch, alpha, (ox, oy), (feet_dx, feet_dy) = actor_frame(spec["actor"], index)
            dx, dy = sway(t, seed)
            m = np.float32([[scale, 0, 2], [0, scale, 2]])
            size = (int(patch.shape[1] * scale) + 4, int(patch.shape[0] * scale) + 4)
            m[0, 2] += (dx % 1.0)
            m[1, 2] += (dy % 1.0)
            p = cv2.warpAffine(patch, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            a = cv2.warpAffine(alpha, m, size, flags=cv2.INTER_LINEAR, borderValue=0)
            x = int(math.floor(spec["at"][0] + ox * scale + dx)) - 2
            y = int(math.floor(spec["at"][1] + oy * scale + dy)) - 2
            # where his feet are in this frame (he may be walking in or out)
            feet_x, feet_y = spec["at"][0] + feet_dx * scale + dx, spec["at"][1] + feet_dy * scale + dy
            # soft shadow at the feet, then the person under whoever walks in front of them
            shadow_under(frame, feet_x, feet_y + 2, 38 * scale if actor_is_small(spec) else 90, hide, 0.3)
            roi = (max(0, x), max(0, y), min(w, x + size[0]), min(h, y + size[1]))
            if roi[0] < roi[2] and roi[1] < roi[3]:
                fg = foreground(data, src_index, (roi[0], roi[1], roi[2], h))
                count, labels, stats, _ = cv2.connectedComponentsWithStats(fg)
                bottoms = roi[1] + stats[:, cv2.CC_STAT_TOP] + stats[:, cv2.CC_STAT_HEIGHT]
                front = np.zeros(count, np.uint8)
                front[1:] = bottoms[1:] > feet_y + 4
                in_front = soft(cv2.dilate(front[labels][: roi[3] - roi[1]], np.ones((3, 3), np.uint8)), 5)
                cover = np.zeros(a.shape, np.float32)
                cover[roi[1] - y:roi[3] - y, roi[0] - x:roi[2] - x] = in_front
                paste(frame, p * gain, a, x, y, cover)

        if clip.get("light"):
            frame = cv2.LUT(frame, brightness_lut(light_gain(clip["light"], t)))
        writer.write(frame)
    writer.release()
    os.replace(tmp_path, out_path)
    return dict(frames=len(timeline), duration_s=round(len(timeline) / fps, 2))


# =============================================================================================
# Ground truth
# =============================================================================================

def clip_duration(clip: dict) -> float:
    return round(len(expand_timeline(clip["timeline"])) / SCENES[clip["scene"]]["fps"], 2)


def incidents_of(clip: dict) -> list[dict]:
    out = []
    for spec in clip.get("objects", []):
        if not spec.get("incident"):
            continue
        patch, alpha = scaled_object(spec["obj"], spec["width"])
        ph, pw = alpha.shape
        x, y = int(round(spec["at"][0] - pw / 2)), int(round(spec["at"][1] - ph))
        ys, xs = np.nonzero(alpha > 0.5)
        out.append(dict(category=spec["incident"]["category"], zone=spec["incident"]["zone"],
                        start_s=spec["left_s"], end_s=spec.get("until_s", clip_duration(clip)),
                        box=[int(x + xs.min()), int(y + ys.min()), int(x + xs.max() + 1), int(y + ys.max() + 1)]))
    for spec in clip.get("actors", []):
        if not spec.get("zone"):
            continue
        actor = ACTORS[spec["actor"]]
        scale = 1.0
        if actor["scene"] == "vtest":
            scale = person_height_vtest(spec["at"][1]) / person_height_vtest(actor["feet"][1])
        box = actor_stand_box(spec["actor"], spec["at"], scale)
        for t_in, t_out in spec["stays"]:
            out.append(dict(category="street_vending", zone=spec["zone"], start_s=t_in, end_s=t_out, box=list(box)))
    return sorted(out, key=lambda i: i["start_s"])


def truth_text(clip: dict) -> str:
    scene = SCENES[clip["scene"]]
    lines = [f'clip = "clips/{clip["name"]}.mp4"', f'config = "{scene["config"]}"', f'camera = "{scene["camera"]}"',
             f'split = "{clip["split"]}"', f"description = {json.dumps(clip['description'], ensure_ascii=False)}"]
    incidents = incidents_of(clip)
    if not incidents:
        lines.append("incidents = []")
    for inc in incidents:
        lines += ["", "[[incidents]]", f'category = "{inc["category"]}"', f'zone = "{inc["zone"]}"',
                  f"start_s = {float(inc['start_s'])}", f"end_s = {float(inc['end_s'])}",
                  f"box = [{', '.join(str(v) for v in inc['box'])}]"]
    return "\n".join(lines) + "\n"


def point_in_polygon(x: float, y: float, polygon: list) -> bool:
    return cv2.pointPolygonTest(np.array(polygon, np.float32), (x, y), False) >= 0


def check_truth(clip: dict) -> list[str]:
    """Problems with a clip's recipe against its scene config (zones, dwell, clip length)."""
    problems = []
    config = tomllib.loads((HERE / SCENES[clip["scene"]]["config"]).read_text())
    camera = next(c for c in config["cameras"] if c["name"] == SCENES[clip["scene"]]["camera"])
    h, w = scene_data(clip["scene"])["frames"].shape[1:3]
    zones = {z["name"]: z for z in camera["zones"]}
    duration = clip_duration(clip)
    for inc in incidents_of(clip):
        zone = zones.get(inc["zone"])
        if zone is None:
            problems.append(f"zone {inc['zone']} not in config")
            continue
        want = "no_vending" if inc["category"] == "street_vending" else "dumping_hotspot"
        if zone["type"] != want:
            problems.append(f"zone {inc['zone']} is {zone['type']}, incident is {inc['category']}")
        x1, y1, x2, y2 = inc["box"]
        if not point_in_polygon((x1 + x2) / 2 / w, y2 / h, zone["polygon"]):
            problems.append(f"{inc['category']} box {inc['box']} foot point outside zone {inc['zone']}")
        dwell = zone["dwell_s"]
        if inc["end_s"] - inc["start_s"] < dwell + 10:
            problems.append(f"incident at {inc['start_s']} lasts {inc['end_s'] - inc['start_s']:.1f} s < dwell+10")
        if inc["start_s"] + dwell + 12 > duration:
            problems.append(f"incident at {inc['start_s']}: start+dwell+12 > clip length {duration}")
    return problems


# =============================================================================================
# Driver
# =============================================================================================

def recipe_hash(clip: dict) -> str:
    script = Path(__file__).read_bytes()
    payload = json.dumps(clip, sort_keys=True, default=str).encode() + script
    payload += json.dumps({k: v[1] for k, v in SOURCE_FILES.items()}, sort_keys=True).encode()
    return hashlib.sha256(payload).hexdigest()


def _init_worker(paths: dict[str, str]) -> None:
    _PATHS.update({k: Path(v) for k, v in paths.items()})
    cv2.setNumThreads(1)


def _jobs(batch: list[tuple[dict, bool]]) -> list[dict]:
    return [_job(clip, build) for clip, build in batch]


def _job(clip: dict, build: bool) -> dict:
    """Build one clip (if ``build``) and compute its ground truth and the checks against its scene."""
    started = time.monotonic()
    result = dict(name=clip["name"], truth=truth_text(clip), problems=check_truth(clip))
    if build:
        out = CLIPS_DIR / f"{clip['name']}.mp4"
        info = build_clip(clip, out)
        info["sha256"] = file_sha256(out)
        result["info"] = info
    result["seconds"] = time.monotonic() - started
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="rebuild every clip")
    parser.add_argument("--only", nargs="*", help="clip names to build")
    parser.add_argument("--write-truth", action="store_true", help="write the ground-truth TOMLs")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    started = time.monotonic()
    paths = source_paths()
    CLIPS_DIR.mkdir(exist_ok=True)
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.is_file() else {}

    clips = [c for c in CLIPS if not args.only or c["name"] in args.only]
    jobs = []
    for clip in clips:
        out = CLIPS_DIR / f"{clip['name']}.mp4"
        truth_path = HERE / f"{clip['name']}.toml"
        entry = manifest.get(clip["name"], {})
        fresh = (not args.force and out.is_file() and entry.get("recipe") == recipe_hash(clip)
                 and entry.get("sha256") == file_sha256(out))
        truth_ok = (not args.write_truth and truth_path.is_file() and entry.get("recipe") == recipe_hash(clip)
                    and entry.get("truth_sha256") == file_sha256(truth_path))
        if not fresh or not truth_ok:
            jobs.append((clip, not fresh))
    built = sum(1 for _, build in jobs if build)
    print(f"{len(clips) - built} clip(s) up to date, building {built}")
    # one batch per worker, whole scenes per batch (each worker decodes only its scenes' sources),
    # balanced by the number of frames to write
    per_scene: dict[str, list] = {}
    for job in jobs:
        per_scene.setdefault(job[0]["scene"], []).append(job)
    batches: list[list] = [[] for _ in range(max(1, min(args.jobs, len(per_scene))))]
    load = [0] * len(batches)
    weight = lambda job: len(expand_timeline(job[0]["timeline"])) if job[1] else 100
    for scene_jobs in sorted(per_scene.values(), key=lambda js: -sum(map(weight, js))):
        k = load.index(min(load))
        batches[k] += scene_jobs
        load[k] += sum(map(weight, scene_jobs))
    problems = 0
    if jobs:
        with ProcessPoolExecutor(max_workers=len(batches), initializer=_init_worker,
                                 initargs=({k: str(v) for k, v in paths.items()},)) as pool:
            for result in (r for rs in pool.map(_jobs, batches) for r in rs):
                name = result["name"]
                clip = next(c for c in CLIPS if c["name"] == name)
                entry = manifest.setdefault(name, {})
                if "info" in result:
                    entry.update(result["info"])
                    print(f"  {name}: {entry['frames']} frames, {entry['duration_s']} s, "
                          f"built in {result['seconds']:.1f} s")
                entry["recipe"] = recipe_hash(clip)
                for problem in result["problems"]:
                    print(f"{name}: {problem}", file=sys.stderr)
                    problems += 1
                truth_path = HERE / f"{name}.toml"
                if args.write_truth and (not truth_path.is_file() or truth_path.read_text() != result["truth"]):
                    truth_path.write_text(result["truth"])
                    print(f"  wrote {truth_path.name}")
                if truth_path.is_file() and truth_path.read_text() == result["truth"]:
                    entry["truth_sha256"] = file_sha256(truth_path)
                else:
                    entry.pop("truth_sha256", None)
                    print(f"{name}: ground truth {truth_path.name} differs from the recipe "
                          f"(--write-truth rewrites it)", file=sys.stderr)
                    problems += 1
                MANIFEST.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print(f"done in {time.monotonic() - started:.1f} s")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
