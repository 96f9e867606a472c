"""Builders for the desk's tests: pictures, users, a desk over a store."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from gateway.web.accounts import Accounts

PASSWORD = "correct horse battery"
USERS = {"dana": ("dispatcher", None), "olga": ("officer", "old-town-street-team"),
         "hugo": ("officer", "harbour-street-team"), "sam": ("supervisor", None), "otto": ("operator", None)}


def png(width: int = 64, height: int = 48, rgb: tuple[int, int, int] = (40, 120, 200)) -> bytes:
    """A real PNG of one colour."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def add_users(path: Path, **limits) -> Accounts:
    accounts = Accounts(path, **limits)
    for name, (role, team) in USERS.items():
        accounts.add_user(name, role, team, PASSWORD)
    return accounts
