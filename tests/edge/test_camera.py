"""Camera sources: files, a live MJPEG stream on loopback that drops, and sources that never open."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.camera import (
    NO_RETRY,
    Backoff,
    CameraError,
    SourceState,
    file_frames,
    jpeg_is_complete,
    open_camera,
    read_image,
    redacted,
)

RUNNING, RECONNECTING, DOWN, ENDED = (SourceState.RUNNING, SourceState.RECONNECTING, SourceState.DOWN,
                                      SourceState.ENDED)
BITS = 16
QUICK_GIVE_UP = Backoff(first_s=0.01, max_s=0.02, down_after=2, give_up_after=3)


def numbered_image(n: int) -> np.ndarray:
    """A 128 x 64 frame carrying ``n`` as 16 black or white 8 x 8 blocks (JPEG keeps those exactly enough)."""
    image = np.full((64, 128, 3), 90, np.uint8)
    for bit in range(BITS):
        image[:8, bit * 8:(bit + 1) * 8] = 255 if n >> bit & 1 else 0
    return image


def number_of(image: np.ndarray) -> int:
    return sum(1 << bit for bit in range(BITS) if image[:8, bit * 8:(bit + 1) * 8].mean() > 128)


class MjpegServer:
    """A multipart MJPEG stream on 127.0.0.1 numbering its frames across connections.

    With ``drop_after`` the first connection is cut after that many frames and
    the next ``down_s`` seconds of requests get 503. Each connection streams
    for at most ``max_s`` seconds, and everything stops when the test leaves.
    """

    def __init__(self, fps: float = 25.0, drop_after: int | None = None, down_s: float = 0.0,
                 max_s: float = 15.0) -> None:
        self.fps, self.drop_after, self.down_s, self.max_s = fps, drop_after, down_s, max_s
        self.sent = 0
        self.streams = 0
        self.down_until = 0.0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/stream.mjpg"

    def __enter__(self) -> MjpegServer:
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(server) -> type[BaseHTTPRequestHandler]:  # noqa: N805  (the server, seen from the handler)
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                if time.monotonic() < server.down_until:
                    self.send_error(503)
                    return
                with server.lock:
                    server.streams += 1
                    first = server.streams == 1
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                deadline = time.monotonic() + server.max_s
                for count in range(1, 100_000):
                    if server.stopping.is_set() or time.monotonic() > deadline:
                        return
                    with server.lock:
                        n, server.sent = server.sent, server.sent + 1
                    jpeg = cv2.imencode(".jpg", numbered_image(n), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
                    try:
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%b\r\n"
                                         % (len(jpeg), jpeg))
                        self.wfile.flush()
                    except OSError:
                        return
                    if first and count == server.drop_after:
                        server.down_until = time.monotonic() + server.down_s
                        return
                    time.sleep(1 / server.fps)

        return Handler


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    """Ten frames at 10 fps."""
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (128, 64))
    for n in range(10):
        writer.write(numbered_image(n))
    writer.release()
    return path


def states(changes) -> list[SourceState]:
    return [c.state for c in changes]


def take(frames: Iterator, until, timeout_s: float) -> list:
    """Frames until ``until(taken)`` holds or time runs out; closes the camera on leaving."""
    taken = []
    deadline = time.monotonic() + timeout_s
    for frame in frames:
        taken.append(frame)
        if until(taken) or time.monotonic() > deadline:
            break
    return taken


def test_a_live_stream_that_drops_is_reopened_and_frames_continue():
    changes = []
    with MjpegServer(drop_after=15, down_s=0.8) as server:
        camera = open_camera("gate", server.url, fps=50, on_state=changes.append,
                             backoff=Backoff(first_s=0.1, max_s=0.2, down_after=2))
        frames = take(camera.frames(), lambda got: sum(number_of(f.image) >= 15 for f in got) >= 10, timeout_s=10)
    numbers = [number_of(f.image) for f in frames]
    assert sum(n < 15 for n in numbers) >= 5, numbers          # before the drop
    assert sum(n >= 15 for n in numbers) >= 10, numbers        # from the stream that came back
    assert numbers == sorted(set(numbers))
    assert [f.index for f in frames] == sorted({f.index for f in frames})
    assert states(changes) == [RUNNING, RECONNECTING, DOWN, RUNNING, ENDED]
    assert camera.state == ENDED


def test_a_slow_consumer_gets_the_newest_frame_not_a_backlog():
    with MjpegServer(fps=25) as server:
        camera = open_camera("gate", server.url, fps=50, backoff=NO_RETRY)
        seen = []
        for frame in camera.frames():
            seen.append((number_of(frame.image), server.sent))
            if len(seen) == 6:
                break
            time.sleep(0.3)     # 7 or 8 stream frames go by while the consumer works
    numbers = [n for n, _ in seen]
    behind = [sent - 1 - n for n, sent in seen]     # frames the server had sent beyond the one handed out
    assert min(b - a for a, b in zip(numbers, numbers[1:])) >= 4, seen
    assert max(behind) <= 5, seen


@pytest.mark.parametrize("source", ["http://127.0.0.1:{port}/cam", "rtsp://admin:secret@127.0.0.1:{port}/live", "9"])
def test_a_source_that_cannot_be_opened_is_reported_down(source, closed_port, caplog):
    changes = []
    camera = open_camera("gate", source.format(port=closed_port), 5, backoff=QUICK_GIVE_UP,
                         on_state=changes.append)
    with caplog.at_level(logging.INFO, logger="edge.camera"):
        assert list(camera.frames()) == []
    assert camera.state == DOWN and states(changes) == [DOWN]
    assert "cannot open: camera source" in camera.last_error
    assert "camera.down camera=gate" in caplog.text and "camera.gave_up camera=gate attempts=3" in caplog.text
    assert "secret" not in caplog.text and "secret" not in camera.last_error


def test_a_missing_file_is_reported_down(tmp_path, caplog):
    camera = open_camera("gate", str(tmp_path / "missing.mp4"), 5)
    with caplog.at_level(logging.INFO, logger="edge.camera"):
        assert list(camera.frames()) == []
    assert camera.state == DOWN
    assert "camera.down camera=gate" in caplog.text and "no such file" in caplog.text


def test_a_file_that_ends_is_reported_ended(clip):
    changes = []
    camera = open_camera("gate", str(clip), 10, realtime=False, on_state=changes.append)
    frames = list(camera.frames())
    assert [number_of(f.image) for f in frames] == list(range(10))
    assert [f.t_s for f in frames] == pytest.approx([n / 10 for n in range(10)])
    assert camera.state == ENDED and changes[-1].reason == "end of file"


def test_a_looping_file_runs_on_until_closed(clip):
    camera = open_camera("gate", str(clip), 10, realtime=False, loop=True, start_ms=1_000)
    frames = take(camera.frames(), lambda got: len(got) == 25, timeout_s=10)
    assert [f.index for f in frames] == list(range(25))
    assert frames[-1].t_s == pytest.approx(2.4) and frames[-1].ts_ms == 3_400
    assert camera.state == ENDED


def test_file_frames_keeps_its_signature_and_error(clip, tmp_path):
    assert len(list(file_frames("gate", str(clip), 5.0, start_ms=0))) == 5
    with pytest.raises(CameraError, match="no such file"):
        next(file_frames("gate", str(tmp_path / "missing.mp4"), 5.0))


@pytest.mark.parametrize("how", ["close", "stop event"])
def test_a_camera_waiting_to_reconnect_stops_promptly(how, closed_port):
    stop = threading.Event()
    camera = open_camera("gate", f"http://127.0.0.1:{closed_port}/cam", 5, stop=stop,
                         backoff=Backoff(first_s=30, max_s=30))
    threading.Timer(0.3, camera.close if how == "close" else stop.set).start()
    started = time.monotonic()
    assert list(camera.frames()) == []
    assert time.monotonic() - started < 2.0
    assert camera.state == ENDED


def test_a_failing_state_listener_does_not_stop_the_frames(clip, caplog):
    def broken(change):
        raise RuntimeError("listener bug")

    camera = open_camera("gate", str(clip), 10, realtime=False, on_state=broken)
    assert len(list(camera.frames())) == 10
    assert "camera.state_listener_failed camera=gate state=ended" in caplog.text


def test_backoff_grows_to_its_bound():
    backoff = Backoff(first_s=0.5, max_s=4.0, factor=2.0, give_up_after=6)
    assert [backoff.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert not backoff.gives_up(5) and backoff.gives_up(6) and not Backoff().gives_up(10_000)


def test_passwords_in_urls_are_not_logged():
    assert redacted("rtsp://admin:secret@cam.local:554/s1") == "rtsp://admin:***@cam.local:554/s1"
    assert redacted("rtsp://cam.local/s1") == "rtsp://cam.local/s1"
    assert redacted("/data/clip.mp4") == "/data/clip.mp4"


def jpeg(image: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", image)[1].tobytes()


def with_exif_thumbnail(picture: bytes, thumbnail: bytes) -> bytes:
    """The picture with an APP1 segment after its start marker that holds a whole JPEG, as EXIF does."""
    body = b"Exif\0\0" + thumbnail
    return picture[:2] + b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body + picture[2:]


def test_a_whole_picture_is_read(tmp_path):
    path = tmp_path / "frame.jpg"
    path.write_bytes(jpeg(numbered_image(7)) + b"vendor trailer after the end marker")
    assert number_of(read_image(str(path))) == 7


def noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_a_truncated_jpeg_is_refused_though_opencv_would_decode_it(tmp_path):
    whole = with_exif_thumbnail(jpeg(noise(240, 320)), jpeg(noise(16, 16)))
    cut = whole[:len(whole) * 2 // 3]
    assert jpeg_is_complete(whole) and not jpeg_is_complete(cut)   # the thumbnail's end marker does not count
    path = tmp_path / "cut.jpg"
    path.write_bytes(cut)
    # cv2.imread fills the missing rows with grey and takes it; only libjpeg's warning on stderr tells.
    assert cv2.imread(str(path))[-1].mean() == 128
    with pytest.raises(CameraError, match="cut.jpg is a truncated or corrupt JPEG"):
        read_image(str(path))


@pytest.mark.parametrize("content", [b"not a picture", b"\x89PNG\r\n\x1a\n" + b"\0" * 40])
def test_a_picture_that_does_not_decode_is_refused_without_decoder_noise(tmp_path, capfd, content):
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(CameraError, match="broken.png is not an image OpenCV can read"):
        read_image(str(path))
    assert capfd.readouterr().err == ""


def test_a_truncated_video_file_is_an_error_at_its_end(tmp_path):
    whole = tmp_path / "whole.avi"
    writer = cv2.VideoWriter(str(whole), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (128, 64))
    for n in range(40):
        writer.write(noise(64, 128, seed=n))
    writer.release()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole.read_bytes()[:whole.stat().st_size // 2])
    assert len(list(file_frames("gate", str(whole), 10.0))) == 40
    with pytest.raises(CameraError, match=r"truncated or corrupt: camera source '.*cut.avi' gave \d+ of the 40 frames"):
        list(file_frames("gate", str(cut), 10.0))
    camera = open_camera("gate", str(cut), 10, realtime=False)
    assert 0 < len(list(camera.frames())) < 40
    assert camera.state == DOWN and "truncated or corrupt" in camera.last_error
