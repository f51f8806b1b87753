"""Prometheus metrics of the trainer daemon, one registry per worker process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

JOB_OUTCOMES = ("succeeded", "failed", "cancelled", "handed_back", "lost")


class TrainerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.jobs = Counter(
            "nndl_trainer_jobs_total",
            "Jobs this worker stopped working on, by outcome: the final states, handed_back "
            "(given back on SIGTERM) and lost (taken over by another worker).",
            ["state"], registry=r)
        for outcome in JOB_OUTCOMES:  # every series exists from the start, at zero
            self.jobs.labels(outcome)
        self.running = Gauge("nndl_trainer_running_jobs", "Jobs this worker is training now.",
                             registry=r)
        self.epoch_seconds = Histogram(
            "nndl_trainer_epoch_duration_seconds", "Wall time of one training epoch.",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800), registry=r)
        self.validation_accuracy = Gauge(
            "nndl_trainer_validation_accuracy_ratio",
            "Validation accuracy (0..1) after the last epoch this worker trained, by model.",
            ["model"], registry=r)
        self.queue_waiting = Gauge(
            "nndl_trainer_queue_waiting_jobs",
            "Jobs in the queue that no worker holds (queue depth), as last seen.", registry=r)
        self.queue_pending = Gauge(
            "nndl_trainer_queue_pending_jobs",
            "Jobs held by some worker and not yet acknowledged, as last seen.", registry=r)
        self.redis_errors = Counter(
            "nndl_trainer_redis_errors_total",
            "Redis calls that failed (each was retried with backoff).", registry=r)


def serve_metrics(port: int, registry: CollectorRegistry) -> None:
    """Starts the /metrics endpoint; OSError naming the port when it cannot listen."""
    try:
        start_http_server(port, registry=registry)
    except OSError as e:
        raise OSError(f"cannot serve metrics on port {port}: {e.strerror or e}; is another "
                      "process using it? (--metrics-port; 0 turns the endpoint off)") from e
