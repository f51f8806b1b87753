"""Cancelling a running job: it stops within one epoch, publishes nothing, the worker goes on."""

from __future__ import annotations

import pytest

from nndl.trainer.presets import resolve
from tests.faults.conftest import epochs_reported, figures, wait_until

pytestmark = pytest.mark.timeout(120)


def test_cancel_of_a_running_job_takes_effect_within_one_epoch(spawn, queue, registry) -> None:
    spawn("canceller", claim_timeout_s=2.0)
    job = queue.submit(resolve("ch3", {"train_size": 20_000, "epochs": 30, "model": "cancel"}))
    wait_until(lambda: epochs_reported(queue, job.id), 90, "a first epoch")
    queue.cancel(job.id)
    wait_until(lambda: queue.get(job.id).state.final, 60, "the cancellation")

    kinds = [e["kind"] for e in queue.history(job.id)]
    after_request = kinds[kinds.index("cancel_requested"):].count("epoch")
    f = figures(queue, registry, job.id)
    print("FIGURES cancel:", f, f"epochs finished after the request: {after_request}")
    assert f["outcome"] == "cancelled" and kinds[-1] == "cancelled"
    assert after_request <= 1  # the epoch that was running when it was asked for
    assert f["versions_published"] == 0 and queue.depth() == (0, 0)

    after = queue.submit(resolve("ch3", {"train_size": 500, "epochs": 1, "model": "cancel"}))
    wait_until(lambda: queue.get(after.id).state.final, 60, "the next job")
    assert queue.get(after.id).state.value == "succeeded"
