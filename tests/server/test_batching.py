"""The batcher: concurrent images share passes, overload and deadlines are refused cleanly."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from nndl.server.batching import Batcher
from nndl.server.errors import DeadlineExceededError
from nndl.trainer.errors import OverloadedError


class SlowModel:
    """Answers row i with digit (first pixel * 10), after a pause that lets a queue build."""

    def __init__(self, pause_s: float) -> None:
        self.pause_s = pause_s
        self.batches: list[int] = []
        self.gate = threading.Event()
        self.gate.set()

    def forward(self, model: object, x: np.ndarray) -> np.ndarray:
        self.gate.wait()
        time.sleep(self.pause_s)
        self.batches.append(len(x))
        return np.eye(10, dtype=np.float32)[(x[:, 0] * 10).astype(int)]


@pytest.fixture
def slow() -> SlowModel:
    return SlowModel(pause_s=0.005)


def _image(digit: int) -> np.ndarray:
    x = np.zeros(784, np.float32)
    x[0] = digit / 10
    return x


def test_concurrent_images_share_passes_and_each_gets_its_own_row(slow) -> None:
    b = Batcher(slow.forward, max_batch=16, max_wait_s=0.0, max_queued=1000)
    b.start()
    try:
        with ThreadPoolExecutor(32) as pool:
            answers = list(pool.map(lambda i: b.classify("m", _image(i % 10), 5.0).argmax(),
                                    range(320)))
    finally:
        b.stop()
    assert answers == [i % 10 for i in range(320)]
    assert sum(slow.batches) == 320 and max(slow.batches) <= 16
    assert len(slow.batches) < 320 / 4  # mostly shared passes


def test_too_much_queued_is_refused_and_expired_images_are_skipped(slow) -> None:
    b = Batcher(slow.forward, max_batch=4, max_wait_s=0.0, max_queued=8)
    b.start()
    slow.gate.clear()  # hold the batcher inside its first pass
    outcomes: list[object] = []
    try:
        with ThreadPoolExecutor(16) as pool:
            first = pool.submit(b.classify, "m", _image(1), 5.0)
            time.sleep(0.05)  # the first image is in the pass now; fill the queue
            queued = [pool.submit(b.classify, "m", _image(2), 0.1) for _ in range(8)]
            time.sleep(0.05)
            with pytest.raises(OverloadedError, match="8 images are queued"):
                b.classify("m", _image(3), 5.0)
            time.sleep(0.1)  # the queued ones' deadlines pass while the pass is held
            slow.gate.set()
            for f in queued:
                try:
                    outcomes.append(f.result())
                except DeadlineExceededError as e:
                    outcomes.append(e)
            assert first.result().argmax() == 1
    finally:
        b.stop()
    assert all(isinstance(o, DeadlineExceededError) for o in outcomes)
    assert sum(slow.batches) == 1  # none of the expired images was run


def test_a_failing_model_fails_its_requests_not_the_batcher() -> None:
    def forward(model: str, x: np.ndarray) -> np.ndarray:
        if model == "broken":
            raise RuntimeError("boom")
        return np.full((len(x), 10), 0.1, np.float32)

    b = Batcher(forward, max_batch=8, max_wait_s=0.0, max_queued=10)
    b.start()
    try:
        with pytest.raises(RuntimeError, match="boom"):
            b.classify("broken", _image(0), 5.0)
        assert b.classify("fine", _image(0), 5.0).shape == (10,)
    finally:
        b.stop()
