"""A container's log as the probes may show it: the tail, with credentials masked.

:func:`tail` bounds the log in lines and bytes (a crash-looping server can log megabytes);
:func:`scrub` runs the caller's redactor (which knows the secret values) and then masks the
values of obvious credential assignments, as defence in depth for secrets nobody registered.
Pure; the unit tests call both directly.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# Defence in depth behind the caller's ``redact``: values of obvious credential assignments
# are masked even when the caller did not know the secret. Key names are kept: they are what
# the operator needs to see. Three shapes, deliberately narrow so prose such as "failed to
# fetch anonymous token: 401 Unauthorized" (the seed's image-pull evidence) stays intact:
# ``KEY=value`` (env dumps, CLI flags), ``"KEY": "value"`` (JSON), ``Authorization: ...``.
_KEYS = (r"(?:aws_secret_access_key|aws_access_key_id|aws_session_token|secret_?key|access_?key"
         r"|accesskey|secretkey|password|passwd|token|api_?key)")
# A quoted value is taken whole (it may hold spaces), an unquoted one up to a separator.
_VALUE = r"(?P<value>\"[^\"]*\"|'[^']*'|[^\s\"',;}]+)"
_SECRET_PATTERNS = (
    re.compile(rf"(?i)(?P<key>\b\w*?{_KEYS}\s*=\s*){_VALUE}"),
    re.compile(rf"(?i)(?P<key>[\"']{_KEYS}[\"']\s*:\s*){_VALUE}"),
    re.compile(rf"(?i)(?P<key>\b(?:proxy-)?authorization\s*:\s*)(?:(?:bearer|basic)\s+)?{_VALUE}"),
)
REDACTED = "<redacted>"


def scrub(text: str, redact: Callable[[str], str] | None) -> str:
    """Redact known secrets (caller's function) and obvious credential assignments."""
    if redact is not None:
        text = redact(text)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(_mask, text)
    return text


def _mask(m: re.Match[str]) -> str:
    value = m.group("value")
    quote = value[0] if value[0] in "\"'" else ""
    return f"{m.group('key')}{quote}{REDACTED}{quote}"


def tail(text: str, *, lines: int, max_bytes: int) -> list[str]:
    """The last ``lines`` lines of ``text``, at most ``max_bytes`` bytes of it (UTF-8)."""
    data = text.encode("utf-8", "replace")
    if len(data) > max_bytes:
        # Cut at the byte budget, then drop the partial first line it leaves (unless the cut
        # fell right after a newline); a single over-long line keeps its end.
        partial = data[-max_bytes - 1] != ord("\n")
        text = data[-max_bytes:].decode("utf-8", "ignore")
        if partial and "\n" in text:
            text = text.split("\n", 1)[1]
    else:
        text = data.decode("utf-8", "replace")
    out = text.splitlines()
    return out[-lines:] if lines > 0 else []
