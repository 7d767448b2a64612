"""``python -m daemon …``: the ``kserve-warden`` CLI (see :mod:`daemon.process.cli`).

Guarded so that importing this module (a docs build, a test walking every module) does not
parse ``sys.argv`` and exit.
"""

from __future__ import annotations

import sys

from daemon.process.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
