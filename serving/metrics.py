"""Prometheus metrics of one server instance, in its own registry (no globals: the sandbox and
the tests run several apps in one process).

Names follow Prometheus conventions (base units, ``_total`` counters). ``endpoint`` is the
route's name (``v1_predict``, ``v2_infer``, ...), never the raw path, so unknown URLs cannot
blow up the label set. Label children are cached: ``labels()`` costs a dict lookup and a lock,
which matters at 10k requests per second.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class ServingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter("serving_requests", "HTTP requests served, by endpoint and status.",
                                ["endpoint", "status"], registry=registry)
        self.latency = Histogram("serving_request_duration_seconds",
                                 "HTTP request latency in the server, by endpoint and status.",
                                 ["endpoint", "status"], buckets=LATENCY_BUCKETS, registry=registry)
        self.model_load = Gauge("serving_model_load_duration_seconds", "Seconds the last model load took.",
                                registry=registry)
        self.model_ready = Gauge("serving_model_ready", "1 when a real model is loaded and serving.",
                                 registry=registry)
        self.model_info = Info("serving_model", "The model being served.", registry=registry)
        self.batch_rows = Histogram("serving_batch_rows", "Rows per model call (after micro-batching).",
                                    buckets=BATCH_BUCKETS, registry=registry)
        self.batch_requests = Histogram("serving_batch_requests", "Requests coalesced into one model call.",
                                        buckets=BATCH_BUCKETS, registry=registry)
        # Connection limits (serving.limits): the gauge is read from the guard at scrape time.
        self.connections = Gauge("serving_http_connections", "Open HTTP connections.", registry=registry)
        self.connections_dropped = Counter(
            "serving_http_connections_dropped",
            "Connections the server closed to protect itself: header-timeout (request header not in "
            "time), body-too-slow (body below --body-min-rate), evicted (oldest unfinished header) or "
            "evicted-slow-body (slowest body), to admit a connection at the cap, refused (503 at the "
            "cap).", ["reason"], registry=registry)
        self.inflight_body_bytes = Gauge("serving_inflight_body_bytes",
                                         "Bytes of large request bodies in flight (the body budget in use).",
                                         registry=registry)
        self.body_budget_waiting = Gauge("serving_body_budget_waiting_requests",
                                         "Requests with a large body waiting for the body budget.",
                                         registry=registry)
        self._children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        key = (endpoint, status)
        pair = self._children.get(key)
        if pair is None:
            s = str(status)
            pair = (self.requests.labels(endpoint, s), self.latency.labels(endpoint, s))
            self._children[key] = pair
        pair[0].inc()
        pair[1].observe(seconds)
