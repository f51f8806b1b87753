"""Dynamic batching: concurrent single-image requests share one forward pass.

A forward pass over 32 images costs little more than over one, while each pass pays
Python and numpy call overhead. So request threads queue their image and wait; one
batcher thread takes whatever is queued (up to `max_batch`, waiting at most `max_wait_s`
for more after the first), runs each model's images together and hands back the rows.
Requests whose deadline passed while queued are answered without running them.

>>> import numpy as np
>>> uniform = lambda model, x: np.full((len(x), 10), 0.1, np.float32)  # (B, 784) -> (B, 10)
>>> b = Batcher(uniform, max_batch=8, max_wait_s=0.001, max_queued=100)
>>> b.start()
>>> b.classify("some model", np.zeros(784, np.float32), timeout_s=5.0).shape
(10,)
>>> b.stop()
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import numpy as np

from nndl.server.errors import DeadlineExceededError
from nndl.trainer.errors import OverloadedError

log = logging.getLogger(__name__)


Forward = Callable[[Any, np.ndarray], np.ndarray]  # (model, (B, 784)) -> (B, 10)


class _Pending:
    __slots__ = ("model", "x", "deadline", "future")

    def __init__(self, model: Any, x: np.ndarray, deadline: float | None) -> None:
        self.model, self.x, self.deadline = model, x, deadline
        self.future: Future[np.ndarray] = Future()


class Batcher:
    """One thread batching single images for every model; `classify` is thread-safe."""

    def __init__(self, forward: Forward, max_batch: int, max_wait_s: float,
                 max_queued: int) -> None:
        if max_batch < 1 or max_queued < 1 or max_wait_s < 0:
            raise ValueError("max_batch and max_queued must be at least 1, max_wait_s >= 0")
        self.max_batch, self.max_wait_s, self.max_queued = max_batch, max_wait_s, max_queued
        self.forward = forward
        self._queue: deque[_Pending] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def queued(self) -> int:
        return len(self._queue)

    def classify(self, model: Any, x: np.ndarray, timeout_s: float | None) -> np.ndarray:
        """(784,) -> (10,) probabilities; raises OverloadedError or DeadlineExceededError."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        pending = _Pending(model, x, deadline)
        with self._cond:
            if self._stopping:
                raise OverloadedError("the server is shutting down")
            if len(self._queue) >= self.max_queued:
                raise OverloadedError(
                    f"{self.max_queued} images are queued for classification; retry later")
            self._queue.append(pending)
            if len(self._queue) == 1 or len(self._queue) >= self.max_batch:
                self._cond.notify()
        try:
            return pending.future.result(timeout=timeout_s)
        except FutureTimeout:
            pending.future.cancel()  # so the batcher skips it if it is still queued
            raise DeadlineExceededError("the deadline passed before the answer was ready") from None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True, name="batcher")
        self._thread.start()

    def stop(self) -> None:
        """Answers what is queued, then ends the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _take(self) -> list[_Pending]:
        """Blocks for the first image, then gathers more for up to max_wait_s."""
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if self.max_wait_s and not self._stopping:
                until = time.monotonic() + self.max_wait_s
                while len(self._queue) < self.max_batch and (left := until - time.monotonic()) > 0:
                    self._cond.wait(left)
            n = min(len(self._queue), self.max_batch)
            return [self._queue.popleft() for _ in range(n)]

    def _run(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                return  # stopping, and nothing is left
            by_model: dict[int, list[_Pending]] = {}
            now = time.monotonic()
            for p in batch:
                if not p.future.set_running_or_notify_cancel():
                    continue  # its caller gave up
                if p.deadline is not None and p.deadline <= now:
                    p.future.set_exception(DeadlineExceededError(
                        "the deadline passed while the image was queued"))
                else:
                    by_model.setdefault(id(p.model), []).append(p)
            for group in by_model.values():
                self._forward(group)

    def _forward(self, group: list[_Pending]) -> None:
        model = group[0].model
        try:
            probs = self.forward(model, np.stack([p.x for p in group]))  # (B, 10)
        except Exception as e:  # a model that fails must fail its requests, not this thread
            log.exception("forward pass of %d images failed", len(group))
            for p in group:
                p.future.set_exception(e)
            return
        for p, row in zip(group, probs, strict=True):
            p.future.set_result(row)
