"""`edge` command: run a box, try the detector on a file, validate configs."""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import signal
import sys
from pathlib import Path

from common.logs import configure_logging

SHIPPED_MODEL = Path(__file__).resolve().parent.parent / "models" / "nanodet-g-416.onnx"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edge", description="Street-vending and illegal-dumping edge box.")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO).")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="Run the box: cameras, rules, spool, MQTT.")
    run.add_argument("--config", type=Path, required=True, help="Box config (TOML) from firmware_configs/.")
    run.add_argument("--mqtt", metavar="URL", help="Broker URL, overriding the config (mqtt://host:port).")
    run.add_argument("--mqtt-config", type=Path, metavar="FILE", help=(
        "The box's [mqtt] table as provisioning wrote it (mqtt.toml: URL, login, CA), in place of the config's "
        "(its keepalive_s is kept)."))
    run.add_argument("--security-config", type=Path, metavar="FILE", help=(
        "The box's [security] table as provisioning wrote it (security.toml: its signing key), in place of the "
        "config's (its seal_every and seal_after_s are kept)."))
    run.add_argument("--remote-config", type=Path, metavar="FILE", help=(
        "A [remote_config] table (remote_config.toml of `gateway provision-operator`: the operators' keys whose "
        "signed config changes the box takes), in place of the config's."))
    run.add_argument("--spool", type=Path, metavar="PATH", help="Spool database, overriding the config.")
    run.add_argument("--fast", action="store_true",
                     help="Play video files as fast as the CPU allows instead of at recorded speed.")
    run.add_argument("--health-interval", type=float, default=60.0, metavar="S", help="Seconds between health messages.")
    run.set_defaults(handler=_run)

    detect = commands.add_parser("detect", help="Run the detector on an image or video and print its boxes.")
    detect.add_argument("file", type=Path, help="Image or video file.")
    detect.add_argument("--model", type=Path, default=SHIPPED_MODEL, help="ONNX model with its .card.toml.")
    detect.add_argument("--min-score", type=float, default=0.35, help="Score threshold (default 0.35).")
    detect.add_argument("--threads", type=int, default=2, help="onnxruntime threads (default 2).")
    detect.add_argument("--fps", type=float, default=1.0, help="Video frames per second to sample (default 1).")
    detect.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
    detect.add_argument("--annotate", type=Path, metavar="OUT",
                        help="Draw the boxes: OUT.jpg/.png gets the (first) frame, OUT.mp4/.avi every sampled frame.")
    detect.set_defaults(handler=_detect)

    replay = commands.add_parser("replay", help="Run a box's rules on a recording and print the incidents.")
    replay.add_argument("video", type=Path, help="Recorded video of one of the box's cameras.")
    replay.add_argument("--config", type=Path, required=True, help="Box config (TOML) whose rules and zones to use.")
    replay.add_argument("--camera", help="Camera of the config the recording is from (default: the first).")
    replay.add_argument("--json", action="store_true", help="Print one JSON object per incident message.")
    replay.set_defaults(handler=_replay)

    evaluate = commands.add_parser(
        "eval", help="Score the rules on annotated recordings: recall, precision, start-time error, false incidents.")
    evaluate.add_argument("folder", type=Path, help="Evaluation folder: one ground-truth TOML per clip (see README).")
    evaluate.add_argument("--config", type=Path,
                          help="Box config to judge on every clip, instead of the one each clip names.")
    evaluate.add_argument("--split", choices=("tune", "holdout"), help="Only the clips of this part of the set.")
    evaluate.add_argument("--clips", nargs="+", metavar="NAME", help="Only these clips (ground-truth file stems).")
    evaluate.add_argument("--cache", type=Path, metavar="DIR",
                          help="Keep the detector's boxes per frame here; later runs skip the model for frames seen.")
    evaluate.add_argument("--json", action="store_true", help="Print the report as JSON.")
    evaluate.set_defaults(handler=_eval)

    validate = commands.add_parser("validate", help="Check box configs and print every problem with its key path.")
    validate.add_argument("files", type=Path, nargs="+")
    validate.add_argument("--frame-size", dest="frame_sizes", action="append", type=_frame_size, default=[],
                          metavar="[CAMERA=]WxH",
                          help="Check pixel zones against the frames of the cameras: WxH for every camera, "
                               "CAMERA=WxH for the cameras of that name (repeatable; a named size wins).")
    validate.set_defaults(handler=_validate)

    args = parser.parse_args(argv)
    configure_logging(args.log_level.upper())
    return args.handler(args)


