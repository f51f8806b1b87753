"""The Redis server restarted under a working worker: it waits, reconnects, finishes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
import redis

from nndl.trainer.keys import Keys
from nndl.trainer.local_redis import LocalRedis
from nndl.trainer.presets import resolve
from nndl.trainer.queue import JobQueue
from nndl.trainer.registry import DirectoryStore, Registry
from tests.faults.conftest import epochs_reported, figures, wait_until

pytestmark = pytest.mark.timeout(150)


@pytest.fixture
def private_redis() -> Iterator[LocalRedis]:
    """A redis-server of this test's own, with an append-only file that survives a restart."""
    with LocalRedis(persist=True) as server:
        yield server


def test_the_worker_rides_out_a_redis_restart_and_the_job_completes(
        spawn, private_redis: LocalRedis, prefix: str, models_dir) -> None:
    client = redis.Redis.from_url(private_redis.url)
    queue = JobQueue(client, Keys(prefix))
    registry = Registry(client, Keys(prefix), DirectoryStore(models_dir))
    worker = spawn("survivor", claim_timeout_s=5.0, redis_url_=private_redis.url)
    job = queue.submit(resolve("ch3", {"train_size": 20_000, "epochs": 5, "model": "restart"}))
    wait_until(lambda: epochs_reported(queue, job.id), 90, "a first epoch")

    private_redis.shutdown()
    # Down until an epoch's checkpoint or progress write has had to wait for it.
    wait_until(lambda: any(line["message"] == "redis unavailable" and line.get("job") == job.id
                           for line in worker.log()), 60, "a job write to wait for Redis")
    private_redis.start()
    wait_until(lambda: queue.get(job.id).state.final, 90, "the job to end")

    f = figures(queue, registry, job.id)
    warnings = Counter(line["message"] for line in worker.log() if line["level"] == "WARNING")
    print("FIGURES redis restart:", f, f"warnings during the outage: {dict(warnings)}")
    assert f["outcome"] == "succeeded", f["error"]
    assert f["attempts"] == 1 and f["workers"] == ["survivor"]
    assert sorted(set(epochs_reported(queue, job.id))) == [1, 2, 3, 4, 5]
    assert f["versions_published"] == 1
    assert worker.metric("nndl_trainer_redis_errors_total") > 0
    client.close()
