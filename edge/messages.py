"""Rule hits become wire messages (contract v1)."""

from __future__ import annotations

import uuid

from contract import Detection
from edge.pipeline import normalised_bbox
from edge.rules import RuleHit


def new_message_id() -> str:
    return uuid.uuid4().hex


def detection_message(hit: RuleHit, *, message_id: str, box: str, district: str, camera: str, seq: int,
                      ts_ms: int, frame_size: tuple[int, int], model: str, config_hash: str,
                      evidence_sha256: str | None) -> Detection:
    return Detection(
        id=message_id,
        box=box,
        district=district,
        seq=seq,
        ts=ts_ms,
        camera=camera,
        category=hit.category.value,
        event=hit.event,
        label=hit.label,
        score=round(min(1.0, max(0.0, hit.score)), 4),
        bbox=normalised_bbox(hit.bbox_px, *frame_size),
        zone=hit.zone.name,
        track=hit.track_id,
        dwell_s=round(hit.dwell_s, 2),
        lat=hit.zone.config.lat,
        lon=hit.zone.config.lon,
        model=model,
        config=config_hash,
        evidence_sha256=evidence_sha256,
    )
