"""Site photos: the picture an officer takes on site to resolve a lead.

Only JPEG and PNG are taken, at most ``MAX_PHOTO_BYTES``; a file is judged by
its content (signature and end marker), never by its name or declared type.
Photos are kept as evidence is, by content: ``EVIDENCE_DIR/site/ab/<sha256>.jpg|png``,
owner-only, written durably (write, fsync, rename), and recorded as a ``site_photo`` point.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from common.files import write_private_durably
from gateway.desk import casework
from gateway.desk.casework import BadInput
from gateway.store.base import LeadStore
from gateway.store.schema import site_photo_point

MAX_PHOTO_BYTES = 10 * 1024 * 1024


class PhotoTooLarge(BadInput):
    """A site photo over ``MAX_PHOTO_BYTES``."""


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
KINDS = {"jpeg": "jpg", "png": "png"}


def photo_kind(data: bytes) -> str:
    """``jpeg`` or ``png``; BadInput for anything else, for an empty and for an oversized file."""
    if not data:
        raise BadInput("the site photo is empty")
    if len(data) > MAX_PHOTO_BYTES:
        raise PhotoTooLarge(f"the site photo is larger than {MAX_PHOTO_BYTES // 1048576} MiB "
                            f"({len(data) / 1048576:.1f} MiB); nothing was changed")
    if data.startswith(b"\xff\xd8\xff") and b"\xff\xd9" in data[-1024:]:
        return "jpeg"
    if data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR" and b"IEND" in data[-64:]:
        return "png"
    raise BadInput("the site photo must be a JPEG or PNG picture; this file is neither")


class PhotoStore:
    def __init__(self, evidence_dir: Path) -> None:
        self.root = evidence_dir / "site"

    def path_for(self, sha256: str) -> Path | None:
        for suffix in KINDS.values():
            path = self.root / sha256[:2] / f"{sha256}.{suffix}"
            if path.is_file():
                return path
        return None

    def save(self, store: LeadStore, lead_id: str, data: bytes, by: str, at_ms: int) -> str:
        """Check, keep and record the photo; its sha256."""
        kind = photo_kind(data)
        sha = hashlib.sha256(data).hexdigest()
        target = self.root / sha[:2] / f"{sha}.{KINDS[kind]}"
        if not target.exists():
            write_private_durably(target, data)
        store.write([site_photo_point(lead_id, sha, kind, len(data), by, at_ms)])
        return sha


def resolve_with_photo(store: LeadStore, photos: PhotoStore, lead_id: str, actor: casework.Actor, now_ms: int,
                       data: bytes, note: str | None = None) -> casework.LeadEvent:
    """Resolve with a site photo: the change and the photo are checked before anything is kept."""
    casework.resolvable(store, lead_id, actor)
    if not data:
        raise BadInput(f"lead {lead_id}: resolving needs a site photo (JPEG or PNG)")
    photo_kind(data)
    sha = photos.save(store, lead_id, data, actor.name, now_ms)
    return casework.resolve(store, lead_id, actor, now_ms, sha, note)
