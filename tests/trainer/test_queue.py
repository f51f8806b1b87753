"""The job queue on a real Redis: submit, claim, progress, cancel, hand back, expire."""

from __future__ import annotations

import itertools
import time
from dataclasses import fields

import grpc
import pytest

from nndl.trainer.errors import (
    InvalidArgumentError,
    InvalidSpecError,
    NotFoundError,
    OverloadedError,
)
from nndl.trainer.jobs import JobState
from nndl.trainer.keys import Keys
from nndl.trainer.presets import resolve
from nndl.trainer.queue import JobQueue
from nndl.trainer.spec import MAX_SPEC_BYTES, JobSpec


@pytest.fixture
def queue(rclient, prefix) -> JobQueue:
    return JobQueue(rclient, Keys(prefix))


def wait_until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


def test_submit_claim_finish_ack(queue: JobQueue) -> None:
    job = queue.submit(resolve("ch1"))
    assert queue.depth() == (1, 0)
    claim = queue.claim("w1", claim_timeout_s=60, block_ms=100)
    assert claim is not None and claim.job_id == job.id
    assert queue.depth() == (0, 1)
    assert queue.claim("w2", claim_timeout_s=60, block_ms=100) is None  # taken
    assert queue.start(job.id, "w1") == 1
    running = queue.get(job.id)
    assert (running.state, running.worker, running.attempts) == (JobState.RUNNING, "w1", 1)
    assert running.started_at >= running.created_at > 0
    assert queue.epoch_done(job.id, "w1", {"epoch": 1, "epochs": 30}, b"checkpoint")
    assert queue.get(job.id).progress == {"epoch": 1, "epochs": 30}
    assert queue.finish(job.id, JobState.SUCCEEDED, result={"version": 1})
    queue.ack(claim)
    done = queue.get(job.id)
    assert done.state == JobState.SUCCEEDED and done.result == {"version": 1}
    assert done.finished_at >= done.started_at
    events = list(queue.events(job.id, from_start=True))
    assert [e["kind"] for e in events] == ["queued", "started", "epoch", "succeeded"]
    assert events[1]["attempt"] == 1 and events[1]["worker"] == "w1"
    assert queue.depth() == (0, 0)


def test_the_first_final_state_wins_and_records_expire(rclient, prefix) -> None:
    queue = JobQueue(rclient, Keys(prefix), record_ttl_s=1)
    job = queue.submit(resolve("ch1"))
    queue.start(job.id, "w1")
    assert queue.epoch_done(job.id, "w1", {"epoch": 1}, b"state")
    assert queue.finish(job.id, JobState.SUCCEEDED, result={"version": 3})
    assert not queue.finish(job.id, JobState.FAILED, error="late")
    assert queue.get(job.id).state == JobState.SUCCEEDED
    assert queue.start(job.id, "w2") == 0  # an ended job never runs again
    assert queue.load_checkpoint(job.id) is None
    wait_until(lambda: not rclient.exists(Keys(prefix).job(job.id)), 5, "the record to expire")
    assert not rclient.exists(Keys(prefix).job_events(job.id))
    assert queue.list() == []


def test_a_dead_workers_job_is_claimed_after_the_timeout(queue: JobQueue) -> None:
    job = queue.submit(resolve("ch1"))
    assert queue.claim("dead", claim_timeout_s=0.2, block_ms=100).job_id == job.id
    assert queue.claim("alive", claim_timeout_s=0.2, block_ms=100) is None
    time.sleep(0.3)  # let the entry become idle past the timeout
    again = queue.claim("alive", claim_timeout_s=0.2, block_ms=100)
    assert again is not None and again.job_id == job.id


def test_a_refreshed_claim_is_not_taken(queue: JobQueue) -> None:
    queue.submit(resolve("ch1"))
    claim = queue.claim("busy", claim_timeout_s=0.3, block_ms=100)
    for _ in range(4):
        time.sleep(0.15)
        assert queue.refresh(claim, "busy")
        assert queue.claim("other", claim_timeout_s=0.3, block_ms=10) is None


def test_a_lost_claim_is_not_taken_back(queue: JobQueue) -> None:
    queue.submit(resolve("ch1"))
    old = queue.claim("slow", claim_timeout_s=0.1, block_ms=100)
    time.sleep(0.2)
    new = queue.claim("other", claim_timeout_s=0.1, block_ms=100)
    assert new is not None and new.entry_id == old.entry_id
    assert not queue.refresh(old, "slow")
    assert queue.refresh(new, "other")


