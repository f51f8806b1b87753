"""The trainer worker: takes jobs from the queue, trains them, publishes the result.

One loop, one job at a time. Between epochs it saves a checkpoint, reports progress,
and looks for cancellation, for a request to stop (SIGTERM), and for a sign that the
job is no longer its own, so each reaches a running job within one epoch. A heartbeat
thread keeps the claim on the job fresh even during long epochs.

Redis going away is weather, not a verdict on the job: the calls of a running job
wait for it with backoff, and the loop that takes jobs does the same.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import redis

from nndl.trainer import checkpoint as ckpt
from nndl.trainer.data import Mnist
from nndl.trainer.errors import NndlError, NotFoundError
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
T = TypeVar("T")

# Errors of the connection, not of the command: worth waiting out. BusyLoadingError (a
# restarted Redis reading its append-only file) is one of them.
_UNREACHABLE = (redis.ConnectionError, redis.TimeoutError)
STOPPING_RETRY_S = 5.0  # how long a stopping worker still tries to reach Redis to hand back


class JobCancelled(Exception):
    """Raised between epochs when the job's cancellation was asked for."""


class HandBack(Exception):
    """Raised between epochs when the worker was asked to stop: the job goes back."""


class ClaimLost(Exception):
    """Raised between epochs when the job is no longer this worker's to finish.

    Another worker claimed it (this one could not refresh its claim in time, say
    through a long Redis outage) or it ended meanwhile; the other worker carries on.
    """


class _Heartbeat(threading.Thread):
    """Refreshes the claim every `interval` seconds until stopped, or until it is lost."""

    def __init__(self, worker: Worker, claim: Claim, interval: float) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{claim.job_id}")
        self.worker, self.claim, self.interval = worker, claim, interval
        self.stopped = threading.Event()
        self.lost = threading.Event()

    def run(self) -> None:
        w, job_id = self.worker, self.claim.job_id
        while not self.stopped.wait(self.interval):
            try:
                if not w.queue.refresh(self.claim, w.worker_id):
                    log.warning("claim lost to another worker", extra={"job": job_id})
                    self.lost.set()
                    return
                w.observe_queue()
            except redis.RedisError as e:
                w.metrics.redis_errors.inc()
                log.warning("heartbeat failed", extra={"job": job_id, "error": str(e)})


class _EpochHooks:
    """What the worker does between two epochs."""

    def __init__(self, worker: Worker, job: JobRecord, spec: JobSpec,
                 heartbeat: _Heartbeat) -> None:
        self.worker, self.job, self.spec, self.heartbeat = worker, job, spec, heartbeat
        self.started = time.perf_counter()
        self.epochs_done = 0

    def on_epoch(self, member: int, report: EpochReport, checkpoint: Callable[[], dict]) -> None:
        w, job_id = self.worker, self.job.id
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
        if not w.retrying(job_id, w.queue.epoch_done, job_id, w.worker_id, progress,
                          ckpt.dumps(checkpoint())):
            raise ClaimLost()  # taken over or ended meanwhile: its state is not ours to write
        log.info("epoch done", extra={"job": job_id, "member": member, "epoch": report.epoch,
                                      "validation_accuracy": report.validation_accuracy,
                                      "epoch_seconds": round(report.seconds, 3)})
        self.check()

    def check(self) -> None:
        """Raises what should interrupt the run now: loss of the job, cancellation, a stop."""
        w, job_id = self.worker, self.job.id
        if self.heartbeat.lost.is_set():
            raise ClaimLost()
        state, holder, cancel = w.retrying(job_id, w.queue.control, job_id)
        if state is None or state.final or holder != w.worker_id:
            raise ClaimLost()
        if cancel:
            raise JobCancelled()
        if w.stopping.is_set():
            raise HandBack()


def epochs_in(resume: dict | None) -> int:
    """How many epochs a checkpoint holds, over all ensemble members."""
    if not resume:
        return 0
    finished = sum(len(m["history"]) for m in resume["members"])
    return finished + int((resume.get("current") or {}).get("epoch", 0))


