"""Camera sources: frames read through OpenCV, sampled at the configured rate.

A source is a video file, an ``rtsp://`` / ``http://`` URL, or a USB device
number. ``open_camera`` gives a ``Camera`` whose ``frames()`` yields frames
at the configured fps and whose ``state`` says how the source is doing:

    running       frames are coming
    reconnecting  a live source is not delivering yet or any more; it is being (re)opened
    down          it has failed ``Backoff.down_after`` times in a row (still retried
                  unless ``give_up_after`` is reached), or a file cannot be opened
    ended         a file reached its end, or the camera was closed

A live source is read by its own thread that keeps only the newest frame, so
a slow consumer always gets a recent frame and never a backlog. A source
that fails is reported through its state and the log; no exception reaches
the caller of ``frames()``.

A video file that gives clearly fewer frames than its container declares is
truncated or corrupt: ``file_frames`` raises CameraError at its end, and a
camera on it goes ``down``. ``read_image`` reads a picture file, refusing
one that is truncated or does not decode.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from common.backoff import Backoff

log = logging.getLogger(__name__)

# Passed to FFmpeg for URL sources, so that a silent or unreachable stream
# fails a read or an open instead of blocking the reader for good.
OPEN_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 10.0
# A video file may give a few frames fewer than its container declares (the
# count is estimated from the duration when the container has none); only a
# larger shortfall means it was cut short or is corrupt.
FRAME_COUNT_SLACK = 0.02


class CameraError(RuntimeError):
    """A camera source cannot be opened, or a file is truncated or corrupt."""


@dataclass(frozen=True)
class Frame:
    camera: str
    index: int          # frame number in the source
    t_s: float          # seconds since the source started (video time for files)
    ts_ms: int          # event time, UTC epoch milliseconds
    image: np.ndarray   # BGR uint8

    @property
    def width(self) -> int:
        return self.image.shape[1]

    @property
    def height(self) -> int:
        return self.image.shape[0]


class SourceState(StrEnum):
    """Values are those of the health message's camera ``state``."""

    RUNNING = "running"
    RECONNECTING = "reconnecting"
    DOWN = "down"
    ENDED = "ended"


@dataclass(frozen=True)
class StateChange:
    camera: str
    state: SourceState
    reason: str = ""


NO_RETRY = Backoff(first_s=0.0, max_s=0.0, down_after=1, give_up_after=1)

StateListener = Callable[[StateChange], None]


def is_live(source: str) -> bool:
    """URLs and device numbers are live; anything else is a file path."""
    return source.isdigit() or "://" in source


def redacted(source: str) -> str:
    """The source as it may appear in logs: no password of a URL."""
    if "://" not in source:
        return source
    parts = urlsplit(source)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return source
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _open_capture(source: str) -> cv2.VideoCapture:
    try:
        capture = _new_capture(source)
    except cv2.error as exc:
        raise CameraError(f"cannot open: camera source {redacted(source)!r}: {exc.err}") from None
    if not capture.isOpened():
        capture.release()
        raise CameraError(f"{_open_failure(source)}: camera source {redacted(source)!r}")
    return capture


def _open_failure(source: str) -> str:
    if is_live(source):
        return "cannot open"
    if not os.path.exists(source):
        return "no such file"
    return "cannot open (truncated, corrupt or not a video)"