def test_only_the_worker_running_a_job_stores_its_epochs(queue: JobQueue) -> None:
    job = queue.submit(resolve("ch1"))
    assert not queue.epoch_done(job.id, "w1", {"epoch": 1}, b"early")  # not started
    queue.start(job.id, "old")
    queue.start(job.id, "new")  # took it over from a worker that lost its claim
    assert not queue.epoch_done(job.id, "old", {"epoch": 9}, b"stale")
    assert queue.epoch_done(job.id, "new", {"epoch": 2}, b"fresh")
    assert queue.load_checkpoint(job.id) == b"fresh"
    queue.finish(job.id, JobState.SUCCEEDED)
    assert not queue.epoch_done(job.id, "new", {"epoch": 3}, b"late")
    assert queue.load_checkpoint(job.id) is None  # nothing left behind without a TTL
    assert queue.get(job.id).progress == {"epoch": 2}
    assert [e["kind"] for e in queue.history(job.id)][-2:] == ["epoch", "succeeded"]


def test_a_handed_back_job_is_claimable_at_once(queue: JobQueue) -> None:
    job = queue.submit(resolve("ch1"))
    claim = queue.claim("stopping", claim_timeout_s=60, block_ms=100)
    queue.start(job.id, "stopping")
    assert not queue.hand_back(claim, "someone-else", "not theirs")
    assert queue.hand_back(claim, "stopping", "worker stopping stopped")
    back = queue.get(job.id)
    assert (back.state, back.worker, back.attempts, back.handbacks) == (JobState.QUEUED, "", 1, 1)
    assert queue.depth() == (1, 0)
    again = queue.claim("next", claim_timeout_s=60, block_ms=100)
    assert again is not None and again.job_id == job.id
    assert queue.start(job.id, "next") == 2
    kinds = [e["kind"] for e in queue.history(job.id)]
    assert kinds == ["queued", "started", "requeued", "started"]


def test_cancel_a_queued_job_at_once(queue: JobQueue) -> None:
    job = queue.submit(resolve("ch1"))
    cancelled = queue.cancel(job.id)
    assert cancelled.state == JobState.CANCELLED and cancelled.finished_at > 0
    claim = queue.claim("w", claim_timeout_s=60, block_ms=100)  # still in the stream...
    assert queue.start(claim.job_id, "w") == 0  # ...but it never starts


def test_cancel_a_running_job_asks_its_worker(queue: JobQueue) -> None:
    job = queue.submit(resolve("ch1"))
    queue.claim("w", claim_timeout_s=60, block_ms=100)
    queue.start(job.id, "w")
    asked = queue.cancel(job.id)
    assert asked.state == JobState.RUNNING and asked.cancel_requested
    assert queue.control(job.id) == (JobState.RUNNING, "w", True)
    assert queue.history(job.id)[-1]["kind"] == "cancel_requested"


def test_unknown_job(queue: JobQueue) -> None:
    with pytest.raises(NotFoundError, match="no job 'zzz'"):
        queue.get("zzz")
    with pytest.raises(NotFoundError):
        queue.cancel("zzz")
    with pytest.raises(NotFoundError):
        queue.events("zzz")


def test_watch_from_now_or_from_the_start(queue: JobQueue) -> None:
    job = queue.submit(resolve("ch1"))
    queue.start(job.id, "w")
    from_now = queue.events(job.id, block_ms=100)
    from_start = queue.events(job.id, from_start=True, block_ms=100)
    queue.epoch_done(job.id, "w", {"epoch": 1}, b"")
    queue.finish(job.id, JobState.FAILED, error="boom")
    assert [e["kind"] for e in from_now] == ["epoch", "failed"]
    assert [e["kind"] for e in from_start] == ["queued", "started", "epoch", "failed"]
    assert list(queue.events(job.id, block_ms=100)) == []  # ended: nothing more to come


def test_a_watch_resumes_after_the_last_event_it_saw(queue: JobQueue) -> None:
    """Events are ordered by their stream id, not by the clocks of the machines writing them."""
    job = queue.submit(resolve("ch1"))
    queue.start(job.id, "w")
    queue.epoch_done(job.id, "w", {"epoch": 1}, b"")
    seen = list(itertools.islice(queue.events(job.id, from_start=True, block_ms=100), 2))
    assert [e["kind"] for e in seen] == ["queued", "started"]
    assert all(e["id"] for e in seen)
    queue.finish(job.id, JobState.SUCCEEDED)
    rest = list(queue.events(job.id, after_id=seen[1]["id"], block_ms=100))
    assert [e["kind"] for e in rest] == ["epoch", "succeeded"]
    with pytest.raises(InvalidArgumentError, match="after_id 'x' is not an event id"):
        queue.events(job.id, after_id="x")
    with pytest.raises(InvalidArgumentError, match="two numbers below 2"):
        queue.events(job.id, after_id="99999999999999999999-0")  # Redis would refuse it


