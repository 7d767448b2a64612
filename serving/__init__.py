"""The model server the seed's ``serve.py`` should have been.

KServe V1 and Open Inference Protocol V2 over HTTP (:mod:`serving.v1`, :mod:`serving.v2`),
models loaded by content with a loud error and no dummy fallback (:mod:`serving.loader`),
bit-identical fast predictions (:mod:`serving.trees`), adaptive micro-batching
(:mod:`serving.batcher`), Prometheus metrics (:mod:`serving.metrics`), and the iris trainer
(``python -m serving.train``). Imports nothing from ``daemon``, ``probes`` or ``sandbox``.
"""
