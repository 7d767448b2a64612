"""structlog set-up for the model server (its own: ``serving`` ships alone and imports no daemon code).

JSON lines by default (``timestamp``, ``level``, ``event``, ``logger`` + bound context such as
``model_name``); ``--log-format console`` renders for humans. No per-request access log at
info level: at thousands of requests a second it would cost more than the prediction.

Errors that clients can cause at request rate must not flood the log (34,048 tracebacks in
20 s made 45 MB of stderr), nor carry what the client sent. So:

* :func:`log_error` logs an exception as one line with its type and where it was raised
  (``file:line function`` frames), never its message (which may quote request data), through a
  :class:`RateLimiter`: a token bucket per kind of error (``burst`` lines at once, then one per
  ``interval`` seconds); the next line that passes carries ``suppressed``, how many were
  dropped since the last one of that kind.
* Everything logged through the standard library (aiohttp's "Error handling request" for
  malformed HTTP, asyncio's loop errors, warnings) goes through the same JSON renderer and the
  same limiter, as one line: the first line of the message (at most 200 characters) and the
  exception's type — never the traceback, whose message echoes raw request bytes (aiohttp's
  ``BadHttpMessage`` quotes the offending line).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable, Hashable
from typing import Any, TextIO

import structlog


def configure(*, fmt: str = "json", level: str = "info", stream: TextIO | None = None,
              stdlib: bool = False) -> None:
    """structlog for this process; with ``stdlib`` (the model server's own process) the standard
    library's loggers are routed through it too, one rate-limited line per record."""
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
    if stdlib:
        _route_stdlib_logging(lvl)


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


class RateLimiter:
    """A token bucket per key: ``burst`` lines at once, then one per ``interval`` seconds.

    :meth:`check` answers ``None`` when a line must be dropped, else how many lines of that key
    were dropped since the last one that passed. At most ``max_keys`` keys are tracked (the
    oldest is forgotten), so unbounded key sets cannot grow memory.
    """

    def __init__(self, *, burst: int = 5, interval: float = 10.0, max_keys: int = 512,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.burst, self.interval, self.max_keys, self._clock = burst, interval, max_keys, clock
        self._buckets: dict[Hashable, list[float]] = {}  # key -> [tokens, last refill, suppressed]
        self._lock = threading.Lock()

    def check(self, key: Hashable) -> int | None:
        now = self._clock()
        with self._lock:
            b = self._buckets.get(key)
            if b is None:
                if len(self._buckets) >= self.max_keys:
                    del self._buckets[next(iter(self._buckets))]
                b = self._buckets[key] = [float(self.burst), now, 0.0]
            tokens = min(float(self.burst), b[0] + (now - b[1]) / self.interval)
            b[1] = now
            if tokens < 1.0:
                b[0] = tokens
                b[2] += 1
                return None
            b[0] = tokens - 1.0
            dropped, b[2] = int(b[2]), 0.0
            return dropped


LIMITER = RateLimiter()


def where(exc: BaseException, frames: int = 6) -> list[str]:
    """Where ``exc`` was raised: its innermost frames as ``dir/file.py:line function``."""
    out = []
    for f in traceback.extract_tb(exc.__traceback__)[-frames:]:
        parts = f.filename.replace("\\", "/").rsplit("/", 2)
        out.append(f"{'/'.join(parts[-2:])}:{f.lineno} {f.name}")
    return out


def log_error(logger: Any, event: str, exc: BaseException, *, kind: str = "", **fields: Any) -> None:
    """One rate-limited error line for ``exc``: its type and frames, never its message."""
    error_type = type(exc).__name__
    dropped = LIMITER.check((event, kind, error_type))
    if dropped is None:
        return
    if dropped:
        fields["suppressed"] = dropped
    logger.error(event, error_type=error_type, where=where(exc), **fields)


class _StdlibBridge(logging.Handler):
    """Standard-library records -> one rate-limited structlog line each (see module docstring)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            exc = record.exc_info[1] if record.exc_info else None
            error_type = type(exc).__name__ if exc is not None else None
            event = record.getMessage().split("\n", 1)[0][:200]
            level = record.levelname.lower()
            if record.name == "aiohttp.server" and exc is not None and _is_http_error(exc):
                event, level = "malformed HTTP request", "warning"  # a client's mistake, not ours
            dropped = LIMITER.check((record.name, event if exc is None else record.msg, error_type))
            if dropped is None:
                return
            fields: dict[str, Any] = {"logger": record.name}
            if error_type is not None:
                fields["error_type"] = error_type
            if dropped:
                fields["suppressed"] = dropped
            method = getattr(structlog.get_logger(), level if level in _LEVELS else "error")
            method(event, **fields)
        except Exception:
            self.handleError(record)


_LEVELS = ("debug", "info", "warning", "error", "critical")


def _is_http_error(exc: BaseException) -> bool:
    from aiohttp.http_exceptions import HttpProcessingError

    return isinstance(exc, HttpProcessingError)


def _route_stdlib_logging(level: int) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, _StdlibBridge):
            root.removeHandler(h)
    root.addHandler(_StdlibBridge())
    root.setLevel(level)
    logging.captureWarnings(True)
    logging.raiseExceptions = False  # a broken log call must not print a traceback to stderr
