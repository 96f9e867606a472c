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


def write_private_durably(target: Path, data: bytes) -> None:
    """Write ``data`` to an owner-only ``target`` so that a crash leaves the whole file or none of it.

    A temporary file beside it is written and fsynced, then renamed over it.
    """
    private_dir(target.parent)
    temp = target.with_suffix(f".tmp{os.getpid()}")
    with open_private(temp) as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    temp.replace(target)
