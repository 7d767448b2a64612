#!/usr/bin/env bash
# bench/serving/footprint.sh — installed size of the model server's dependencies with the
# CUDA build of XGBoost (`xgboost`) versus the CPU-only build (`xgboost-cpu`, same module), and
# what the gRPC endpoint adds (grpcio + protobuf). SETS='serving serving+grpc' and
# VARIANTS='xgboost-cpu==3.2.0' run a subset.
# Creates throw-away venvs under $FOOTPRINT_DIR (default /tmp/serving-footprint), cold pip cache.
set -euo pipefail
DIR="${FOOTPRINT_DIR:-/tmp/serving-footprint}"
PYTHON="${PYTHON:-python3.11}"
XGB_VERSION="${XGB_VERSION:-3.2.0}"
SERVING_DEPS=(aiohttp structlog prometheus-client scikit-learn numpy)
GRPC_DEPS=(grpcio protobuf)  # the gRPC endpoint's runtime (issue 14); grpcio-tools is not needed
mkdir -p "$DIR"
printf 'venv\tseconds\tMB\tpackages\tspec\n'
for variant in ${VARIANTS:-"xgboost==$XGB_VERSION" "xgboost-cpu==$XGB_VERSION"}; do
  for set in ${SETS:-bare serving serving+grpc}; do
    [[ $set == serving+grpc && $variant != xgboost-cpu* ]] && continue
    name="${variant%%==*}-$set"; v="$DIR/$name"; rm -rf "$v"
    spec=("$variant"); [[ $set == serving* ]] && spec+=("${SERVING_DEPS[@]}")
    [[ $set == serving+grpc ]] && spec+=("${GRPC_DEPS[@]}")
    t0=$SECONDS
    "$PYTHON" -m venv "$v"
    PIP_CACHE_DIR="$DIR/pip-$name" "$v/bin/pip" install -q "${spec[@]}" >"$DIR/$name.log" 2>&1
    mb=$(du -sm "$v" | cut -f1); n=$("$v/bin/pip" list 2>/dev/null | tail -n +3 | wc -l)
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$((SECONDS - t0))" "$mb" "$n" "${spec[*]}"
  done
done
