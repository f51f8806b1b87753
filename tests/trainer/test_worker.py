"""The worker in-process: a job's whole record, its metrics, the bounded attempts, the logs."""

from __future__ import annotations

import json
import logging
import time

import pytest

from nndl.trainer.jobs import JobState
from nndl.trainer.presets import resolve
from nndl.trainer.queue import JobQueue
from nndl.trainer.worker import Worker
from nndl.trainer.worker_main import JsonFormatter

pytestmark = pytest.mark.timeout(120)


def wait_final(queue: JobQueue, job_id: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not queue.get(job_id).state.final:
        assert time.monotonic() < deadline, "the job did not end in time"
        time.sleep(0.05)


def test_a_job_records_its_lifecycle_progress_result_and_metrics(worker: Worker) -> None:
    queue = worker.queue
    job = queue.submit(resolve("ch3", {"train_size": 1000, "epochs": 2, "model": "life"}))
    wait_final(queue, job.id)

    done = queue.get(job.id)
    assert done.state == JobState.SUCCEEDED, done.error
    assert (done.attempts, done.worker) == (1, worker.worker_id)
    assert done.created_at <= done.started_at <= done.finished_at
    p = done.progress
    assert (p["epoch"], p["epochs"], p["eta_seconds"]) == (2, 2, 0)
    assert 0.5 < p["validation_accuracy"] <= 1 and p["training_cost"] > 0
    assert p["eta_learning_rate"] == 0.5 and p["epoch_seconds"] > 0
    r = done.result
    assert (r["model"], r["version"]) == ("life", 1) and 0.5 < r["test_accuracy"] <= 1
    assert [e["kind"] for e in queue.history(job.id)] == [
        "queued", "started", "epoch", "epoch", "succeeded"]

    m = worker.metrics.registry.get_sample_value
    assert m("nndl_trainer_jobs_total", {"state": "succeeded"}) == 1
    assert m("nndl_trainer_epoch_duration_seconds_count") == 2
    assert m("nndl_trainer_validation_accuracy_ratio", {"model": "life"}) == p[
        "validation_accuracy"]
    assert m("nndl_trainer_running_jobs") == 0


def test_a_job_whose_attempts_keep_dying_fails_with_the_reason(settings, mnist) -> None:
    client = settings.redis()
    queue = JobQueue(client, settings.keys())
    worker = Worker(queue, settings.registry(client), lambda: mnist, worker_id="judge",
                    claim_timeout_s=0.1, max_attempts=3, block_ms=100)
    job = queue.submit(resolve("ch3", {"train_size": 1000, "epochs": 1}))
    queue.claim("doomed", claim_timeout_s=60, block_ms=100)
    for n in range(3):  # three workers started it and died without a word
        queue.start(job.id, f"doomed-{n}")
    time.sleep(0.2)  # the entry idles past the claim timeout
    assert worker.run_once()

    failed = queue.get(job.id)
    assert failed.state == JobState.FAILED and failed.attempts == 3
    assert "gave up after 3 attempts" in failed.error and "doomed-2" in failed.error
    assert queue.depth() == (0, 0)
    client.close()


def test_log_lines_are_json_with_the_job_id() -> None:
    record = logging.LogRecord("nndl.trainer.worker", logging.INFO, __file__, 1, "epoch done",
                               None, None)
    record.job, record.epoch = "abc123", 4
    line = json.loads(JsonFormatter("w1").format(record))
    assert line["message"] == "epoch done" and line["job"] == "abc123" and line["epoch"] == 4
    assert line["worker"] == "w1" and line["level"] == "INFO"