def _new_capture(source: str) -> cv2.VideoCapture:
    if source.isdigit():
        return cv2.VideoCapture(int(source))
    if "://" in source:
        return cv2.VideoCapture(source, cv2.CAP_FFMPEG, [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(OPEN_TIMEOUT_S * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(READ_TIMEOUT_S * 1000)])
    return cv2.VideoCapture(source)


def _video_file_frames(camera: str, source: str, fps: float, start_ms: int | None,
                       realtime: bool, loop: bool) -> Iterator[Frame]:
    start_ms = int(time.time() * 1000) if start_ms is None else start_ms
    started = time.monotonic()
    step_s = 1.0 / fps
    next_t = 0.0
    offset_s = 0.0
    index = 0
    while True:
        capture = _open_capture(source)
        source_fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
        declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        local = 0
        try:
            while True:
                ok, image = capture.read()
                if not ok:
                    break
                t_s = offset_s + local / source_fps
                local += 1
                index += 1
                if realtime:
                    next_t = max(next_t, time.monotonic() - started - step_s)
                if t_s + 1e-9 < next_t:
                    continue
                next_t += step_s
                if realtime:
                    time.sleep(max(0.0, t_s - (time.monotonic() - started)))
                yield Frame(camera, index - 1, t_s, start_ms + int(t_s * 1000), image)
        finally:
            capture.release()
        _check_whole(source, local, declared)
        if not loop or local == 0:
            return
        offset_s += local / source_fps


def _check_whole(source: str, read: int, declared: int) -> None:
    """Raise CameraError if a file gave clearly fewer frames than its container declares.

    FFmpeg stops at a cut or a corrupt stretch and OpenCV reports that as
    the end of the file: the missing frames are the only sign that reaches
    the caller.
    """
    if declared > 0 and read < declared * (1 - FRAME_COUNT_SLACK) - 1:
        raise CameraError(f"truncated or corrupt: camera source {redacted(source)!r} gave {read} of the "
                          f"{declared} frames its container declares")


def file_frames(camera: str, source: str, fps: float, start_ms: int | None = None,
                realtime: bool = False, loop: bool = False) -> Iterator[Frame]:
    """Frames of a video file at ``fps``; raises CameraError if it cannot be opened.

    Event time is the start time plus the position in the video, so dwell
    times measured on a recording match those of the live scene. With
    ``realtime`` the file plays like a live camera: frames come no faster
    than the clock, and when processing falls behind, the frames in between
    are skipped rather than queued. With ``loop`` the file starts again at
    its end and time runs on.
    """
    count = 0
    for frame in _video_file_frames(camera, source, fps, start_ms, realtime, loop):
        count = frame.index + 1
        yield frame
    log.info("camera.ended camera=%s frames=%d", camera, count)


JPEG_START = b"\xff\xd8"
JPEG_END = b"\xff\xd9"
START_OF_SCAN = 0xDA


def jpeg_is_complete(data: bytes) -> bool:
    """Whether a JPEG's image data is followed by its end marker (EOI).

    The segments before the first scan are stepped over by their lengths, so
    the EOI of an EXIF thumbnail inside them does not count. In scan data a
    0xFF byte is always followed by 0x00 or a marker, so an FF D9 after the
    first scan is the image's own end. Bytes after it (a Motion Photo's
    video, a vendor trailer) are allowed.
    """
    pos = len(JPEG_START)
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        if data[pos + 1] == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if data[pos + 1] == START_OF_SCAN:
            return data.find(JPEG_END, pos + 2 + length) != -1
        pos += 2 + length
    return False


@contextmanager
def _native_stderr_discarded() -> Iterator[None]:
    """Send what C libraries print to the process's stderr (fd 2) to /dev/null meanwhile.

    For single-threaded commands only: anything else writing to stderr in
    the meantime is lost too.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def read_image(path: str) -> np.ndarray:
    """A picture file as a BGR frame; raises CameraError unless it is whole and decodes.

    libjpeg and libpng print their complaints ("Premature end of JPEG file",
    "libpng error: Read Error") straight to stderr, not through OpenCV's log,
    so no log level silences them: they are discarded, and the caller reports
    the problem in one line instead. A JPEG cut short may still decode, its
    missing rows grey, with only that warning to tell (``cv2.imread`` takes
    it; whether ``cv2.imdecode`` does depends on the OpenCV version); so a
    JPEG is refused when its image data has no end marker, before decoding.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CameraError(f"cannot read {path}: {exc.strerror}") from None
    if data.startswith(JPEG_START) and not jpeg_is_complete(data):
        raise CameraError(f"{path} is a truncated or corrupt JPEG: its image data has no end marker")
    with _native_stderr_discarded():
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise CameraError(f"{path} is not an image OpenCV can read (truncated, corrupt or of another format)")
    return image


@dataclass(frozen=True)
class _Grab:
    seq: int            # 1 for the first frame the reader got
    t_s: float
    ts_ms: int
    image: np.ndarray


class LatestFrame:
    """The newest frame a reader got; a newer one replaces it, nothing queues."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._grab: _Grab | None = None
        self._seq = 0

    def put(self, image: np.ndarray, t_s: float) -> None:
        with self._changed:
            self._seq += 1
            self._grab = _Grab(self._seq, t_s, int(time.time() * 1000), image)
            self._changed.notify_all()

    def clear(self) -> None:
        """Forget the frame of a connection that dropped, so it is never served late."""
        with self._changed:
            self._grab = None

    def newer_than(self, seq: int, timeout_s: float) -> _Grab | None:
        with self._changed:
            self._changed.wait_for(lambda: self._grab is not None and self._grab.seq > seq, timeout_s)
            grab = self._grab
        return grab if grab is not None and grab.seq > seq else None


class Camera:
    """One camera source; iterate ``frames()`` from one thread, ``close()`` from any."""

    def __init__(self, name: str, source: str, fps: float, *, realtime: bool = True, loop: bool = False,
                 start_ms: int | None = None, backoff: Backoff = Backoff(),
                 on_state: StateListener | None = None, stop: threading.Event | None = None) -> None:
        if fps <= 0:
            raise ValueError("fps must be positive")
        self.name = name
        self.source = source
        self.fps = fps
        self.realtime = realtime
        self.loop = loop
        self.start_ms = start_ms
        self.backoff = backoff
        self.live = is_live(source)
        self.last_error: str | None = None
        self._on_state = on_state
        self._external_stop = stop
        self._closed = threading.Event()
        self._state_lock = threading.Lock()
        self._state = SourceState.RECONNECTING if self.live else SourceState.RUNNING
        self._latest = LatestFrame()
        self._started = time.monotonic()

    @property
    def state(self) -> SourceState:
        return self._state

    def close(self) -> None:
        """Stop this camera: ``frames()`` returns soon, from whatever it was waiting on."""
        self._closed.set()

    def frames(self) -> Iterator[Frame]:
        frames = self._live_frames() if self.live else self._file_frames()
        try:
            yield from frames
        finally:
            self._closed.set()

    # ------------------------------------------------------------------ common

    def _stopping(self) -> bool:
        return self._closed.is_set() or (self._external_stop is not None and self._external_stop.is_set())

    def _sleep(self, seconds: float) -> None:
        """Sleep, waking early when the camera is stopped."""
        deadline = time.monotonic() + seconds
        while not self._stopping():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._closed.wait(min(left, 0.1))

    def _set_state(self, state: SourceState, reason: str = "") -> None:
        with self._state_lock:
            # Ended is final: a reader still finishing a read must not revive a closed camera.
            if state == self._state or self._state == SourceState.ENDED:
                return
            previous, self._state = self._state, state
        log_level = logging.ERROR if state == SourceState.DOWN else logging.INFO
        log.log(log_level, "camera.%s camera=%s source=%s previous=%s reason=%s", state.value, self.name,
                redacted(self.source), previous.value, reason or "-")
        if self._on_state is not None:
            try:
                self._on_state(StateChange(self.name, state, reason))
            except Exception:  # a broken listener must not take the camera down with it
                log.exception("camera.state_listener_failed camera=%s state=%s", self.name, state.value)

    # ------------------------------------------------------------------ files

    def _file_frames(self) -> Iterator[Frame]:
        frames = _video_file_frames(self.name, self.source, self.fps, self.start_ms, self.realtime, self.loop)
        finished = False
        try:
            for frame in frames:
                if self._stopping():
                    break
                self._set_state(SourceState.RUNNING)
                yield frame
            else:
                finished = True
        except (CameraError, cv2.error) as exc:
            self.last_error = str(exc)
            self._set_state(SourceState.DOWN, str(exc))
        finally:
            frames.close()
            if self._state != SourceState.DOWN:
                self._set_state(SourceState.ENDED, "end of file" if finished else "closed")

    # ------------------------------------------------------------------ live sources

    def _live_frames(self) -> Iterator[Frame]:
        reader = threading.Thread(target=self._read_live, name=f"camera-reader-{self.name}", daemon=True)
        reader.start()
        step_s = 1.0 / self.fps
        due = time.monotonic()
        seen = 0
        gave_up = False
        try:
            while not self._stopping():
                self._sleep(due - time.monotonic())
                grab = self._latest.newer_than(seen, timeout_s=0.1)
                if grab is None:
                    gave_up = not reader.is_alive() and not self._stopping()
                    if gave_up:
                        break
                    continue
                seen = grab.seq
                yield Frame(self.name, grab.seq - 1, grab.t_s, grab.ts_ms, grab.image)
                # A consumer that fell behind takes the newest frame now rather than catching up.
                due = max(due + step_s, time.monotonic())
        finally:
            self._closed.set()
            reader.join(timeout=1.0)
            if not gave_up:
                self._set_state(SourceState.ENDED, "closed")

    def _read_live(self) -> None:
        """Reader thread: open, read until the stream fails, reopen with backoff."""
        failures = 0
        while not self._stopping():
            delivered = self._read_one_connection()
            if self._stopping():
                return
            if delivered:
                failures = 0
                self._set_state(SourceState.RECONNECTING, self.last_error or "")
            failures += 1
            if self.backoff.gives_up(failures):
                self._set_state(SourceState.DOWN, self.last_error or "")
                log.error("camera.gave_up camera=%s attempts=%d error=%s", self.name, failures, self.last_error)
                return
            if failures >= self.backoff.down_after:
                self._set_state(SourceState.DOWN, self.last_error or "")
            wait_s = self.backoff.delay(failures)
            log.warning("camera.%s camera=%s attempt=%d retry_in_s=%.2f error=%s",
                        "dropped" if delivered else "open_failed", self.name, failures, wait_s, self.last_error)
            self._sleep(wait_s)

    def _read_one_connection(self) -> int:
        """Open the source and pass its frames to the slot until a read fails; the number read."""
        try:
            capture = _open_capture(self.source)
        except CameraError as exc:
            self.last_error = str(exc)
            return 0
        delivered = 0
        try:
            while not self._stopping():
                try:
                    ok, image = capture.read()
                except cv2.error:
                    ok, image = False, None
                if not ok or image is None:
                    break
                delivered += 1
                self._latest.put(image, time.monotonic() - self._started)
                self._set_state(SourceState.RUNNING)
        finally:
            capture.release()
            self._latest.clear()
        if delivered:
            self.last_error = f"stream dropped after {delivered} frames"
        else:
            self.last_error = f"opened but gave no frame: camera source {redacted(self.source)!r}"
        return delivered


def open_camera(name: str, source: str, fps: float, *, realtime: bool = True, loop: bool = False,
                start_ms: int | None = None, backoff: Backoff = Backoff(), on_state: StateListener | None = None,
                stop: threading.Event | None = None) -> Camera:
    """A camera for a config's ``source``; iterate ``.frames()``, watch ``.state`` or ``on_state``.

    ``realtime``, ``loop`` and ``start_ms`` apply to video files as in
    ``file_frames``; ``backoff`` to live sources. ``stop``, when given, ends
    ``frames()`` once it is set, as ``close()`` does.
    """
    return Camera(name, source, fps, realtime=realtime, loop=loop, start_ms=start_ms, backoff=backoff,
                  on_state=on_state, stop=stop)
