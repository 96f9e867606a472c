"""Child processes that end with their parent (the gateway's writer and MQTT link)."""

from __future__ import annotations

import ctypes
import os
import signal
from multiprocessing.connection import Connection
from typing import Any

_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15


def die_with_parent(parent_pid: int, name: str = "") -> None:
    """Ask Linux to kill this process when its parent dies; exit now if that already happened.

    Linux sends the signal when the *thread* that started the child ends, so start children from the main thread.
    ``name`` (at most 15 bytes kept) is what ``ps`` and ``top`` show for the process.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if name:
            libc.prctl(_PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]))
    except (OSError, AttributeError):
        pass  # not Linux: the child's closed pipe still stops it
    if os.getppid() != parent_pid:
        os._exit(1)


def first_word(process: Any, conn: Connection, what: str, timeout_s: float) -> bytes:
    """The first message a started child sends on ``conn`` (that it is ready, or why it is not).

    Raises RuntimeError, naming ``what``, when none comes within ``timeout_s`` (the child is killed) or the
    child exits first.
    """
    if not conn.poll(timeout_s):
        process.kill()
        raise RuntimeError(f"{what} did not start within {timeout_s:g} s")
    try:
        return conn.recv_bytes()
    except EOFError:
        process.join(5)
        raise RuntimeError(f"{what} exited on start (exit code {process.exitcode})") from None