class Worker:
    """Trains queued jobs one at a time until `stopping` is set."""

    def __init__(
        self,
        queue: JobQueue,
        registry: Registry,
        mnist: Callable[[], Mnist],
        worker_id: str,
        claim_timeout_s: float = 60.0,
        max_attempts: int = 3,
        block_ms: int = 2000,
        reconnect_max_s: float = 10.0,
        metrics: TrainerMetrics | None = None,
    ) -> None:
        self.queue, self.registry, self._mnist_loader = queue, registry, mnist
        self.worker_id = worker_id
        self.claim_timeout_s, self.max_attempts, self.block_ms = (
            claim_timeout_s, max_attempts, block_ms)
        self.reconnect_max_s = reconnect_max_s
        self.metrics = metrics or TrainerMetrics()
        self.stopping = threading.Event()
        self._mnist: Mnist | None = None

    def mnist(self) -> Mnist:
        if self._mnist is None:
            self._mnist = self._mnist_loader()
        return self._mnist

    def run(self) -> None:
        """Works until `stopping` is set; survives Redis outages with backoff.

        The data is loaded first, before any claim: loading holds the GIL for up to
        a second at a time, and under a claim that would starve the heartbeat.
        A worker that cannot load it stops here rather than fail every job it takes.
        """
        self.mnist()
        backoff = 0.1
        while not self.stopping.is_set():
            try:
                self.run_once()
                backoff = 0.1
            except redis.RedisError as e:
                self.metrics.redis_errors.inc()
                log.warning("redis unavailable", extra={"error": str(e), "retry_in_s": backoff})
                self.stopping.wait(backoff * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, self.reconnect_max_s)

    def run_once(self) -> bool:
        """Takes and processes at most one job; returns whether there was one."""
        self.observe_queue()
        claim = self.queue.claim(self.worker_id, self.claim_timeout_s, self.block_ms)
        if claim is None:
            return False
        heartbeat = _Heartbeat(self, claim, max(0.05, self.claim_timeout_s / 4))
        heartbeat.start()
        self.metrics.running.inc()
        try:
            self._process(claim, heartbeat)
        finally:
            heartbeat.stopped.set()
            heartbeat.join()
            self.metrics.running.dec()
        return True

    def observe_queue(self) -> None:
        waiting, pending = self.queue.depth()
        self.metrics.queue_waiting.set(waiting)
        self.metrics.queue_pending.set(pending)

    def retrying(self, job_id: str, fn: Callable[..., T], *args) -> T:
        """`fn(*args)`, waiting out an unreachable Redis with backoff.

        Used for the calls of a running job, so an outage pauses the job instead of
        failing it. A stopping worker gives up after STOPPING_RETRY_S: its job stays
        pending and another worker resumes it after the claim timeout.
        """
        delay, first_failure = 0.1, 0.0
        while True:
            try:
                return fn(*args)
            except _UNREACHABLE as e:
                self.metrics.redis_errors.inc()
                now = time.monotonic()
                first_failure = first_failure or now
                if self.stopping.is_set() and now - first_failure > STOPPING_RETRY_S:
                    raise
                log.warning("redis unavailable", extra={"job": job_id, "error": str(e),
                                                         "retry_in_s": round(delay, 2)})
                time.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self.reconnect_max_s)

    def _process(self, claim: Claim, heartbeat: _Heartbeat) -> None:
        jid = claim.job_id
        try:
            admitted = self._admit(claim)
            if admitted is None:
                return
            job, resume = admitted
            spec = JobSpec.from_dict(job.spec)
            hooks = _EpochHooks(self, job, spec, heartbeat)
            hooks.check()  # a cancellation asked for while it was handed back
            result = self._train_and_publish(job, spec, resume, hooks)
        except JobCancelled:
            self._end(claim, JobState.CANCELLED, error="cancelled while running")
        except HandBack:
            if self.retrying(jid, self.queue.hand_back, claim, self.worker_id,
                             f"worker {self.worker_id} stopped"):
                self.metrics.jobs.labels("handed_back").inc()
                log.info("job handed back", extra={"job": jid})
        except ClaimLost:
            self.metrics.jobs.labels("lost").inc()
            log.warning("job no longer ours; left to its new holder", extra={"job": jid})
        except NndlError as e:
            self._end(claim, JobState.FAILED, error=str(e))
        except redis.RedisError:
            raise  # not the job's fault: it stays pending and another attempt resumes it
        except Exception as e:  # a bug must fail the job, not kill the worker loop
            log.exception("job crashed", extra={"job": jid})
            self._end(claim, JobState.FAILED, error=f"internal error: {e!r}")
        else:
            self._end(claim, JobState.SUCCEEDED, result=result)

    def _admit(self, claim: Claim) -> tuple[JobRecord, dict | None] | None:
        """Starts the claimed job: (record, checkpoint to resume from), or None to skip it."""
        jid = claim.job_id
        try:
            job = self.retrying(jid, self.queue.get, jid)
        except NotFoundError:  # the record expired or was never written: nothing to do
            self.retrying(jid, self.queue.ack, claim)
            return None
        if job.state.final:  # ended while queued (cancelled) or by a previous holder
            self.retrying(jid, self.queue.ack, claim)
            return None
        failures = job.attempts - job.handbacks
        if failures >= self.max_attempts:
            self._end(claim, JobState.FAILED, error=(
                f"gave up after {job.attempts} attempts: {failures} ended without a result, "
                f"the last on worker {job.worker or '?'} (it died or lost its claim)"))
            return None
        resume = self._checkpoint(jid)
        # Still "running" under another worker: that worker stopped refreshing its claim.
        taken_from = job.worker if job.state == JobState.RUNNING and job.worker else ""
        attempt = self.retrying(jid, self.queue.start, jid, self.worker_id, epochs_in(resume),
                                taken_from)
        if not attempt:
            self.retrying(jid, self.queue.ack, claim)
            return None
        log.info("job started", extra={"job": jid, "attempt": attempt,
                                       "resumed_from_epoch": epochs_in(resume)})
        return job, resume

    def _checkpoint(self, job_id: str) -> dict | None:
        """The job's last checkpoint; None (start afresh) when there is none or it is unreadable.

        A checkpoint that cannot be read costs the epochs it held, not the job.
        """
        raw = self.retrying(job_id, self.queue.load_checkpoint, job_id)
        if not raw:
            return None
        try:
            resume = ckpt.loads(raw)
            epochs_in(resume)
            float(resume.get("seconds", 0.0))
        except Exception as e:  # any damage: the epochs are redone
            log.warning("checkpoint unreadable; starting afresh",
                        extra={"job": job_id, "error": repr(e)})
            return None
        return resume

    def _end(self, claim: Claim, state: JobState, result: dict | None = None,
             error: str = "") -> None:
        jid = claim.job_id
        ended = self.retrying(jid, self.queue.finish, jid, state, result, error)
        self.retrying(jid, self.queue.ack, claim)  # after the result is safe: at-least-once
        if ended:
            self.metrics.jobs.labels(state.value).inc()
        log.info("job ended", extra={"job": jid, "state": state.value, "error": error,
                                     "already_ended": not ended})

    def _train_and_publish(self, job: JobRecord, spec: JobSpec, resume: dict | None,
                           hooks: _EpochHooks) -> dict:
        mnist = self.mnist()
        outcome = run_training(spec, mnist, hooks, resume=resume)
        lineage = {
            "job_id": job.id, "spec": spec.to_dict(), "dataset_sha256": mnist.sha256,
            "history": outcome.history, "validation_accuracy": outcome.validation_accuracy,
            "test_accuracy": outcome.test_accuracy, "device": outcome.device,
            **({"test_accuracy_by_vote": outcome.test_accuracy_by_vote}
               if len(outcome.networks) > 1 else {}),
            "duration_seconds": outcome.seconds, "code_version": CODE_VERSION,
            "worker": self.worker_id, "notes": outcome.notes,
        }
        networks = [(n.config(), [{k: to_numpy(v) for k, v in p.items()} for p in n.parameters()])
                    for n in outcome.networks]
        # Idempotent per job id: a retried or repeated attempt gets the same version back.
        version = self.retrying(job.id, self.registry.publish, spec.model, networks, lineage,
                                job.id)
        promoted = bool(spec.promote) and self.retrying(
            job.id, self.registry.promote_if_better, spec.model, spec.promote, version)
        return {
            "model": spec.model, "version": version,
            "validation_accuracy": outcome.validation_accuracy,
            "test_accuracy": outcome.test_accuracy, "book_accuracy": spec.book_accuracy,
            "duration_seconds": outcome.seconds, "promote": spec.promote, "promoted": promoted,
        }
