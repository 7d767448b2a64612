"""structlog configuration, built once at start-up by ``main()``.

JSON lines by default (one object per line: ``timestamp``, ``level``, ``event``,
``logger`` and whatever context is bound: ``namespace``, ``name``, ``kind``, ``code``…);
``--log-format console`` renders for humans. A redaction processor drops any value
registered as secret before rendering, wherever it appears in the event dict: the daemon
copies credentials through the API and must never print them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

REDACTED = "<redacted>"


class Redactor:
    """A structlog processor that replaces known secret values with ``<redacted>``.

    Values are registered at run time (when the daemon reads a secret) via :meth:`add`.
    Matching is by substring, so a secret embedded in a longer message is caught too.
    """

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, value: str) -> None:
        # Very short values would redact ordinary words; real credentials are long.
        if len(value) >= 6:
            self._secrets.add(value)

    def scrub(self, text: str) -> str:
        for s in self._secrets:
            if s in text:
                text = text.replace(s, REDACTED)
        return text

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {k: self._walk(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self._walk(v) for v in value)
        return value

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> Any:
        if not self._secrets:
            return event_dict
        return {k: self._walk(v) for k, v in event_dict.items()}


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


class _NamedLogger:
    """Binds ``logger=<name>`` at each use, so it follows the configuration of that moment."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(structlog.get_logger().bind(logger=self._name), attr)


def get_logger(name: str) -> Any:
    """A logger bound to ``name``, safe to create at import time.

    ``structlog.get_logger().bind(...)`` at import time would freeze the configuration
    current *then* (structlog's default console renderer on stdout) before ``configure()``
    ran; this reads the configuration when a line is logged.
    """
    return _NamedLogger(name)
