#!/usr/bin/env bash
# Runs the whole test suite with the tools from scripts/system-deps.sh on PATH.
# pytest's "no tests collected" (exit 5) is a failure here, as it is in CI.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.cache/tools/bin:/usr/sbin:$PATH"
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" = 5 ]; then echo "no tests ran" >&2; exit 1; fi
exit "$rc"
