"""Drive the server with KServe's Python SDK: ``InferenceRESTClient`` (V2, binary tensors, the
SDK's default) and ``InferenceGRPCClient``. Run as a script: JSON plan on stdin, report on stdout
(see README.md beside this file)."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import grpc
import httpx
import numpy as np
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput
from kserve.utils.numpy_codec import to_np_dtype


def build(plan: dict[str, Any], r: dict[str, Any]) -> InferRequest:
    arr = np.array(r["data"], dtype=to_np_dtype(r["datatype"]))
    inp = InferInput(name="input-0", shape=list(arr.shape), datatype=r["datatype"])
    inp.set_data_from_numpy(arr, binary_data=r.get("binary_input", True))
    outputs = None
    if r.get("outputs") is not None:
        outputs = [RequestedOutput(name=n, parameters=None if r.get("binary_outputs") is None
                                   else {"binary_data": r["binary_outputs"]}) for n in r["outputs"]]
    params = {"binary_data_output": True} if r.get("binary_data_output") else None
    return InferRequest(model_name=plan["model"], infer_inputs=[inp], request_id=r["id"],
                        request_outputs=outputs, parameters=params)


def report(resp: Any, binary: bool) -> dict[str, Any]:
    outs = {}
    for o in resp.outputs:
        a = o.as_numpy()
        outs[o.name] = {"datatype": o.datatype, "shape": list(o.shape), "data": a.reshape(-1).tolist(),
                        "binary": binary}
    return {"outputs": outs, "id": resp.id}


async def one(plan: dict[str, Any], r: dict[str, Any], rest: InferenceRESTClient,
              rpc: InferenceGRPCClient) -> dict[str, Any]:
    req = build(plan, r)
    try:
        if r["transport"] == "rest":
            headers: dict[str, str] = {}
            resp = await rest.infer(plan["rest"], req, model_name=plan["model"], response_headers=headers)
            return report(resp, "inference-header-content-length" in {k.lower() for k in headers})
        resp = await rpc.infer(req)
        return report(resp, True)
    except httpx.HTTPStatusError as exc:
        return {"error": {"status": exc.response.status_code, "message": str(exc)}}
    except grpc.aio.AioRpcError as exc:
        return {"error": {"status": exc.code().name, "message": exc.details()}}


async def main() -> None:
    plan = json.load(sys.stdin)
    rest = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
    rpc = InferenceGRPCClient(plan["grpc"], timeout=30, retries=0)
    try:
        checks = {
            "rest_live": await rest.is_server_live(plan["rest"]),
            "rest_ready": await rest.is_server_ready(plan["rest"]),
            "rest_model_ready": await rest.is_model_ready(plan["rest"], plan["model"]),
            "grpc_live": await rpc.is_server_live(),
            "grpc_ready": await rpc.is_server_ready(),
            "grpc_model_ready": await rpc.is_model_ready(plan["model"]),
        }
        results = {r["id"]: await one(plan, r, rest, rpc) for r in plan["requests"]}
    finally:
        await rest.close()
        await rpc.close()
    json.dump({"checks": checks, "results": results}, sys.stdout)


if __name__ == "__main__":
    asyncio.run(main())
