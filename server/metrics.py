"""Prometheus metrics of the server, named by Prometheus conventions.

The names are an interface: dashboards and alerts read them. Every name is in
`ServerMetrics.__init__`; `nndl_server_` is the namespace, counters end in `_total`,
durations are in seconds.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
CONFIDENCE_SAMPLE = 256  # confidences observed per forward pass: enough for the distribution


class ServerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "nndl_server_requests_total", "gRPC requests handled, by method and status code.",
            ["method", "code"], registry=r)
        self.latency = Histogram(
            "nndl_server_request_duration_seconds", "Time to answer a gRPC request, by method.",
            ["method"], registry=r, buckets=LATENCY_BUCKETS)
        self.in_flight = Gauge(
            "nndl_server_in_flight_requests", "gRPC requests being handled now.", registry=r)
        self.batch_size = Histogram(
            "nndl_server_batch_size_images", "Images in one forward pass.", registry=r,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096, 16384, 65536))
        self.forward_latency = Histogram(
            "nndl_server_forward_pass_duration_seconds", "Time of one forward pass.",
            registry=r, buckets=LATENCY_BUCKETS)
        self.queued = Gauge(
            "nndl_server_batch_queue_images",
            "Single images waiting for the batcher's next forward pass.", registry=r)
        self.images = Counter(
            "nndl_server_images_classified_total",
            "Images classified, by model, version and predicted digit.",
            ["model", "version", "digit"], registry=r)
        self.confidence = Histogram(
            "nndl_server_prediction_confidence_ratio",
            "Probability of the predicted digit (sampled per forward pass).", registry=r,
            buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0))
        self.model_loads = Counter(
            "nndl_server_model_loads_total",
            "Model versions loaded, by model and result (success or failure).",
            ["model", "result"], registry=r)
        self.model_info = Gauge(
            "nndl_server_model_version_info", "1 for each model version held in memory.",
            ["model", "version"], registry=r)

    def model_loaded(self, name: str, version: int, ok: bool) -> None:
        self.model_loads.labels(name, "success" if ok else "failure").inc()
        if ok:
            self.model_info.labels(name, str(version)).set(1)

    def model_unloaded(self, name: str, version: int) -> None:
        self.model_info.remove(name, str(version))

    def watch_queue(self, depth: Callable[[], int]) -> None:
        self.queued.set_function(depth)

    def forward_pass(self, name: str, version: int, probs: np.ndarray, seconds: float) -> None:
        """Counts one forward pass of (N, 10) probabilities."""
        self.batch_size.observe(probs.shape[0])
        self.forward_latency.observe(seconds)
        counts = np.bincount(probs.argmax(axis=1), minlength=10).tolist()
        for digit, count in enumerate(counts):
            if count:
                self.images.labels(name, str(version), str(digit)).inc(count)
        for p in probs[:CONFIDENCE_SAMPLE].max(axis=1).tolist():
            self.confidence.observe(p)
