"""The trainer worker: takes jobs from the queue, trains them, publishes the result.

One loop, one job at a time. Between epochs it reports progress, saves a checkpoint,
and looks for cancellation or a request to stop (SIGTERM), so each reaches a
running job within one epoch. A heartbeat thread keeps the claim on the job fresh
even during long epochs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis

from nndl.trainer import checkpoint as ckpt
from nndl.trainer.data import Mnist
from nndl.trainer.errors import NndlError
from nndl.trainer.jobs import JobRecord, JobState
from nndl.trainer.metrics import TrainerMetrics
from nndl.trainer.nn.backend import to_numpy
from nndl.trainer.nn.sgd import EpochReport
from nndl.trainer.queue import Claim, JobQueue
from nndl.trainer.registry import Registry
from nndl.trainer.spec import JobSpec
from nndl.trainer.training import run_training

log = logging.getLogger(__name__)
CODE_VERSION = "0.1.0"


class JobCancelled(Exception):
    """Raised between epochs when the job's cancellation was asked for."""


class HandBack(Exception):
    """Raised between epochs when the worker was asked to stop: the job goes back."""


class _Heartbeat(threading.Thread):
    """Refreshes the claim every `interval` seconds until stopped."""

    def __init__(self, queue: JobQueue, claim: Claim, consumer: str, interval: float) -> None:
        super().__init__(daemon=True, name="heartbeat")
        self.queue, self.claim, self.consumer, self.interval = queue, claim, consumer, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.queue.refresh(self.claim, self.consumer)
            except redis.RedisError as e:
                log.warning("heartbeat for job %s failed: %s", self.claim.job_id, e)


class _EpochHooks:
    """What the worker does between two epochs."""

    def __init__(self, worker: Worker, job: JobRecord, spec: JobSpec) -> None:
        self.worker, self.job, self.spec = worker, job, spec
        self.started = time.perf_counter()
        self.epochs_done = 0

    def on_epoch(self, member: int, report: EpochReport, checkpoint: Callable[[], dict]) -> None:
        w, job = self.worker, self.job
        self.epochs_done += 1
        total = self.spec.epochs * self.spec.ensemble
        done = member * self.spec.epochs + report.epoch
        per_epoch = (time.perf_counter() - self.started) / self.epochs_done
        progress = {
            "epoch": report.epoch, "epochs": report.epochs, "member": member,
            "members": self.spec.ensemble, "validation_accuracy": report.validation_accuracy,
            "training_cost": report.training_cost, "eta_learning_rate": report.eta,
            "epoch_seconds": report.seconds, "eta_seconds": per_epoch * max(0, total - done),
            "training_accuracy": report.training_accuracy,
            "validation_cost": report.validation_cost,
        }
        w.metrics.epoch_seconds.observe(report.seconds)
        w.metrics.validation_accuracy.labels(self.spec.model).set(report.validation_accuracy)
        w.queue.save_checkpoint(job.id, ckpt.dumps(checkpoint()))
        w.queue.progress(job.id, progress)
        log.info("job %s epoch %d/%d validation %.4f", job.id, report.epoch, report.epochs,
                 report.validation_accuracy)
        if w.queue.cancel_requested(job.id):
            raise JobCancelled()
        if w.stopping.is_set():
            raise HandBack()


