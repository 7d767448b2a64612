"""Drive the server with Triton's client library, ``tritonclient.http`` and ``tritonclient.grpc``.
Run as a script: JSON plan on stdin, report on stdout (see README.md beside this file)."""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
import tritonclient.grpc as tgrpc
import tritonclient.http as thttp
from tritonclient.utils import InferenceServerException, triton_to_np_dtype


def one(plan: dict[str, Any], r: dict[str, Any], http: thttp.InferenceServerClient,
        rpc: tgrpc.InferenceServerClient) -> dict[str, Any]:
    arr = np.array(r["data"], dtype=triton_to_np_dtype(r["datatype"]))
    mod = thttp if r["transport"] == "rest" else tgrpc
    inp = mod.InferInput("input-0", list(arr.shape), r["datatype"])
    if r["transport"] == "rest":
        inp.set_data_from_numpy(arr, binary_data=r.get("binary_input", True))
    else:
        inp.set_data_from_numpy(arr)
    outputs = None
    if r.get("outputs") is not None:
        if r["transport"] == "rest":
            binary = r.get("binary_outputs")
            outputs = [thttp.InferRequestedOutput(n, binary_data=True if binary is None else binary)
                       for n in r["outputs"]]
        else:
            outputs = [tgrpc.InferRequestedOutput(n) for n in r["outputs"]]
    try:
        if r["transport"] == "rest":
            res = http.infer(plan["model"], [inp], outputs=outputs, request_id=r["id"],
                             request_compression_algorithm=r.get("compression"))
        else:
            res = rpc.infer(plan["model"], [inp], outputs=outputs, request_id=r["id"])
    except InferenceServerException as exc:
        return {"error": {"status": exc.status(), "message": exc.message()}}
    response = res.get_response(as_json=True) if r["transport"] == "grpc" else res.get_response()
    outs = {}
    for o in response["outputs"]:
        a = res.as_numpy(o["name"])
        binary = r["transport"] == "grpc" or "binary_data_size" in o.get("parameters", {})
        outs[o["name"]] = {"datatype": o["datatype"], "shape": [int(d) for d in o["shape"]],
                           "data": a.reshape(-1).tolist(), "binary": binary}
    return {"outputs": outs, "id": response.get("id")}


def main() -> None:
    plan = json.load(sys.stdin)
    http = thttp.InferenceServerClient(url=plan["rest"].removeprefix("http://"), network_timeout=30)
    rpc = tgrpc.InferenceServerClient(url=plan["grpc"])
    try:
        meta = rpc.get_model_metadata(plan["model"], as_json=True)
        checks = {
            "rest_live": http.is_server_live(),
            "rest_ready": http.is_server_ready(),
            "rest_model_ready": http.is_model_ready(plan["model"]),
            "rest_metadata_inputs": http.get_model_metadata(plan["model"])["inputs"],
            "grpc_live": rpc.is_server_live(),
            "grpc_ready": rpc.is_server_ready(),
            "grpc_model_ready": rpc.is_model_ready(plan["model"]),
            "grpc_metadata_outputs": [o["name"] for o in meta["outputs"]],
            "grpc_server_extensions": rpc.get_server_metadata(as_json=True).get("extensions", []),
        }
        results = {r["id"]: one(plan, r, http, rpc) for r in plan["requests"]}
    finally:
        http.close()
        rpc.close()
    json.dump({"checks": checks, "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
