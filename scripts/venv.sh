#!/usr/bin/env bash
# Creates the project's virtualenv ($1, default .venv) with $PYTHON (default python3).
# On Debian/Ubuntu the venv module lives in a separate package (python3-venv): install it
# with apt when it is missing, rather than failing with ensurepip's terse message.
set -euo pipefail
VENV="${1:-.venv}"
PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "kserve-warden needs Python >= 3.11")'
if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
  rm -rf "$VENV"
  SUDO=""; if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  ver="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "python${ver}-venv" >/dev/null \
    || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
  "$PYTHON" -m venv "$VENV"
fi
