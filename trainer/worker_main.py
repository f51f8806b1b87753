"""`nndl-trainer`: the trainer daemon's entry point."""

from __future__ import annotations

import logging
import signal
import sys

from prometheus_client import start_http_server

from nndl.trainer.data import load_mnist
from nndl.trainer.metrics import TrainerMetrics
from nndl.trainer.queue import JobQueue
from nndl.trainer.settings import TrainerSettings, from_env_and_args
from nndl.trainer.worker import Worker


def main(argv: list[str] | None = None) -> int:
    s: TrainerSettings = from_env_and_args(
        TrainerSettings, argv, "Trains jobs from the nndl queue and publishes the models.")
    logging.basicConfig(level=s.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s trainer %(message)s")
    client = s.redis()
    metrics = TrainerMetrics()
    if s.metrics_port:
        start_http_server(s.metrics_port, registry=metrics.registry)
    worker = Worker(
        queue=JobQueue(client, s.keys(), record_ttl_s=s.record_ttl_s),
        registry=s.registry(client),
        mnist=lambda: load_mnist(s.mnist_path or None, s.cache_dir or None, s.mirror_list()),
        worker_id=s.resolved_worker_id(),
        claim_timeout_s=s.claim_timeout_s,
        max_attempts=s.max_attempts,
        block_ms=s.block_ms,
        metrics=metrics,
    )

    def stop(signum: int, _frame) -> None:
        logging.info("signal %d: finishing the epoch, then handing the job back", signum)
        worker.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logging.info("worker %s started (redis %s, prefix %s)", worker.worker_id,
                 s.redis_url, s.prefix)
    worker.run()
    logging.info("worker %s stopped", worker.worker_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
