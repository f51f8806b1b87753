"""Fifty short jobs through three worker processes: each once, each its own version."""

from __future__ import annotations

from collections import Counter

import pytest

from nndl.trainer.presets import resolve
from tests.faults.conftest import wait_until

pytestmark = pytest.mark.timeout(180)


def test_50_jobs_through_3_workers_all_succeed_once_with_unique_versions(
        spawn, queue, registry) -> None:
    workers = [spawn(f"w{i}", claim_timeout_s=5.0) for i in range(3)]
    spec = resolve("ch3", {"train_size": 500, "epochs": 1, "model": "many"})
    ids = [queue.submit(spec).id for _ in range(50)]
    wait_until(lambda: all(queue.get(i).state.final for i in ids), 150, "all 50 jobs to end")

    jobs = [queue.get(i) for i in ids]
    kinds = [Counter(e["kind"] for e in queue.history(i)) for i in ids]
    versions = sorted(j.result["version"] for j in jobs)
    by_worker = Counter(j.worker for j in jobs)
    succeeded = sum(w.metric("nndl_trainer_jobs_total", state="succeeded") for w in workers)
    epochs = sum(w.metric("nndl_trainer_epoch_duration_seconds_count") for w in workers)
    print(f"FIGURES 50 jobs: states {Counter(j.state.value for j in jobs)}, "
          f"attempts {Counter(j.attempts for j in jobs)}, by worker {dict(by_worker)}, "
          f"versions {len(set(versions))} unique of {len(versions)}, "
          f"metrics succeeded {succeeded:.0f}, epochs {epochs:.0f}")
    assert all(j.state.value == "succeeded" for j in jobs), [j.error for j in jobs]
    assert all(k["started"] == 1 and k["succeeded"] == 1 for k in kinds)
    assert versions == list(range(1, 51))
    assert [v.version for v in registry.versions("many")] == versions
    assert {v.job_id for v in registry.versions("many")} == set(ids)
    assert succeeded == 50 and epochs == 50
    assert queue.depth() == (0, 0)
    assert workers[0].metric("nndl_trainer_queue_pending_jobs") >= 0
