"""structlog set-up for the model server (its own: ``serving`` ships alone and imports no daemon code).

JSON lines by default (``timestamp``, ``level``, ``event``, ``logger`` + bound context such as
``model_name``); ``--log-format console`` renders for humans. No per-request access log at
info level: at thousands of requests a second it would cost more than the prediction.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog


def configure(*, fmt: str = "json", level: str = "info", stream: TextIO | None = None) -> None:
    out = stream or sys.stderr
    lvl = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    if fmt == "console":
        processors.append(structlog.dev.ConsoleRenderer(colors=out.isatty()))
    else:
        processors.append(structlog.processors.JSONRenderer())
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


class _NamedLogger:
    """Binds ``logger=<name>`` when a line is logged, not at import time: a module-level
    ``structlog.get_logger().bind()`` would freeze whatever configuration existed at import."""

    def __init__(self, name: str) -> None:
        self._name = name

    def bind(self, **kw: Any) -> Any:
        return structlog.get_logger().bind(logger=self._name, **kw)

    def __getattr__(self, method: str) -> Any:
        return getattr(structlog.get_logger().bind(logger=self._name), method)


def get_logger(name: str) -> Any:
    return _NamedLogger(name)
