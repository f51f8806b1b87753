"""The job queue on a real Redis: submit, claim, progress, cancel, recover."""

from __future__ import annotations

import time

import pytest

from nndl.trainer.errors import InvalidSpecError, NotFoundError
from nndl.trainer.jobs import JobState
from nndl.trainer.keys import Keys
from nndl.trainer.presets import resolve
from nndl.trainer.queue import JobQueue
from nndl.trainer.spec import JobSpec


@pytest.fixture
def queue(rclient, prefix) -> JobQueue:
    return JobQueue(rclient, Keys(prefix))


def test_submit_claim_finish_ack(queue: JobQueue) -> None:
    job = queue.submit(resolve("ch1"))
    claim = queue.claim("w1", claim_timeout_s=60, block_ms=100)
    assert claim is not None and claim.job_id == job.id
    assert queue.claim("w2", claim_timeout_s=60, block_ms=100) is None  # taken
    queue.start(job.id, "w1")
    queue.finish(job.id, JobState.SUCCEEDED, result={"version": 1})
    queue.ack(claim)
    assert queue.get(job.id).state == JobState.SUCCEEDED
    kinds = [e["kind"] for e in queue.events(job.id, from_start=True)]
    assert kinds == ["queued", "started", "succeeded"]
    assert queue.depth() == (0, 0)


def test_a_dead_workers_job_is_claimed_after_the_timeout(queue: JobQueue) -> None:
    job = queue.submit(resolve("ch1"))
    assert queue.claim("dead", claim_timeout_s=0.2, block_ms=100).job_id == job.id
    assert queue.claim("alive", claim_timeout_s=0.2, block_ms=100) is None
    time.sleep(0.3)
    again = queue.claim("alive", claim_timeout_s=0.2, block_ms=100)
    assert again is not None and again.job_id == job.id


def test_a_refreshed_claim_is_not_taken(queue: JobQueue) -> None:
    queue.submit(resolve("ch1"))
    claim = queue.claim("busy", claim_timeout_s=0.3, block_ms=100)
    for _ in range(4):
        time.sleep(0.15)
        queue.refresh(claim, "busy")
        assert queue.claim("other", claim_timeout_s=0.3, block_ms=10) is None


def test_cancel_a_queued_job_at_once(queue: JobQueue) -> None:
    job = queue.submit(resolve("ch1"))
    assert queue.cancel(job.id).state == JobState.CANCELLED


def test_unknown_job(queue: JobQueue) -> None:
    with pytest.raises(NotFoundError, match="no job 'zzz'"):
        queue.get("zzz")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("eta", -1.0, "eta must be between"),
        ("epochs", 0, "epochs must be between"),
        ("layers", [784, 0, 10], r"layers\[1\] must be between"),
        ("layers", [784, 30, 9], "end with 10 outputs"),
        ("cost", "hinge", "cost must be one of"),
        ("model", "Bad Name", "not a valid name"),
        ("epochs", "ten", "epochs must be an integer"),
        ("colour", "red", "unknown field 'colour'"),
    ],
)
def test_invalid_specs_name_the_field(field, value, message) -> None:
    with pytest.raises(InvalidSpecError, match=message):
        JobSpec.from_dict({field: value})