def _run(args: argparse.Namespace) -> int:
    from common.broker import InsecureAccessError
    from common.signing import SigningError
    from edge.config import ConfigError, load_table, parse_config
    from edge.detectors import DetectorError
    from edge.runtime import Box

    try:
        table = load_table(args.config)
        if args.mqtt_config:
            table["mqtt"] = _provisioned_table(args.mqtt_config, "mqtt", table.get("mqtt"), ("keepalive_s",))
        if args.security_config:
            table["security"] = _provisioned_table(args.security_config, "security", table.get("security"),
                                                   ("seal_every", "seal_after_s"))
        if args.remote_config:
            table["remote_config"] = _provisioned_table(args.remote_config, "remote_config", None, ())
        if args.fast:
            for camera in table.get("cameras", []) if isinstance(table.get("cameras"), list) else []:
                if isinstance(camera, dict):
                    camera["realtime"] = False
        config = parse_config(copy.deepcopy(table), str(args.config), args.config.parent)
        config.mqtt.check_secure(logging.getLogger("edge"), args.mqtt)
        box = Box(config, file_table=table, config_dir=args.config.parent, mqtt_url=args.mqtt,
                  spool_path=args.spool, health_interval_s=args.health_interval)
    except (ConfigError, DetectorError, SigningError) as exc:
        print(f"edge: {exc}", file=sys.stderr)
        return 2
    except InsecureAccessError as exc:
        print(f"edge: {args.config}: {exc}", file=sys.stderr)
        return 2
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: box.stop())
    box.run()
    delivered = box.close()
    print(f"edge: {box.incidents} incident(s); spool {'empty' if delivered else 'kept for next start'}")
    return 0


def _provisioned_table(path: Path, name: str, current: object, kept: tuple[str, ...]) -> dict:
    """The ``[name]`` table of ``path`` (a file provisioning wrote), keeping the box config's ``kept`` keys."""
    from edge.config import ConfigError, load_table

    provisioned = load_table(path).get(name)
    if not isinstance(provisioned, dict):
        raise ConfigError(str(path), [f"{name}: no [{name}] table"])
    for key in kept:
        if isinstance(current, dict) and key in current:
            provisioned.setdefault(key, current[key])
    return provisioned


VIDEO_OUTPUT_SUFFIXES = {".mp4": "mp4v", ".avi": "MJPG"}


def _quiet_native_logs() -> None:
    """Keep FFmpeg's and OpenCV's own log lines off the terminal; the command reports what went wrong itself.

    OpenCV reads both variables when it first logs or opens a capture, so
    setting them here is in time. An operator who wants those lines sets the
    variables beforehand (OPENCV_FFMPEG_LOGLEVEL=32, OPENCV_LOG_LEVEL=INFO).
    """
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")


def _detect(args: argparse.Namespace) -> int:
    _quiet_native_logs()
    from edge.camera import CameraError, file_frames, read_image
    from edge.config import TrackerConfig
    from edge.detectors import DetectorError, create_detector
    from edge.tracker import IouTracker

    try:
        detector = create_detector(args.model, threads=args.threads, min_score=args.min_score)
    except DetectorError as exc:
        print(f"edge: {exc}", file=sys.stderr)
        return 2
    if not args.file.is_file():
        print(f"edge: {args.file} does not exist", file=sys.stderr)
        return 2
    is_image = args.file.suffix.lower() in IMAGE_SUFFIXES
    output = _AnnotatedOutput(args.annotate, args.fps)
    # Video frames are tracked, so each box says which object it is and whether it stays put.
    tracker = None if is_image else IouTracker.from_config(TrackerConfig())
    results = []
    try:
        if is_image:
            frames = [(0, 0.0, read_image(str(args.file)))]
        else:
            frames = ((f.index, f.t_s, f.image) for f in file_frames("detect", str(args.file), args.fps, start_ms=0))
        for index, t_s, image in frames:
            dets = detector.detect(image)
            if tracker is not None:
                dets = tracker.update(dets, t_s)
            boxes = [_detection_row(dets, i) for i in range(len(dets))]
            results.append({"frame": index, "t_s": round(t_s, 3), "width": image.shape[1],
                            "height": image.shape[0], "detections": boxes})
            output.add(image, boxes)
            if not args.json:
                for det in boxes:
                    x1, y1, x2, y2 = det["bbox"]
                    track = f"  track {det['track']}{' stationary' if det['stationary'] else ''}" if "track" in det else ""
                    print(f"{index:>6} {det['label']:<16} {det['score']:.2f}  "
                          f"{x1:7.1f} {y1:7.1f} {x2:7.1f} {y2:7.1f}{track}")
    except CameraError as exc:
        print(f"edge: {exc}", file=sys.stderr)
        return 2
    finally:
        output.close()
    if args.json:
        report = {"file": str(args.file), "model": detector.name}
        if is_image:
            report.update(results[0])
        else:
            report["frames"] = results
        print(json.dumps(report))
    return 0


