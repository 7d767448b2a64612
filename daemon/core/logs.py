"""Logger handles and the secret redactor; no output is configured here.

:func:`get_logger` hands out named structlog loggers that read the configuration of the
moment they log (:func:`daemon.process.logging_setup.configure` sets it once at start-up:
JSON lines by default, ``--log-format console`` for humans). :class:`Redactor` is the
processor that drops any value registered as secret before rendering, wherever it appears in
the event dict: the daemon copies credentials through the API and must never print them.
Pure string work: the layers above register secrets and install it.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

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
