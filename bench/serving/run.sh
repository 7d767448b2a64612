#!/usr/bin/env bash
# bench/serving/run.sh — measure `python -m serving` against KServe, MLServer, FastAPI and a bare
# aiohttp floor with the shared peer benchmark (../shared/bench/bench_peers.sh, outside this repo).
# For measurements only: nothing in this project needs ../shared to build or test.
#
#   bench/serving/run.sh                                  # full run (3 reps x 10 s), as in bench/README.md
#   DURATION=5 REPS=1 bench/serving/run.sh                # quick look
#   SERVING_ARGS='--workers 2' bench/serving/run.sh       # extra flags for our server
#
# Env: SERVEBENCH_HOME (default ../shared/bench next to this checkout), SERVEBENCH_CACHE
# (default /tmp/servebench-cache: peer venvs persist between runs), PEERS, DURATION, REPS,
# PHASES — see the header of bench_peers.sh. The table lands in $RESULTS_DIR/table.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BENCH="${SERVEBENCH_HOME:-$ROOT/../shared/bench}"
if [[ ! -x "$BENCH/bench_peers.sh" ]]; then
  echo "bench/serving/run.sh: $BENCH/bench_peers.sh not found (set SERVEBENCH_HOME); nothing to measure" >&2
  exit 2
fi
PY="${SERVING_PYTHON:-$ROOT/.venv/bin/python}"
"$PY" -c 'import serving' || { echo "run 'make setup' first: $PY cannot import serving" >&2; exit 2; }
export CANDIDATE_CMD="exec $PY -m serving --model_dir \"\$MODEL_DIR\" --model_name \"\$NAME\" --http_port \"\$PORT\" ${SERVING_ARGS:-}"
export CANDIDATE_CWD="$ROOT"
export CANDIDATE_LABEL="${CANDIDATE_LABEL:-kserve-warden}"
export CANDIDATE_WORKERS="${CANDIDATE_WORKERS:-python -m serving ${SERVING_ARGS:-(1 process)}: micro-batching + numpy tree walker}"
export SERVEBENCH_CACHE="${SERVEBENCH_CACHE:-/tmp/servebench-cache}"
export PEERS="${PEERS:-aiohttp kserve mlserver fastapi candidate}"
exec "$BENCH/bench_peers.sh" "$@"