def _detection_row(dets, i: int) -> dict:
    row = {"label": dets.label_of(i), "score": round(float(dets.scores[i]), 4),
           "bbox": [round(float(v), 1) for v in dets.xyxy[i]]}
    if dets.track_ids is not None:
        row["track"] = int(dets.track_ids[i])
        row["stationary"] = bool(dets.stationary[i])
    return row


def _box_caption(row: dict) -> str:
    caption = f"{row['label']} {row['score']:.2f}"
    if "track" in row:
        caption += f" #{row['track']}{' still' if row['stationary'] else ''}"
    return caption


class _AnnotatedOutput:
    """Where ``edge detect --annotate`` draws: a picture of the first frame, or a whole video."""

    def __init__(self, path: Path | None, fps: float) -> None:
        self.path = path
        self.fps = fps
        self.writer = None
        self.done = path is None

    def add(self, image, boxes: list[dict]) -> None:
        import cv2

        from edge.evidence import annotate

        if self.done:
            return
        drawn = annotate(image, [(tuple(b["bbox"]), _box_caption(b)) for b in boxes])
        codec = VIDEO_OUTPUT_SUFFIXES.get(self.path.suffix.lower())
        if codec is None:
            cv2.imwrite(str(self.path), drawn)
            self.done = True
            return
        if self.writer is None:
            self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*codec), self.fps,
                                          (drawn.shape[1], drawn.shape[0]))
        self.writer.write(drawn)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()


def _replay(args: argparse.Namespace) -> int:
    _quiet_native_logs()
    from edge.camera import CameraError
    from edge.config import ConfigError, load_config
    from edge.detectors import DetectorError, detector_for
    from edge.replay import camera_of, replay
    from edge.zones import ZoneOutsideFrame

    try:
        config = load_config(args.config)
        camera = camera_of(config, args.camera, str(args.config))
        detector = detector_for(config.detector)
    except (ConfigError, DetectorError) as exc:
        print(f"edge: {exc}", file=sys.stderr)
        return 2
    try:
        result = replay(args.video, config, camera, detector)
    except (CameraError, ZoneOutsideFrame) as exc:
        print(f"edge: {exc}", file=sys.stderr)
        return 2
    for hit in result.hits:
        row = {"t_s": round(hit.t_s, 2), "event": hit.event, "category": hit.category.value, "zone": hit.zone.name,
               "track": hit.track_id, "label": hit.label, "score": round(hit.score, 3), "dwell_s": round(hit.dwell_s, 1),
               "bbox": [round(v, 1) for v in hit.bbox_px]}
        print(json.dumps(row) if args.json else
              f"{row['t_s']:>8.1f}s {row['event']:<6} {row['category']:<16} {row['zone']:<14} track {row['track']:<5} "
              f"{row['label']:<14} score {row['score']:.2f} dwell {row['dwell_s']:.0f}s")
    if not args.json:
        print(f"{sum(h.event == 'new' for h in result.hits)} incident(s) in {result.frames} frames "
              f"({result.mean_detector_ms:.0f} ms detector per frame)")
    return 0


def _eval(args: argparse.Namespace) -> int:
    _quiet_native_logs()
    from edge.camera import CameraError
    from edge.config import ConfigError, load_config
    from edge.detectors import DetectorError
    from edge.evaluate import evaluate, find_clips, format_table, report
    from edge.zones import ZoneOutsideFrame

    logging.getLogger("edge.camera").setLevel(logging.WARNING)  # a line per clip's end would break the progress bar
    try:
        clips = find_clips(args.folder)
        if args.split:
            clips = [c for c in clips if c.truth.split == args.split]
        if args.clips:
            unknown = sorted(set(args.clips) - {c.name for c in clips})
            if unknown:
                raise ConfigError(str(args.folder), [f"--clips: no clip named {name!r}" for name in unknown])
            clips = [c for c in clips if c.name in args.clips]
        override = load_config(args.config) if args.config else None
        runner = _EvalRunner(args.cache)
        progress = _Progress(len(clips))
        try:
            scores = evaluate(clips, runner, override, progress)
        finally:
            progress.done()
            runner.save()
    except (ConfigError, DetectorError, CameraError, ZoneOutsideFrame) as exc:
        print(f"edge: {exc}", file=sys.stderr)
        return 2
    result = report(scores)
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


