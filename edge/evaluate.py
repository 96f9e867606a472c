"""Score a box's rules on annotated recordings: `edge eval`.

An evaluation folder holds one ground-truth TOML per clip (format in the
README, "Judging a config on recordings"). Every clip runs through the same
pipeline as `edge replay`, and each reported ``new`` is matched to a true
incident when

- the category is the same,
- its box overlaps the true box by at least half of the smaller of the two,
- it comes between ``dwell_s - 2`` and ``dwell_s + 10`` seconds after the
  incident began (``dwell_s`` of the incident's zone in the config in use).

Each true incident takes at most one report, the closest in time. A report
that matches nothing is a false incident; it counts against the control time
when it falls outside every true incident's span. Control time is the
footage outside every incident's span (``start_s`` to ``end_s``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, ValidationError, model_validator

from common.validation import Strict, validation_problems
from edge.config import BoxConfig, ConfigError, load_config
from contract import Category
from edge.rules import RuleHit

EARLY_S = 2.0
LATE_S = 10.0
MIN_OVERLAP = 0.5

Box = tuple[float, float, float, float]


class TrueIncident(Strict):
    category: Category = Field(description="street_vending or illegal_dumping.")
    zone: str = Field(description="Zone of the clip's config the incident happens in.")
    start_s: float = Field(ge=0, description="When the person stopped, or the object was left and its bringer went.")
    end_s: float | None = Field(None, gt=0, description="When the person left or the object was taken (default: clip end).")
    box: tuple[float, float, float, float] = Field(description="The object's box in pixels: x1, y1, x2, y2.")

    @model_validator(mode="after")
    def _ordered(self) -> TrueIncident:
        x1, y1, x2, y2 = self.box
        if x2 <= x1 or y2 <= y1:
            raise ValueError("box must be x1, y1, x2, y2 with x2 > x1 and y2 > y1")
        if self.end_s is not None and self.end_s <= self.start_s:
            raise ValueError("end_s must come after start_s")
        return self


class GroundTruth(Strict):
    clip: Path = Field(description="The video, relative to this file.")
    config: Path | None = Field(None, description="Box config whose zones and rules to judge, relative to this file.")
    camera: str | None = Field(None, description="Camera of the config the clip is from (default: the first).")
    split: Literal["tune", "holdout"] = Field("tune", description="holdout: clips not looked at while tuning.")
    description: str = ""
    incidents: list[TrueIncident] = Field(default_factory=list)


@dataclass(frozen=True)
class Clip:
    name: str
    path: Path                     # the ground-truth file
    truth: GroundTruth

    @property
    def video(self) -> Path:
        return (self.path.parent / self.truth.clip).resolve()

    @property
    def config_path(self) -> Path | None:
        return None if self.truth.config is None else (self.path.parent / self.truth.config).resolve()


@dataclass(frozen=True)
class Match:
    truth: TrueIncident
    hit: RuleHit
    start_error_s: float           # reported - (start_s + dwell_s)


@dataclass(frozen=True)
class ClipScore:
    clip: Clip
    duration_s: float
    control_s: float
    matches: list[Match]
    missed: list[TrueIncident]
    false: list[RuleHit]
    false_in_control: list[RuleHit]
    dwell_s: dict[str, float] = field(default_factory=dict)   # per zone, as judged

    @property
    def reported(self) -> int:
        return len(self.matches) + len(self.false)


def _read_toml(path: Path) -> dict:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(str(path), [f"(file): {exc}"]) from None


def _clip_from(path: Path, raw: dict) -> Clip:
    try:
        truth = GroundTruth.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(str(path), validation_problems(exc)) from None
    return Clip(path.stem, path, truth)


def load_clip(path: Path) -> Clip:
    return _clip_from(path, _read_toml(path))


def find_clips(folder: Path) -> list[Clip]:
    """The clips of an evaluation folder: every ``*.toml`` directly in it that has a ``clip`` key."""
    if not folder.is_dir():
        raise ConfigError(str(folder), ["(folder): not a directory"])
    tables = ((path, _read_toml(path)) for path in sorted(folder.glob("*.toml")))
    clips = [_clip_from(path, raw) for path, raw in tables if "clip" in raw]
    if not clips:
        raise ConfigError(str(folder), ["(folder): no ground-truth file (a *.toml with a 'clip' key)"])
    return clips


def config_for(clip: Clip, override: BoxConfig | None) -> BoxConfig:
    if override is not None:
        return override
    if clip.config_path is None:
        raise ConfigError(str(clip.path), ["config: the clip names no box config and none was given (--config)"])
    return load_config(clip.config_path)


def zone_dwell(config: BoxConfig, camera_name: str) -> dict[str, float]:
    """Dwell time per zone of the camera: the zone's own, else its rule's."""
    camera = next(c for c in config.cameras if c.name == camera_name)
    return {z.name: z.dwell_s or config.rules.for_zone_type(z.type)[1].dwell_s for z in camera.zones}


def overlap_of_smaller(a: Box, b: Box) -> float:
    """Intersection area over the smaller box's area."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return w * h / smaller if smaller > 0 else 0.0


