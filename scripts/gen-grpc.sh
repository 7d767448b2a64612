#!/usr/bin/env bash
# Regenerates serving/grpc_gen/grpc_predict_v2_pb2{.py,.pyi,_grpc.py} from grpc_predict_v2.proto.
#
#   bash scripts/gen-grpc.sh            # write the generated files (commit them)
#   bash scripts/gen-grpc.sh --check    # exit 1 if the committed files differ from a fresh run
#
# The generated code is committed, so neither the image nor `pip install` needs grpcio-tools.
# The version is pinned: protoc's output (and the protobuf/grpcio floors the generated code
# checks at import, see pyproject.toml) depends on it. 1.81.1 is the newest grpcio-tools that
# generates for protobuf 6, which KServe's and Triton's clients require (protobuf<7).
# grpcio-tools comes with the `test` extra (kserve depends on it); if the venv's version
# differs, the script makes a venv of its own under .cache/.
set -euo pipefail
cd "$(dirname "$0")/.."
GRPC_TOOLS_VERSION=1.81.1
PY="${PYTHON:-.venv/bin/python}"
have="$("$PY" -c 'import importlib.metadata as m; print(m.version("grpcio-tools"))' 2>/dev/null || true)"
if [[ "$have" != "$GRPC_TOOLS_VERSION" ]]; then
  venv=.cache/grpc-tools-$GRPC_TOOLS_VERSION
  if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet "grpcio-tools==$GRPC_TOOLS_VERSION"
  fi
  PY="$venv/bin/python"
fi
PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"  # absolute, symlink kept (a venv's python)
out=serving/grpc_gen
if [[ "${1:-}" == "--check" ]]; then
  tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/$out"; cp "$out/grpc_predict_v2.proto" "$tmp/$out/"
  (cd "$tmp" && "$PY" -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. \
      "$out/grpc_predict_v2.proto")
  for f in grpc_predict_v2_pb2.py grpc_predict_v2_pb2.pyi grpc_predict_v2_pb2_grpc.py; do
    cmp -s "$tmp/$out/$f" "$out/$f" || { echo "$out/$f is stale: run scripts/gen-grpc.sh" >&2; exit 1; }
  done
  echo "serving/grpc_gen is up to date (grpcio-tools $GRPC_TOOLS_VERSION)"
  exit 0
fi
# -I . keeps the package path in the generated imports (from serving.grpc_gen import ...).
"$PY" -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. "$out/grpc_predict_v2.proto"
echo "generated $out/grpc_predict_v2_pb2{.py,.pyi,_grpc.py} with grpcio-tools $GRPC_TOOLS_VERSION"
