"""Evidence JPEGs on disk, addressed by their sha256."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


class EvidenceStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}.jpg"

    def save(self, jpeg: bytes) -> str:
        """Store durably (write, fsync, rename) and return the sha256."""
        sha = hashlib.sha256(jpeg).hexdigest()
        target = self.path_for(sha)
        if target.exists():
            return sha
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_suffix(f".tmp{os.getpid()}")
        with temp.open("wb") as f:
            f.write(jpeg)
            f.flush()
            os.fsync(f.fileno())
        temp.replace(target)
        return sha

    def has(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()
