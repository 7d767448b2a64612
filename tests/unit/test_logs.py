"""Log lines are JSON with the fixed keys, and registered secret values never get through."""

from __future__ import annotations

import io
import json
import subprocess
import sys

from daemon.core import logs
from daemon.process import logging_setup


def test_json_lines_have_fixed_keys_and_context() -> None:
    out = io.StringIO()
    logging_setup.configure(fmt="json", stream=out)
    logs.get_logger("warden.test").info("applied", namespace="user-example-com", name="iris-sa")
    line = json.loads(out.getvalue().strip())
    assert {"timestamp", "level", "event", "logger", "namespace", "name"} <= line.keys()
    assert line["level"] == "info" and line["logger"] == "warden.test"


def test_redactor_scrubs_nested_values() -> None:
    out = io.StringIO()
    red = logs.Redactor()
    red.add("KQgORRVCRvRZa6pTsd6CtFmyTn7SONi1f66A0Ch/kg")
    logging_setup.configure(fmt="json", stream=out, redactor=red)
    logs.get_logger("t").warning("x KQgORRVCRvRZa6pTsd6CtFmyTn7SONi1f66A0Ch/kg",
                                 extra={"k": ["KQgORRVCRvRZa6pTsd6CtFmyTn7SONi1f66A0Ch/kg"]})
    text = out.getvalue()
    assert "KQgORRVC" not in text
    assert text.count(logs.REDACTED) == 2


def test_console_format_renders_text() -> None:
    out = io.StringIO()
    logging_setup.configure(fmt="console", stream=out)
    logs.get_logger("t").info("hello", name="iris")
    assert "hello" in out.getvalue() and "name" in out.getvalue()
    assert not out.getvalue().startswith("{")


LIBRARY_LOG = """
import io, logging
from daemon.core import logs
from daemon.process import logging_setup
out = io.StringIO()
red = logs.Redactor()
red.add("KQgORRVCRvRZa6pTsd6CtFmyTn7SONi1f66A0Ch/kg")
logging_setup.configure(fmt="json", stream=out, redactor=red)
logging.getLogger("botocore.hooks").warning("retrying with %s", "KQgORRVCRvRZa6pTsd6CtFmyTn7SONi1f66A0Ch/kg")
try:
    raise ValueError("bad key KQgORRVCRvRZa6pTsd6CtFmyTn7SONi1f66A0Ch/kg")
except ValueError:
    logging.getLogger("aiohttp.client").exception("failed")
logging.getLogger("kubernetes_asyncio").info("quiet below WARNING")
print(out.getvalue(), end="")
"""


def test_library_logs_through_stdlib_are_redacted_too() -> None:
    # A fresh interpreter: pytest's own handlers on the root logger would make basicConfig a no-op.
    out = subprocess.run([sys.executable, "-c", LIBRARY_LOG], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    assert "KQgORRVC" not in out
    assert "WARNING botocore.hooks retrying with <redacted>" in out
    assert "ERROR aiohttp.client failed" in out and "ValueError: bad key <redacted>" in out
    assert "quiet below WARNING" not in out
