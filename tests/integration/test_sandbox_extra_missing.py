"""``kserve-warden sandbox`` / ``demo`` without the ``sandbox`` extra: one line on stderr, exit 2.

Each run is a fresh interpreter in which the extra's modules (moto, dnslib) cannot be found: a
finder first on ``sys.meta_path`` answers for them as an interpreter without them installed would
(``ModuleNotFoundError`` naming the module). Nothing of ours is patched.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINE = "the sandbox needs the 'sandbox' extra: pip install 'kserve-warden[sandbox]'\n"

WITHOUT = """
import sys

class Uninstalled:
    def __init__(self, *names):
        self.names = set(names)

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Uninstalled({missing!r}))
from daemon.process.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _run(missing: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", WITHOUT.format(missing=missing), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("missing", ["dnslib", "moto"])
@pytest.mark.parametrize("command", [["sandbox"], ["demo", "--json"]])
def test_without_the_extra_one_line_and_exit_2(command: list[str], missing: str) -> None:
    out = _run(missing, *command)
    assert out.returncode == 2, out.stderr
    assert out.stderr == LINE
    assert out.stdout == ""


def test_another_missing_module_is_not_blamed_on_the_extra() -> None:
    # A missing module that is not the extra's is a real bug: its traceback stays.
    out = _run("aiohttp", "demo")
    assert out.returncode == 1
    assert "No module named 'aiohttp'" in out.stderr
    assert "sandbox' extra" not in out.stderr