class _EvalRunner:
    """Replays a clip; one detector per [detector] table, optionally answering from a cache."""

    def __init__(self, cache: Path | None) -> None:
        self.cache = cache
        self.detectors: dict[str, object] = {}
        self.cached: list = []

    def __call__(self, clip, config, progress):
        from edge.camera import CameraError
        from edge.replay import camera_of, replay

        camera = camera_of(config, clip.truth.camera, str(clip.path))
        if not clip.video.is_file():
            raise CameraError(f"{clip.path.name}: clip {clip.video} does not exist")
        result = replay(clip.video, config, camera, self._detector(config), progress)
        return result.hits, result.duration_s, camera.name

    def _detector(self, config):
        from edge.detectors import detector_for
        from edge.detectors.cache import CachedDetector

        key = config.detector.model_dump_json()
        if key not in self.detectors:
            detector = detector_for(config.detector)
            if self.cache:
                detector = CachedDetector(detector, self.cache)
                self.cached.append(detector)
            self.detectors[key] = detector
        return self.detectors[key]

    def save(self) -> None:
        for detector in self.cached:
            detector.save()


class _Progress:
    """One line on stderr per clip; redrawn in place with a bar on a terminal."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.tty = sys.stderr.isatty()
        self.last: tuple[int, int] | None = None

    def __call__(self, index: int, clip, share: float) -> None:
        step = (index, int(share * 20))
        if step == self.last:
            return
        if self.tty:
            bar = "#" * step[1] + "-" * (20 - step[1])
            print(f"\r[{index + 1}/{self.total}] [{bar}] {clip.name:<40}", end="", file=sys.stderr, flush=True)
        elif self.last is None or self.last[0] != index:
            print(f"[{index + 1}/{self.total}] {clip.name}", file=sys.stderr, flush=True)
        self.last = step

    def done(self) -> None:
        if self.tty and self.last is not None:
            print(file=sys.stderr)


def _validate(args: argparse.Namespace) -> int:
    from edge.config import ConfigError, load_config
    from edge.sensors import check_sensors
    from edge.zones import frame_problems

    failed = 0
    cameras: set[str] = set()
    for path in args.files:
        try:
            config = load_config(path)
            cameras.update(c.name for c in config.cameras)
            problems = check_sensors(config.sensors, config.sensor_profiles)
            problems += frame_problems(config.cameras, _sizes_by_camera(args.frame_sizes, config.cameras))
        except ConfigError as exc:
            problems = exc.problems
        if problems:
            failed += 1
            print(f"{path}: INVALID")
            for problem in problems:
                print(f"  {problem}")
            continue
        print(f"{path}: ok (box {config.box}, hash {config.config_hash()})")
    for camera in sorted({name for name, _ in args.frame_sizes if name is not None} - cameras):
        failed += 1
        print(f"--frame-size: no camera named {camera!r} in these configs")
    return 1 if failed else 0


FrameSize = tuple[str | None, tuple[int, int]]


def _frame_size(text: str) -> FrameSize:
    """``768x576`` (every camera) or ``north=768x576`` (cameras named north) as (camera, (width, height))."""
    camera, _, size = text.rpartition("=")
    width, x, height = size.lower().partition("x")
    if not (x and width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not [CAMERA=]WIDTHxHEIGHT, for example 768x576 or north=768x576")
    return camera or None, (int(width), int(height))


def _sizes_by_camera(frame_sizes: list[FrameSize], cameras) -> dict[str, tuple[int, int]]:
    """The frame size of each camera: its own ``CAMERA=WxH``, else the last plain ``WxH``, else none."""
    named = {camera: size for camera, size in frame_sizes if camera is not None}
    everyone = [size for camera, size in frame_sizes if camera is None]
    sizes = {c.name: named.get(c.name, everyone[-1] if everyone else None) for c in cameras}
    return {name: size for name, size in sizes.items() if size is not None}


if __name__ == "__main__":
    sys.exit(main())
