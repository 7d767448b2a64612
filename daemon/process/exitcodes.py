"""The exit codes of ``kserve-warden``, owned here so every command module can use them.

``check``: 0 healthy, 1 findings, 2 bad input (settings, desired state, kubeconfig); ``run``
uses 0 and 2 the same way; ``demo`` and ``sandbox`` exit 2 when the ``sandbox`` extra is missing.
"""

from __future__ import annotations

from typing import Final

EXIT_OK: Final = 0
EXIT_FINDINGS: Final = 1
EXIT_BAD_INPUT: Final = 2
