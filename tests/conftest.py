"""Fixtures shared by every test: a real Redis, a private key prefix, MNIST, a server.

Redis: REDIS_URL when set; else the server on 127.0.0.1:6379 when one answers; else a
private redis-server started for the session. Each test gets its own key prefix and
its keys are deleted afterwards, so tests never see each other's data.
"""

from __future__ import annotations

import os

# One BLAS thread per process: at mini-batch 10 a second thread only waits, and on a busy
# two-core machine the threads' spinning made training several times slower. Set before
# numpy is first imported; worker processes that tests start inherit it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from nndl.trainer.data import Mnist, load_mnist
from nndl.trainer.local_redis import LocalRedis

REPO = Path(__file__).resolve().parents[1]
# MNIST for the tests: NNDL_MNIST_PATH, else the copy kept beside the repository.
MNIST_PATH = Path(os.environ.get("NNDL_MNIST_PATH")
                  or REPO.parent / "shared" / "data" / "mnist.pkl.gz")


def _reachable(url: str) -> bool:
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=1) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("REDIS_URL", "")
    if url:
        yield url
        return
    if _reachable("redis://127.0.0.1:6379/0"):
        yield "redis://127.0.0.1:6379/0"
        return
    with LocalRedis() as local:
        yield local.url


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    p = f"nndl-test-{uuid.uuid4().hex[:10]}"
    yield p
    with redis.Redis.from_url(redis_url) as client:
        keys = list(client.scan_iter(match=f"{p}:*", count=1000))
        if keys:
            client.delete(*keys)


@pytest.fixture
def rclient(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url) as client:
        yield client


@pytest.fixture(scope="session")
def mnist() -> Mnist:
    if not MNIST_PATH.is_file():
        pytest.skip(f"MNIST not found at {MNIST_PATH}; set NNDL_MNIST_PATH")
    return load_mnist(MNIST_PATH)


@pytest.fixture
def settings(redis_url: str, prefix: str, tmp_path: Path):
    """Server settings on a free port with this test's prefix and model folder."""
    from nndl.server.settings import ServerSettings

    return ServerSettings(redis_url=redis_url, prefix=prefix, port=0, metrics_port=0,
                          registry_dir=str(tmp_path / "models"), refresh_s=0.2)


@pytest.fixture
def server(settings):
    """A real gRPC server on loopback; yields (RunningServer, address)."""
    from nndl.server.app import build

    running = build(settings)
    yield running, f"127.0.0.1:{running.port}"
    running.stop(1.0)


@pytest.fixture
def worker(settings, mnist):
    """A trainer worker running in a thread of the test process."""
    from nndl.trainer.queue import JobQueue
    from nndl.trainer.worker import Worker

    client = settings.redis()
    w = Worker(JobQueue(client, settings.keys()), settings.registry(client), lambda: mnist,
               worker_id=f"test-worker-{uuid.uuid4().hex[:6]}", claim_timeout_s=30,
               block_ms=100)
    thread = threading.Thread(target=w.run, daemon=True)
    thread.start()
    yield w
    w.stopping.set()
    thread.join(timeout=60)
    client.close()