def test_submission_is_refused_when_too_many_jobs_wait(rclient, prefix) -> None:
    queue = JobQueue(rclient, Keys(prefix), max_waiting=2)
    queue.submit(resolve("ch1"))
    queue.submit(resolve("ch1"))
    with pytest.raises(OverloadedError, match="2 jobs are waiting"):
        queue.submit(resolve("ch1"))
    queue.claim("w", claim_timeout_s=60, block_ms=100)  # one leaves the queue: room again
    queue.submit(resolve("ch1"))


# One bad value for every field of the spec, and the words the refusal must contain.
BAD_FIELDS = {
    "rotate": (45.0, "rotate must be between"),
    "conv": ([{"filters": 20, "kernel": 5}], r"conv\[0\] must have exactly the keys"),
    "model": ("Bad Name", "model 'Bad Name' is not a valid name"),
    "preset": (7, "preset must be a string"),
    "layers": ([784, 0, 10], r"layers\[1\] must be between 1 and 4096"),
    "activation": ("softmax", "activation must be one of"),
    "output": ("relu", "output must be one of"),
    "cost": ("hinge", "cost must be one of"),
    "init": ("zeros", "init must be one of"),
    "epochs": (0, "epochs must be between 1 and 500"),
    "mini_batch_size": (0, "mini_batch_size must be between 1 and 10000"),
    "eta": (-1.0, "eta must be between"),
    "lmbda": (-1, "lmbda must be between"),
    "l1": (1e9, "l1 must be between"),
    "momentum": (1.0, "momentum must be between"),
    "dropout": (0.95, "dropout must be between"),
    "early_stopping": (501, "early_stopping must be between"),
    "eta_schedule": (-1, "eta_schedule must be between"),
    "train_size": (60_000, "train_size must be between 10 and 50000"),
    "expand": ("mirror", "expand must be one of"),
    "ensemble": (11, "ensemble must be between 1 and 10"),
    "seed": (-1, "seed must be between"),
    "device": ("tpu", "device must be one of"),
    "dtype": ("float16", "dtype must be one of"),
    "promote": ("latest", "promote cannot be 'latest'"),
    "book_accuracy": (1.5, "book_accuracy must be between 0 and 1"),
}


def test_every_field_has_a_bad_value_below() -> None:
    assert set(BAD_FIELDS) == {f.name for f in fields(JobSpec)}


@pytest.mark.parametrize(("field", "value", "message"),
                         [(f, v, m) for f, (v, m) in BAD_FIELDS.items()])
def test_invalid_specs_are_refused_naming_the_field(queue, field, value, message) -> None:
    with pytest.raises(InvalidSpecError, match=message):
        queue.submit(resolve("ch1", {field: value}))
    assert queue.depth() == (0, 0)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("epochs", "ten", "epochs must be an integer"),
    ("layers", [784, 30, 9], "end with 10 outputs"),
    ("layers", [784] + [30] * 12 + [10], "layers must list 2 to 12 sizes"),
    ("eta", float("nan"), "eta must be a finite number"),
    ("colour", "red", "unknown field 'colour'"),
])
def test_more_invalid_specs(field, value, message) -> None:
    with pytest.raises(InvalidSpecError, match=message):
        JobSpec.from_dict({field: value})


def test_submission_over_grpc_refuses_bad_specs_and_queues_nothing(server, queue) -> None:
    from nndl.client import ClientError, DigitsClient

    _, address = server
    with DigitsClient(address) as c:
        with pytest.raises(ClientError, match=f"larger than {MAX_SPEC_BYTES} bytes") as e:
            c.submit("ch1", model="m" * MAX_SPEC_BYTES)
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(ClientError, match="ensemble must be between 1 and 10") as e:
            c.submit("ch1", ensemble=1000)
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert queue.depth() == (0, 0) and queue.list() == []


def test_the_job_index_forgets_expired_records(queue: JobQueue) -> None:
    old = [queue.submit(resolve("ch1")) for _ in range(3)]
    for job in old:
        queue.client.delete(queue.keys.job(job.id))  # as if their records expired
    fresh = queue.submit(resolve("ch1"))
    ids = [i.decode() for i in queue.client.zrange(queue.keys.jobs_index, 0, -1)]
    assert ids == [fresh.id]
