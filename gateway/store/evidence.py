"""Evidence JPEGs on disk, addressed by their sha256, and matched to the detections naming them.

A detection names the sha256 of its picture; the picture arrives on its own
topic, before or after the detection. Because a file's name is its content's
hash, "the picture a detection names is here" is simply "a file of that name
exists". Pictures are kept even when their detection is not known yet.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from pathlib import Path

from common.files import open_private, private_dir

PENDING_LIMIT = 10_000


class EvidenceStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._known: set[str] = set()

    def path_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}.jpg"

    def save(self, jpeg: bytes) -> str:
        """Store durably (write, fsync, rename) and return the sha256."""
        sha = hashlib.sha256(jpeg).hexdigest()
        target = self.path_for(sha)
        if not target.exists():
            private_dir(target.parent)
            temp = target.with_suffix(f".tmp{os.getpid()}")
            with open_private(temp) as f:
                f.write(jpeg)
                f.flush()
                os.fsync(f.fileno())
            temp.replace(target)
        self._known.add(sha)
        return sha

    def has(self, sha256: str) -> bool:
        if sha256 in self._known:
            return True
        if self.path_for(sha256).is_file():
            self._known.add(sha256)
            return True
        return False


class PendingEvidence:
    """Pictures whose detection has not arrived yet: detection id -> sha256 (bounded, oldest dropped)."""

    def __init__(self, limit: int = PENDING_LIMIT) -> None:
        self.limit = limit
        self._items: OrderedDict[str, str] = OrderedDict()

    def add(self, detection_id: str, sha256: str) -> None:
        self._items[detection_id] = sha256
        self._items.move_to_end(detection_id)
        while len(self._items) > self.limit:
            self._items.popitem(last=False)

    def pop(self, detection_id: str) -> str | None:
        return self._items.pop(detection_id, None)
