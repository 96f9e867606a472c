"""The `edge` command on inputs that do not fit: pixel zones outside the frame."""

from pathlib import Path

import pytest

from edge.cli import main as edge_main

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "nanodet-g-416.onnx"
CLIP = ROOT / "tests" / "data" / "vtest_cut.mp4"   # 768 x 576


def box_toml(tmp_path: Path, polygon: str, camera: str = "north") -> Path:
    path = tmp_path / f"{camera}.toml"
    path.write_text(f"""
version = 1
box = "box-1"
district = "old-town"
[detector]
model = "{MODEL}"
[[cameras]]
name = "{camera}"
source = "{CLIP}"
fps = 1
  [[cameras.zones]]
  name = "plaza"
  type = "no_vending"
  polygon = [[0, 0], [1, 0], [1, 1]]
  lat = 48.2
  lon = 16.3
  [[cameras.zones]]
  name = "kiosk"
  type = "no_vending"
  coords = "pixel"
  polygon = {polygon}
  lat = 48.2
  lon = 16.3
""")
    return path


WIDE = "[[10, 10], [900, 40], [500, 500]]"


@pytest.mark.parametrize("sizes, problem", [
    ([], None),
    (["--frame-size", "1920x1080"], None),
    (["--frame-size", "768x576"], "cameras.0.zones.1.polygon: point 1 (900, 40) lies outside the 768x576 frame"),
    (["--frame-size", "north=768x576"], "cameras.0.zones.1.polygon: point 1 (900, 40) lies outside the 768x576 frame"),
    (["--frame-size", "768x576", "--frame-size", "north=1024x768"], None),
    (["--frame-size", "south=768x576"], "--frame-size: no camera named 'south' in these configs"),
])
def test_validate_checks_pixel_zones_against_the_frame_size(tmp_path, capsys, sizes, problem):
    config = box_toml(tmp_path, WIDE)
    code = edge_main(["validate", str(config), *sizes])
    out = capsys.readouterr().out
    assert code == (1 if problem else 0), out
    assert problem is None or problem in out


@pytest.mark.parametrize("size", ["768", "768x", "x576", "0x576", "768x576x2", "big"])
def test_a_frame_size_that_is_not_w_x_h_is_refused(tmp_path, capsys, size):
    with pytest.raises(SystemExit) as exited:
        edge_main(["validate", str(box_toml(tmp_path, WIDE)), "--frame-size", size])
    assert exited.value.code == 2
    assert "is not [CAMERA=]WIDTHxHEIGHT" in capsys.readouterr().err


@pytest.mark.model
def test_replay_stops_at_a_pixel_zone_outside_the_frame(tmp_path, capsys):
    code = edge_main(["--log-level", "WARNING", "replay", str(CLIP), "--config", str(box_toml(tmp_path, WIDE))])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err == ("edge: camera 'north' zone 'kiosk': point 1 (900, 40) lies outside the 768x576 frame\n")


def cut(path: Path, data: bytes, fraction: float = 0.5) -> Path:
    path.write_bytes(data[:int(len(data) * fraction)])
    return path


def broken_inputs(tmp_path: Path) -> dict[str, Path]:
    import cv2
    import numpy as np

    noise = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    avi = tmp_path / "whole.avi"
    writer = cv2.VideoWriter(str(avi), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (320, 240))
    for _ in range(30):
        writer.write(noise)
    writer.release()
    return {
        "truncated JPEG": cut(tmp_path / "cut.jpg", cv2.imencode(".jpg", noise)[1].tobytes()),
        "truncated PNG": cut(tmp_path / "cut.png", cv2.imencode(".png", noise)[1].tobytes()),
        "MP4 without its index": cut(tmp_path / "cut.mp4", CLIP.read_bytes()),   # the moov box is at the end
        "truncated AVI": cut(tmp_path / "cut.avi", avi.read_bytes()),
    }


@pytest.mark.model
def test_detect_refuses_broken_files_in_one_line_with_nothing_from_the_decoders(tmp_path):
    import subprocess
    import sys

    for what, path in broken_inputs(tmp_path).items():
        # --json prints only at the end, so stdout stays empty unless FFmpeg writes there (as it does
        # through OpenCV's log callback once OPENCV_FFMPEG_LOGLEVEL is set).
        run = subprocess.run([sys.executable, "-m", "edge.cli", "detect", str(path), "--json"],
                             capture_output=True, text=True)
        assert run.returncode == 2 and run.stdout == "", (what, run.stdout)
        assert run.stderr.startswith("edge: ") and run.stderr.count("\n") == 1, (what, run.stderr)
        assert path.name in run.stderr and ("truncated" in run.stderr or "corrupt" in run.stderr), run.stderr
