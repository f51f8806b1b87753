"""A worker killed, stopped, or merely slow: the job finishes once, from its checkpoint."""

from __future__ import annotations

import signal

import pytest

from nndl.trainer.presets import resolve
from tests.faults.conftest import epochs_reported, figures, wait_until

pytestmark = pytest.mark.timeout(150)

# Slow enough epochs (about a second here) to act between them, short enough for a test.
SLOW = {"layers": [784, 30, 10], "train_size": 20_000, "epochs": 5, "mini_batch_size": 10}


def test_kill_9_mid_job_another_worker_finishes_it_from_the_checkpoint(
        spawn, queue, registry) -> None:
    first = spawn("doomed", claim_timeout_s=2.0)
    job = queue.submit(resolve("ch3", {**SLOW, "model": "kill9"}))
    wait_until(lambda: len(epochs_reported(queue, job.id)) >= 2, 90, "two epochs on doomed")
    first.kill(signal.SIGKILL)
    first.process.wait(timeout=10)
    done_before_kill = max(epochs_reported(queue, job.id))
    spawn("rescuer", claim_timeout_s=2.0)
    wait_until(lambda: queue.get(job.id).state.final, 90, "the job to end on rescuer")

    f = figures(queue, registry, job.id)
    print("FIGURES kill -9:", f)
    assert f["outcome"] == "succeeded", f["error"]
    assert f["workers"] == ["doomed", "rescuer"] and f["attempts"] == 2
    assert f["resumed_from_epoch"][1] >= done_before_kill >= 2  # not from epoch 0
    assert sorted(set(epochs_reported(queue, job.id))) == [1, 2, 3, 4, 5]
    assert f["epochs_redone"] == 0
    assert f["versions_published"] == 1 and queue.get(job.id).result["version"] == 1
    assert queue.depth() == (0, 0)
    starts = [e["message"] for e in queue.history(job.id) if e["kind"] == "started"]
    assert starts[1].startswith("on rescuer, taking over from doomed, which stopped answering; "
                                "resumed after epoch"), starts


def test_sigterm_mid_job_hands_it_back_at_once_to_another_worker(
        spawn, queue, registry) -> None:
    # A claim timeout far beyond the test's deadlines: only a hand-back can move the job.
    leaving = spawn("leaving", claim_timeout_s=600)
    job = queue.submit(resolve("ch3", {**SLOW, "model": "sigterm"}))
    wait_until(lambda: epochs_reported(queue, job.id), 90, "an epoch on leaving")
    spawn("staying", claim_timeout_s=600)
    leaving.kill(signal.SIGTERM)
    assert leaving.process.wait(timeout=60) == 0
    wait_until(lambda: queue.get(job.id).state.final, 90, "the job to end on staying")

    f = figures(queue, registry, job.id)
    print("FIGURES SIGTERM:", f)
    assert f["outcome"] == "succeeded", f["error"]
    assert f["workers"] == ["leaving", "staying"]
    assert (f["attempts"], f["handbacks"]) == (2, 1)
    assert f["resumed_from_epoch"][1] >= 1
    assert [e["kind"] for e in queue.history(job.id)].count("requeued") == 1
    assert f["epochs_redone"] == 0 and f["versions_published"] == 1
    assert any(line["message"] == "job handed back" for line in leaving.log())
    starts = [e["message"] for e in queue.history(job.id) if e["kind"] == "started"]
    assert "taking over" not in starts[1]  # handed back, not lost


def test_a_job_longer_than_the_claim_timeout_is_not_taken_from_a_live_worker(
        spawn, queue, registry) -> None:
    timeout_s = 1.5  # above the GIL stalls of numpy (tenths of a second), below an epoch
    spawn("one", claim_timeout_s=timeout_s)
    spawn("two", claim_timeout_s=timeout_s)
    # Several claim timeouts long even on a fast machine: 12 epochs of [784, 100, 10] on
    # 50,000 images take 7 s or more (6 epochs of [784, 30, 10] took only 2.4 s on one).
    job = queue.submit(resolve("ch3-100", {"train_size": 50_000, "epochs": 12, "model": "long"}))
    wait_until(lambda: queue.get(job.id).state.final, 120, "the long job to end")

    done = queue.get(job.id)
    f = figures(queue, registry, job.id)
    held = done.finished_at - done.started_at
    print("FIGURES long job:", f, f"held {held:.1f} s with a claim timeout of {timeout_s} s")
    # Only the heartbeat touches the stream entry between claim and ack: without it the
    # entry would look idle for `held` seconds and the other worker would take it.
    assert held > 2 * timeout_s
    assert f["outcome"] == "succeeded" and done.attempts == 1 and len(f["workers"]) == 1
    assert f["epochs_redone"] == 0 and f["versions_published"] == 1