def score_clip(clip: Clip, hits: Iterable[RuleHit], duration_s: float, dwell: dict[str, float]) -> ClipScore:
    truths = clip.truth.incidents
    news = [h for h in hits if h.event == "new"]
    missing_zones = sorted({t.zone for t in truths} - dwell.keys())
    if missing_zones:
        raise ConfigError(str(clip.path), [f"incidents: zone {z!r} is not a zone of the camera" for z in missing_zones])
    candidates = []
    for ti, truth in enumerate(truths):
        due = truth.start_s + dwell[truth.zone]
        for hi, hit in enumerate(news):
            error = hit.t_s - due
            if (hit.category == truth.category and -EARLY_S <= error <= LATE_S
                    and overlap_of_smaller(hit.bbox_px, truth.box) >= MIN_OVERLAP):
                candidates.append((abs(error), ti, hi, error))
    matches, used_truths, used_hits = [], set(), set()
    for _, ti, hi, error in sorted(candidates):
        if ti in used_truths or hi in used_hits:
            continue
        used_truths.add(ti)
        used_hits.add(hi)
        matches.append(Match(truths[ti], news[hi], error))
    spans = [(t.start_s, t.end_s if t.end_s is not None else duration_s) for t in truths]
    false = [h for hi, h in enumerate(news) if hi not in used_hits]
    in_control = [h for h in false if not any(a <= h.t_s <= b for a, b in spans)]
    return ClipScore(clip, duration_s, duration_s - covered_seconds(spans, duration_s), matches,
                     [t for ti, t in enumerate(truths) if ti not in used_truths], false, in_control, dwell)


def covered_seconds(spans: list[tuple[float, float]], duration_s: float) -> float:
    """Length of the union of the spans, clipped to the clip."""
    total, reach = 0.0, 0.0
    for a, b in sorted((max(0.0, a), min(duration_s, b)) for a, b in spans):
        if b <= reach:
            continue
        total += b - max(a, reach)
        reach = b
    return total


@dataclass(frozen=True)
class Summary:
    clips: int
    incidents: int
    reported: int
    matched: int
    false_in_control: int
    control_s: float
    start_errors_s: list[float]

    @property
    def recall(self) -> float:
        return self.matched / self.incidents if self.incidents else 1.0

    @property
    def precision(self) -> float:
        return self.matched / self.reported if self.reported else 1.0

    @property
    def false_per_hour(self) -> float:
        return self.false_in_control / (self.control_s / 3600) if self.control_s else 0.0

    def as_dict(self) -> dict:
        errors = np.abs(np.asarray(self.start_errors_s)) if self.start_errors_s else None
        return {
            "clips": self.clips, "incidents": self.incidents, "reported": self.reported, "matched": self.matched,
            "recall": round(self.recall, 4), "precision": round(self.precision, 4),
            "start_error_mean_s": None if errors is None else round(float(np.mean(self.start_errors_s)), 2),
            "start_error_max_abs_s": None if errors is None else round(float(errors.max()), 2),
            "control_min": round(self.control_s / 60, 2), "false_in_control": self.false_in_control,
            "false_per_hour": round(self.false_per_hour, 2),
        }


