"""Prometheus metrics of the trainer daemon."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class TrainerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.jobs = Counter("nndl_trainer_jobs_total",
                            "Jobs this worker finished or handed back, by final state.",
                            ["state"], registry=r)
        self.epoch_seconds = Histogram(
            "nndl_trainer_epoch_duration_seconds", "Wall time of one training epoch.",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800), registry=r)
        self.validation_accuracy = Gauge(
            "nndl_trainer_validation_accuracy_ratio",
            "Validation accuracy (0..1) after the last epoch of the job being trained.",
            ["model"], registry=r)
        self.queue_waiting = Gauge("nndl_trainer_queue_waiting_jobs",
                                   "Jobs in the queue that no worker has taken yet.", registry=r)
        self.queue_pending = Gauge("nndl_trainer_queue_pending_jobs",
                                   "Jobs taken by a worker and not yet acknowledged.", registry=r)
        self.running = Gauge("nndl_trainer_running_jobs", "Jobs this worker is training now.",
                             registry=r)
