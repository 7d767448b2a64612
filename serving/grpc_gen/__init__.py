"""Generated code for the Open Inference Protocol's gRPC service (package ``inference``).

``grpc_predict_v2.proto`` is ours, written from the OIP specification; the ``*_pb2*`` modules
beside it are generated from it by ``scripts/gen-grpc.sh`` (grpcio-tools 1.81.1) and committed,
so installing the server needs only grpcio and protobuf. Do not edit them by hand: edit the
``.proto`` and re-run the script (``scripts/gen-grpc.sh --check`` and a test verify they match).

The messages register as ``inference.*`` in protobuf's default descriptor pool, like KServe's
and Triton's own generated modules: one process cannot import two of these (protobuf refuses a
duplicate symbol), which is why the tests run those clients in processes of their own.
"""