def summarise(scores: list[ClipScore]) -> Summary:
    return Summary(
        clips=len(scores),
        incidents=sum(len(s.matches) + len(s.missed) for s in scores),
        reported=sum(s.reported for s in scores),
        matched=sum(len(s.matches) for s in scores),
        false_in_control=sum(len(s.false_in_control) for s in scores),
        control_s=sum(s.control_s for s in scores),
        start_errors_s=[m.start_error_s for s in scores for m in s.matches],
    )


def clip_row(score: ClipScore) -> dict:
    def hit_row(hit: RuleHit) -> dict:
        return {"t_s": round(hit.t_s, 2), "category": hit.category.value, "zone": hit.zone.name,
                "label": hit.label, "bbox": [round(v, 1) for v in hit.bbox_px]}

    return {
        "clip": score.clip.name, "split": score.clip.truth.split, "duration_s": round(score.duration_s, 1),
        "control_s": round(score.control_s, 1), "incidents": len(score.matches) + len(score.missed),
        "reported": score.reported, "matched": len(score.matches),
        "start_errors_s": [round(m.start_error_s, 2) for m in score.matches],
        "missed": [{"category": t.category.value, "zone": t.zone, "start_s": t.start_s,
                    "due_s": round(t.start_s + score.dwell_s[t.zone], 2)} for t in score.missed],
        "false": [hit_row(h) | {"in_control": h in score.false_in_control} for h in score.false],
    }


Runner = Callable[[Clip, BoxConfig, Callable[[float], None]], tuple[list[RuleHit], float, str]]


def evaluate(clips: list[Clip], runner: Runner, override: BoxConfig | None = None,
             progress: Callable[[int, Clip, float], None] | None = None) -> list[ClipScore]:
    """Score every clip; ``runner`` replays one clip under a config and returns (hits, duration, camera name)."""
    scores = []
    for index, clip in enumerate(clips):
        config = config_for(clip, override)

        def clip_progress(share: float, index: int = index, clip: Clip = clip) -> None:
            if progress is not None:
                progress(index, clip, share)

        hits, duration, camera = runner(clip, config, clip_progress)
        scores.append(score_clip(clip, hits, duration, zone_dwell(config, camera)))
    return scores


def report(scores: list[ClipScore]) -> dict:
    """Per clip, overall, and per split: what `edge eval --json` prints."""
    splits = {name: summarise([s for s in scores if s.clip.truth.split == name]).as_dict()
              for name in ("tune", "holdout") if any(s.clip.truth.split == name for s in scores)}
    return {"clips": [clip_row(s) for s in scores], "overall": summarise(scores).as_dict(), "splits": splits}


def format_table(result: dict) -> str:
    lines = [f"{'CLIP':<34} {'SPLIT':<8} {'TRUE':>4} {'REP':>4} {'HIT':>4} {'FALSE':>5} {'CTRL-MIN':>8}  START ERR (s)"]
    for row in result["clips"]:
        errors = " ".join(f"{e:+.1f}" for e in row["start_errors_s"]) or "-"
        lines.append(f"{row['clip']:<34} {row['split']:<8} {row['incidents']:>4} {row['reported']:>4} "
                     f"{row['matched']:>4} {len(row['false']):>5} {row['control_s'] / 60:>8.2f}  {errors}")
        for miss in row["missed"]:
            lines.append(f"    missed {miss['category']} in {miss['zone']} (began {miss['start_s']:.1f} s, "
                         f"due {miss['due_s']:.1f} s)")
        for hit in row["false"]:
            where = "control time" if hit["in_control"] else "during an incident"
            lines.append(f"    false {hit['category']} in {hit['zone']} at {hit['t_s']:.1f} s ({hit['label']}, "
                         f"box {hit['bbox']}; {where})")
    lines.append("")
    for name, summary in [("overall", result["overall"]), *result["splits"].items()]:
        mean, worst = summary["start_error_mean_s"], summary["start_error_max_abs_s"]
        start_error = "-" if mean is None else f"{mean:+.1f} s mean, {worst:.1f} s max"
        lines.append(f"{name:<8} recall {summary['recall']:.3f}  precision {summary['precision']:.3f}  "
                     f"({summary['matched']}/{summary['incidents']} true, {summary['reported']} reported)  "
                     f"start error {start_error}  "
                     f"false in control {summary['false_in_control']} in {summary['control_min']:.1f} min "
                     f"({summary['false_per_hour']:.1f}/h)")
    return "\n".join(lines)
