"""``python -m serving --model_dir DIR --model_name NAME --http_port PORT`` (see serving.cli)."""

from __future__ import annotations

import sys

from serving.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
