"""Wrapping ``check``'s text for a terminal without breaking a command or a name.

The findings' evidence, explanations and remedies are prose with commands in it
(``... from the desired state: kubectl apply --server-side --field-manager=kserve-warden -f
config/desired/ (done automatically)``). :mod:`textwrap` with its defaults breaks at hyphens
and inside long words, so a reader copied ``--server-`` and ``side``, or ``harbor-`` and
``credentials``, from two lines. Here:

* words break only at spaces, never at a hyphen or inside a long word (a name longer than the
  line overflows it, whole);
* a command is one unbreakable unit from its program name (:data:`PROGRAMS`) to where the
  prose resumes: ``;``, a comma or ``(`` after a space-separated word, a ``)`` that closes a
  parenthesis opened before the command, a sentence's full stop, `` and ``/`` or ``/`` then ``,
  or the end. Quotes keep everything inside them (``-p '{"a": 1}'``). A command that does not
  fit on the current line starts the next one, and one longer than the line stands alone on
  its own line, unwrapped, so it can be copied as it is.

Pure: text in, lines out.
"""

from __future__ import annotations

import re
import textwrap

PROGRAMS = ("kubectl", "istioctl", "python", "helm", "mc", "aws", "gsutil", "curl")
"""Words that start a command when they follow a space, ``(`` or a backquote (or start the text)."""

_START = re.compile(r"(?<![^\s(`])(?:" + "|".join(map(re.escape, PROGRAMS)) + r")\s")
_PROSE_WORDS = re.compile(r"\s(?:and|or|then)\s")
_GLUE = "\ue000"
"""Stands for a space inside a command while the text is wrapped (a private-use character)."""


def command_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of every command in ``text`` (see the module docstring)."""
    spans: list[tuple[int, int]] = []
    pos = 0
    while (m := _START.search(text, pos)) is not None:
        start = m.start()
        end = start + len(text[start:_command_end(text, start)].rstrip())
        spans.append((start, end))
        pos = max(end, start + 1)
    return spans


def _command_end(text: str, start: int) -> int:
    depth = 0
    quote = ""
    i = start
    n = len(text)
    while i < n:
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == ";":
            return i
        elif ch == "(":
            if text[i - 1].isspace():
                return i - 1  # " (": a parenthesis of the prose
            depth += 1
        elif ch == ")":
            if depth == 0:
                return i
            depth -= 1
        elif _prose_resumes(text, i):
            return i
        i += 1
    return n


def _prose_resumes(text: str, i: int) -> bool:
    """A comma and a space, a full stop ending a sentence, or `` and ``/`` or ``/`` then `` at ``i``."""
    ch = text[i]
    after_space = i + 1 == len(text) or text[i + 1].isspace()
    if ch == ",":
        return i + 1 < len(text) and text[i + 1].isspace()
    if ch == ".":
        return after_space and text[i - 1].isalnum()
    return ch.isspace() and _PROSE_WORDS.match(text, i) is not None


def _glued(text: str) -> str:
    out = []
    last = 0
    for start, end in command_spans(text):
        out.append(text[last:start])
        out.append(text[start:end].replace(" ", _GLUE))
        last = end
    out.append(text[last:])
    return "".join(out)


def wrap(text: str, *, width: int, indent: str = "", subsequent_indent: str | None = None) -> list[str]:
    """``text`` as lines of at most ``width`` characters where possible (a command or name
    longer than a line overflows it, whole); ``[]`` for blank text."""
    # A text that holds the private-use character itself is wrapped as plain words.
    glued = text if _GLUE in text else _glued(text)
    wrapper = textwrap.TextWrapper(
        width=width, initial_indent=indent,
        subsequent_indent=indent if subsequent_indent is None else subsequent_indent,
        break_on_hyphens=False, break_long_words=False)
    return [line.replace(_GLUE, " ") for line in wrapper.wrap(glued)]
