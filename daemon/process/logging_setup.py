"""structlog configuration, built once at start-up by ``main()``.

JSON lines by default (one object per line: ``timestamp``, ``level``, ``event``,
``logger`` and whatever context is bound: ``namespace``, ``name``, ``kind``, ``code``…);
``--log-format console`` renders for humans. The :class:`~daemon.core.logs.Redactor`, when
given, scrubs every line, structlog's and stdlib's (libraries' warnings, tracebacks) alike.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

from daemon.core.logs import Redactor


def configure(*, fmt: str = "json", level: str = "info", stream: TextIO | None = None,
              redactor: Redactor | None = None) -> None:
    """Configure structlog (and stdlib logging, for libraries) once."""
    out = stream or sys.stderr
    lvl = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    if redactor is not None:
        processors.append(redactor)
    if fmt == "console":
        processors.append(structlog.dev.ConsoleRenderer(colors=out.isatty()))
    else:
        processors.append(structlog.processors.JSONRenderer(sort_keys=False))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    # Libraries log through stdlib; keep them quiet unless asked, and pass what they do print
    # (a botocore or aiohttp warning, a traceback) through the same redactor.
    handler = logging.StreamHandler(out)
    handler.setFormatter(_ScrubbingFormatter("%(levelname)s %(name)s %(message)s", redactor=redactor))
    logging.basicConfig(level=max(lvl, logging.WARNING), handlers=[handler])


class _ScrubbingFormatter(logging.Formatter):
    """stdlib's formatter, its whole output (message, args, traceback) scrubbed by the redactor."""

    def __init__(self, fmt: str, *, redactor: Redactor | None) -> None:
        super().__init__(fmt)
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return self._redactor.scrub(text) if self._redactor is not None else text
