"""Logging set-up for the commands: one line per event, ``name event key=value ...``."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure_logging(level: int | str) -> None:
    """Log to stderr at ``level``, leaving out what the log lines never show, and quieten chatty libraries."""
    logging.basicConfig(level=level, format=FORMAT)
    # The format names no source line, thread or process: spare every record looking them up.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
