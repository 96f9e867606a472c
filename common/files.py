"""Files only their owner may read: the box's spool and the gateway's evidence hold what the cameras saw.

New folders are made mode 0700 and new files 0600 (the umask can only narrow
that); an existing folder keeps its mode, since it may be a shared parent such
as the working directory, and an existing file is narrowed to 0600.
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Make ``path`` (and missing parents) owner-only where this call creates them."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            pass
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty and owner-only if it is missing, else narrow it to owner-only."""
    private_dir(path.parent)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        os.chmod(path, FILE_MODE)
    return path


def open_private(path: Path, flags: int = os.O_WRONLY | os.O_CREAT | os.O_TRUNC):
    """A binary file object for writing, created owner-only."""
    return os.fdopen(os.open(path, flags, FILE_MODE), "wb")
