"""Worker processes for fault tests: real `python -m nndl.trainer.worker_main` daemons.

Each runs with the test's Redis and key prefix, its own worker id, log file and
metrics port, one BLAS thread (the test machine is small and shared), and is killed
at the end of the test if it is still alive.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from nndl.trainer.keys import Keys
from nndl.trainer.local_redis import free_port
from nndl.trainer.queue import JobQueue
from nndl.trainer.registry import DirectoryStore, Registry
from tests.conftest import MNIST_PATH


@dataclass
class WorkerProcess:
    name: str
    process: subprocess.Popen
    log_path: Path
    metrics_port: int

    def log(self) -> list[dict]:
        lines = self.log_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def kill(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample on the worker's metrics endpoint."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v
                                               for k, v in labels.items()):
                    return sample.value
        raise AssertionError(f"no sample {name} {labels} on {url}")


def wait_until(predicate: Callable[[], object], timeout_s: float, what: str) -> None:
    """Polls `predicate` until it is true; fails naming `what` after the deadline."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    return tmp_path / "models"


@pytest.fixture
def spawn(redis_url: str, prefix: str, tmp_path: Path,
          models_dir: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Starts a worker process: spawn(name, claim_timeout_s=2.0, redis_url=None)."""
    if not MNIST_PATH.is_file():
        pytest.skip(f"MNIST not found at {MNIST_PATH}")
    started: list[WorkerProcess] = []

    def start(name: str, claim_timeout_s: float = 2.0, redis_url_: str = "") -> WorkerProcess:
        port = free_port()
        env = {
            **os.environ,
            "NNDL_REDIS_URL": redis_url_ or redis_url, "NNDL_PREFIX": prefix,
            "NNDL_REGISTRY_DIR": str(models_dir), "NNDL_MNIST_PATH": str(MNIST_PATH),
            "NNDL_CLAIM_TIMEOUT_S": str(claim_timeout_s), "NNDL_BLOCK_MS": "200",
            "NNDL_RECONNECT_MAX_S": "1", "NNDL_WORKER_ID": name,
            "NNDL_METRICS_PORT": str(port),
            "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        }
        log_path = tmp_path / f"{name}.log"
        with log_path.open("w") as log_file:
            process = subprocess.Popen([sys.executable, "-m", "nndl.trainer.worker_main"],
                                       env=env, stdout=subprocess.DEVNULL, stderr=log_file)
        worker = WorkerProcess(name, process, log_path, port)
        started.append(worker)
        return worker

    yield start
    for w in started:
        if w.process.poll() is None:
            w.process.kill()
        w.process.wait(timeout=10)


@pytest.fixture
def queue(rclient: redis.Redis, prefix: str) -> JobQueue:
    return JobQueue(rclient, Keys(prefix))


@pytest.fixture
def registry(rclient: redis.Redis, prefix: str, models_dir: Path) -> Registry:
    return Registry(rclient, Keys(prefix), DirectoryStore(models_dir))


def epochs_reported(queue: JobQueue, job_id: str, worker: str = "") -> list[int]:
    """Epochs the job reported so far, by any worker or by the one that started last."""
    holder, out = "", []
    for e in queue.history(job_id):
        if e["kind"] == "started":
            holder = e["worker"]
        elif e["kind"] == "epoch" and (not worker or holder == worker):
            out.append(e["progress"]["epoch"])
    return out


def figures(queue: JobQueue, registry: Registry, job_id: str) -> dict:
    """What a fault did to a job: outcome, attempts, resumptions, epochs redone, versions."""
    job = queue.get(job_id)
    history = queue.history(job_id)
    starts = [e for e in history if e["kind"] == "started"]
    epochs = [(e["progress"]["member"], e["progress"]["epoch"])
              for e in history if e["kind"] == "epoch"]
    model = job.spec["model"]
    return {
        "outcome": job.state.value, "attempts": job.attempts, "handbacks": job.handbacks,
        "workers": [e["worker"] for e in starts],
        "resumed_from_epoch": [e["resumed_from_epoch"] for e in starts],
        "epochs_reported": len(epochs), "epochs_redone": len(epochs) - len(set(epochs)),
        "versions_published": len(registry.versions(model)),
        "error": job.error,
    }
