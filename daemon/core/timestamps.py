"""Timestamps as Kubernetes writes them, and back.

``Time`` fields (Event ``lastTimestamp``, the ``restartedAt`` annotation) are RFC 3339 in
UTC to the second; ``MicroTime`` fields (Lease ``renewTime``/``acquireTime``) carry
microseconds. Parsing accepts either, with ``Z`` or an offset, and answers None for an absent
or garbled value rather than raising: a timestamp someone else wrote is input, not a promise.
"""

from __future__ import annotations

import datetime as dt


def rfc3339(ts: float) -> str:
    """``2026-11-24T12:00:00Z`` (the form Kubernetes writes timestamps in)."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(ts: float) -> str:
    """``MicroTime`` form (Lease ``renewTime``/``acquireTime``)."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str | None) -> float | None:
    """Unix seconds from an RFC 3339 timestamp (``Z`` or an offset); None if absent/garbled."""
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
