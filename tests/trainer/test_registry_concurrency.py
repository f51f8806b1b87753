"""The registry under real concurrency: several processes, one real Redis, both stores."""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

import pytest
import redis

from nndl.trainer import model_format
from nndl.trainer.errors import NotFoundError
from nndl.trainer.keys import Keys
from nndl.trainer.nn.layers import Dense
from nndl.trainer.nn.network import Network
from nndl.trainer.registry import DirectoryStore, RedisStore, Registry

PROCESSES = 8
# fork, not spawn: eight spawned children would each import numpy again (seconds on a
# shared 2-core machine). The children open their own Redis connections and take no lock
# an earlier test's thread could hold, so Python 3.12's warning about forking a process
# with threads does not apply here.
FORK = mp.get_context("fork")
pytestmark = pytest.mark.filterwarnings(
    r"ignore:This process .* is multi-threaded, use of fork\(\):DeprecationWarning")


def _registry(store: str, redis_url: str, prefix: str, root: str) -> Registry:
    client = redis.Redis.from_url(redis_url)
    keys = Keys(prefix)
    blobs = DirectoryStore(root) if store == "dir" else RedisStore(client, keys)
    return Registry(client, keys, blobs)


def _networks(seed: int, hidden: int = 8) -> list:
    net = Network([Dense(784, hidden), Dense(hidden, 10)], "cross_entropy")
    net.init_params(seed=seed)
    return [(net.config(), net.parameters())]


def _publisher(where: tuple, barrier, results, worker: int, count: int, job_ids: list) -> None:
    """Publishes `count` versions (with the given job ids, or none) once all are ready.

    Every attempt reports, a failure as its message, so a failing test fails fast.
    """
    registry = _registry(*where)
    barrier.wait(timeout=30)
    for i in range(count):
        job_id = job_ids[i] if job_ids else ""
        try:
            version = registry.publish("m", _networks(worker * 100 + i), {"worker": worker},
                                       job_id=job_id)
        except Exception as e:  # noqa: BLE001 - reported to the test, which fails on it
            version = f"{type(e).__name__}: {e}"
        results.put((worker, job_id, version))


def _run(where: tuple, jobs: list[list[str]], count: int) -> list[tuple]:
    barrier, results = FORK.Barrier(PROCESSES), FORK.Queue()
    procs = [FORK.Process(target=_publisher, args=(where, barrier, results, w, count, jobs[w]))
             for w in range(PROCESSES)]
    for p in procs:
        p.start()
    out = [results.get(timeout=60) for _ in range(PROCESSES * count)]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    failures = [v for _, _, v in out if not isinstance(v, int)]
    assert not failures, failures
    return out


@pytest.fixture(params=["dir", "redis"])
def where(request, redis_url, prefix, tmp_path) -> tuple:
    return request.param, redis_url, prefix, str(tmp_path / "models")


def test_processes_publishing_at_once_get_distinct_consecutive_versions(where) -> None:
    count = 3
    out = _run(where, [[] for _ in range(PROCESSES)], count)
    versions = sorted(v for _, _, v in out)
    assert versions == list(range(1, PROCESSES * count + 1))
    registry = _registry(*where)
    assert [s.version for s in registry.versions("m")] == versions
    assert registry.resolve("m") == ("m", PROCESSES * count)
    for v in versions:
        assert registry.load("m", v).version == v


def test_two_attempts_of_each_job_racing_leave_one_version_each(where) -> None:
    """Pairs of processes publish the same jobs, as after a claimed-over worker."""
    jobs = [[f"job-{w // 2}-{i}" for i in range(2)] for w in range(PROCESSES)]
    out = _run(where, jobs, count=2)
    by_job: dict[str, set[int]] = {}
    for _, job_id, version in out:
        by_job.setdefault(job_id, set()).add(version)
    assert all(len(v) == 1 for v in by_job.values()), by_job
    versions = sorted(v for (v,) in by_job.values())
    assert versions == list(range(1, PROCESSES + 1))  # no gap, no orphan
    registry = _registry(*where)
    assert [s.version for s in registry.versions("m")] == versions
    for job_id, (version,) in by_job.items():
        assert registry.load("m", version).lineage["job_id"] == job_id
        assert registry.summary("m", version).job_id == job_id
    if where[0] == "dir":  # nothing left behind by the attempt that lost
        assert sorted(p.name for p in Path(where[3], "m").rglob("*") if p.is_file()) == [
            "model.json"] * PROCESSES


def _slow_publisher(where: tuple, count: int) -> None:
    registry = _registry(*where)
    for i in range(count):
        registry.publish("m", _networks(i, hidden=100), {})  # ~420 kB each


def test_a_reader_polling_during_publication_never_reads_a_partial_file(where) -> None:
    count = 12
    registry = _registry(*where)
    writer = FORK.Process(target=_slow_publisher, args=(where, count))
    writer.start()
    read, missing, deadline = set(), 0, time.monotonic() + 60
    while len(read) < count and time.monotonic() < deadline:
        for version in range(1, count + 1):
            if version in read:
                continue
            try:
                data = registry.store.get("m", version)
            except NotFoundError:
                missing += 1
                continue
            model_format.parse(data, where=f"version {version}")  # raises if partial
            read.add(version)
        try:
            name, latest = registry.resolve("m")
        except NotFoundError:
            continue
        registry.load(name, latest)  # an indexed version is always whole
    writer.join(timeout=30)
    assert writer.exitcode == 0
    assert read == set(range(1, count + 1))
    assert missing > 0  # the reader really did poll while versions were being written
