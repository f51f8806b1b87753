"""Prometheus metrics of the server, named by Prometheus conventions."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ServerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("nndl_server_requests_total",
                                "gRPC requests handled, by method and status code.",
                                ["method", "code"], registry=r)
        self.latency = Histogram(
            "nndl_server_request_duration_seconds", "Time to answer a gRPC request.",
            ["method"], registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                     10))
        self.in_flight = Gauge("nndl_server_in_flight_requests",
                               "Requests being handled now.", registry=r)
        self.batch_size = Histogram(
            "nndl_server_batch_size_images", "Images in one forward pass.", registry=r,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096, 16384, 65536))
        self.images = Counter("nndl_server_images_classified_total",
                              "Images classified, by model, version and predicted digit.",
                              ["model", "version", "digit"], registry=r)
        self.confidence = Histogram(
            "nndl_server_prediction_confidence_ratio",
            "Probability of the predicted digit.", registry=r,
            buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0))
        self.model_loads = Counter("nndl_server_model_loads_total",
                                   "Model versions loaded, by result (success or failure).",
                                   ["model", "result"], registry=r)
        self.model_info = Gauge("nndl_server_model_version_info",
                                "1 for each model version loaded in memory.",
                                ["model", "version"], registry=r)

    def model_loaded(self, name: str, version: int, ok: bool) -> None:
        self.model_loads.labels(name, "success" if ok else "failure").inc()
        if ok:
            self.model_info.labels(name, str(version)).set(1)

    def predictions(self, name: str, version: int, probs) -> None:
        digits = probs.argmax(axis=1)
        counts = [int(c) for c in (digits[:, None] == range(10)).sum(axis=0)]
        for digit, count in enumerate(counts):
            if count:
                self.images.labels(name, str(version), str(digit)).inc(count)
        for p in probs.max(axis=1)[:256]:  # a sample is enough for the distribution
            self.confidence.observe(float(p))
