"""The committed gRPC code is what scripts/gen-grpc.sh makes from our .proto, and serves all of it."""

from __future__ import annotations

import os
import subprocess
import sys

from serving.grpc_gen import grpc_predict_v2_pb2 as pb
from serving.grpc_server import SERVICE, InferenceService
from tests.conftest import ROOT


def test_generated_code_matches_the_proto() -> None:
    # grpcio-tools comes with the test extra (kserve depends on it); the script pins its version.
    res = subprocess.run(["bash", "scripts/gen-grpc.sh", "--check"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, check=False, env={**os.environ, "PYTHON": sys.executable})
    assert res.returncode == 0, res.stdout + res.stderr
    assert "up to date" in res.stdout


def test_every_method_of_the_proto_is_served() -> None:
    service = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert f"{pb.DESCRIPTOR.package}.{service.name}" == SERVICE == "inference.GRPCInferenceService"
    methods = {m.name for m in service.methods}
    assert methods == {"ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata",
                       "ModelInfer"}
    assert all(callable(getattr(InferenceService, m, None)) for m in methods)