class Worker:
    def __init__(
        self,
        queue: JobQueue,
        registry: Registry,
        mnist: Callable[[], Mnist],
        worker_id: str,
        claim_timeout_s: float = 60.0,
        max_attempts: int = 3,
        block_ms: int = 2000,
        metrics: TrainerMetrics | None = None,
    ) -> None:
        self.queue, self.registry, self._mnist_loader = queue, registry, mnist
        self.worker_id = worker_id
        self.claim_timeout_s, self.max_attempts, self.block_ms = (
            claim_timeout_s, max_attempts, block_ms)
        self.metrics = metrics or TrainerMetrics()
        self.stopping = threading.Event()
        self._mnist: Mnist | None = None

    def mnist(self) -> Mnist:
        if self._mnist is None:
            self._mnist = self._mnist_loader()
        return self._mnist

    def run(self) -> None:
        """Works until `stopping` is set; survives Redis outages with backoff."""
        backoff = 0.5
        while not self.stopping.is_set():
            try:
                self.run_once()
                backoff = 0.5
            except redis.RedisError as e:
                log.warning("Redis unavailable (%s); retrying in %.1f s", e, backoff)
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 30.0)

    def run_once(self) -> bool:
        """Takes and processes at most one job; returns whether there was one."""
        waiting, pending = self.queue.depth()
        self.metrics.queue_waiting.set(waiting)
        self.metrics.queue_pending.set(pending)
        claim = self.queue.claim(self.worker_id, self.claim_timeout_s, self.block_ms)
        if claim is None:
            return False
        heartbeat = _Heartbeat(self.queue, claim, self.worker_id,
                               max(0.05, self.claim_timeout_s / 4))
        heartbeat.start()
        self.metrics.running.inc()
        try:
            self._process(claim)
        finally:
            heartbeat.stopped.set()
            heartbeat.join()
            self.metrics.running.dec()
        return True

    def _process(self, claim: Claim) -> None:
        try:
            job = self.queue.get(claim.job_id)
        except NndlError:  # the record expired or was never written: nothing to do
            self.queue.ack(claim)
            return
        if job.state.final:
            self.queue.ack(claim)
            return
        if job.attempts >= self.max_attempts:
            self._end(claim, JobState.FAILED,
                      error=f"gave up after {job.attempts} attempts: {job.error or 'worker lost'}")
            return
        job = self.queue.start(job.id, self.worker_id)
        log.info("job %s attempt %d started", job.id, job.attempts)
        try:
            spec = JobSpec.from_dict(job.spec)
            result = self._train_and_publish(job, spec)
        except JobCancelled:
            self._end(claim, JobState.CANCELLED, error="cancelled while running")
        except HandBack:
            self.queue.requeue(job.id, f"worker {self.worker_id} stopped")
            self.metrics.jobs.labels("requeued").inc()
            log.info("job %s handed back", job.id)
        except NndlError as e:
            self._end(claim, JobState.FAILED, error=str(e))
        except Exception as e:  # a bug must fail the job, not kill the worker loop
            log.exception("job %s crashed", job.id)
            self._end(claim, JobState.FAILED, error=f"internal error: {e!r}")
        else:
            self._end(claim, JobState.SUCCEEDED, result=result)

    def _end(self, claim: Claim, state: JobState, result: dict | None = None,
             error: str = "") -> None:
        self.queue.finish(claim.job_id, state, result=result, error=error)
        self.queue.ack(claim)
        self.metrics.jobs.labels(state.value).inc()
        log.info("job %s %s %s", claim.job_id, state.value, error)

    def _train_and_publish(self, job: JobRecord, spec: JobSpec) -> dict:
        raw = self.queue.load_checkpoint(job.id)
        resume = ckpt.loads(raw) if raw else None
        mnist = self.mnist()
        outcome = run_training(spec, mnist, _EpochHooks(self, job, spec), resume=resume)
        lineage = {
            "job_id": job.id, "spec": spec.to_dict(), "dataset_sha256": mnist.sha256,
            "history": outcome.history, "validation_accuracy": outcome.validation_accuracy,
            "test_accuracy": outcome.test_accuracy, "device": outcome.device,
            "duration_seconds": outcome.seconds, "code_version": CODE_VERSION,
            "worker": self.worker_id, "notes": outcome.notes,
        }
        networks = [(n.config(), [{k: to_numpy(v) for k, v in p.items()} for p in n.parameters()])
                    for n in outcome.networks]
        version = self.registry.publish(spec.model, networks, lineage, job_id=job.id)
        promoted = bool(spec.promote) and self.registry.promote_if_better(
            spec.model, spec.promote, version)
        return {
            "model": spec.model, "version": version,
            "validation_accuracy": outcome.validation_accuracy,
            "test_accuracy": outcome.test_accuracy, "book_accuracy": spec.book_accuracy,
            "duration_seconds": outcome.seconds, "promoted": promoted,
        }
