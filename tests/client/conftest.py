"""One server, worker and trained model shared by a whole test module, to keep time down.

The shared fixtures of tests/conftest.py are per test; training a model per test would
cost seconds each, so the client tests build the same parts once per module here.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import redis
from PIL import Image

from nndl.client import DigitsClient
from nndl.server.settings import ServerSettings
from nndl.trainer.data import Mnist
from tests.conftest import MNIST_PATH

TINY_JOB = {"epochs": 2, "train_size": 3000, "init": "scaled"}


@dataclass(frozen=True)
class Live:
    address: str
    job_id: str  # a succeeded job that published "mnist" version 1
    mnist_path: str
    settings: ServerSettings  # of the server, for tests that reach behind it


@pytest.fixture(scope="module")
def live(redis_url: str, mnist: Mnist, tmp_path_factory: pytest.TempPathFactory,
         ) -> Iterator[Live]:
    from nndl.server.app import build
    from nndl.trainer.queue import JobQueue
    from nndl.trainer.worker import Worker

    prefix = f"nndl-test-{uuid.uuid4().hex[:10]}"
    settings = ServerSettings(redis_url=redis_url, prefix=prefix, port=0, metrics_port=0,
                              registry_dir=str(tmp_path_factory.mktemp("models")),
                              refresh_s=0.2)
    running = build(settings)
    client = settings.redis()
    worker = Worker(JobQueue(client, settings.keys()), settings.registry(client),
                    lambda: mnist, worker_id=f"test-worker-{uuid.uuid4().hex[:6]}",
                    claim_timeout_s=30, block_ms=100)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    address = f"127.0.0.1:{running.port}"
    try:
        with DigitsClient(address) as c:
            job = c.submit("ch3", **TINY_JOB)
            final = c.wait(job.id, timeout=120)
            assert final.result.version == 1, final.error
        yield Live(address, job.id,
                   str(MNIST_PATH), settings)
    finally:
        worker.stopping.set()
        thread.join(timeout=60)
        running.stop(1.0)
        client.close()
        with redis.Redis.from_url(redis_url) as r:
            keys = list(r.scan_iter(match=f"{prefix}:*", count=1000))
            if keys:
                r.delete(*keys)


@pytest.fixture(scope="module")
def digit_files(mnist: Mnist, tmp_path_factory: pytest.TempPathFactory,
                ) -> tuple[Path, list[int]]:
    """Eight MNIST test digits as black-on-white PNGs, some in a subfolder."""
    folder = tmp_path_factory.mktemp("digits")
    x, y = mnist.test
    labels = []
    for i in range(8):
        where = folder / "more" if i >= 4 else folder
        where.mkdir(exist_ok=True)
        pixels = (255 - x[i].reshape(28, 28) * 255).round().astype(np.uint8)
        Image.fromarray(pixels, "L").save(where / f"digit-{i}.png")
        labels.append(int(y[i]))
    return folder, labels
