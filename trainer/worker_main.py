"""`nndl-trainer`: the trainer daemon's entry point.

Logs are JSON lines on stderr (`{"time", "level", "logger", "message", "job", ...}`),
so every line about a job can be found by its id. SIGTERM or SIGINT: the running
job is checkpointed at the end of its epoch and handed back, then the worker exits;
a second signal ends it at once.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from typing import Any

from nndl.trainer.data import load_mnist
from nndl.trainer.errors import NndlError
from nndl.trainer.metrics import TrainerMetrics, serve_metrics
from nndl.trainer.settings import TrainerSettings, from_env_and_args
from nndl.trainer.worker import Worker

# Attributes every LogRecord has; anything else came in through `extra=` and is logged.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: the message plus the record's `extra` fields."""

    def __init__(self, worker_id: str) -> None:
        super().__init__()
        self.worker_id = worker_id

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": round(record.created, 3), "level": record.levelname,
            "logger": record.name, "worker": self.worker_id, "message": record.getMessage(),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def main(argv: list[str] | None = None) -> int:
    s: TrainerSettings = from_env_and_args(
        TrainerSettings, argv, "Trains jobs from the nndl queue and publishes the models.")
    worker_id = s.resolved_worker_id()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(worker_id))
    logging.basicConfig(level=s.log_level.upper(), handlers=[handler])
    log = logging.getLogger("nndl.trainer")
    metrics = TrainerMetrics()
    try:
        client = s.redis()
        if s.metrics_port:
            serve_metrics(s.metrics_port, metrics.registry)
        registry = s.registry(client)
    except (OSError, ValueError) as e:  # a port in use, an unknown store: say it in one line
        log.error("worker cannot start", extra={"error": str(e)})
        return 1
    worker = Worker(
        queue=s.queue(client),
        registry=registry,
        mnist=lambda: load_mnist(s.mnist_path or None, s.cache_dir or None, s.mirror_list()),
        worker_id=worker_id,
        claim_timeout_s=s.claim_timeout_s,
        max_attempts=s.max_attempts,
        block_ms=s.block_ms,
        reconnect_max_s=s.reconnect_max_s,
        metrics=metrics,
    )

    def stop(signum: int, _frame: object) -> None:
        log.info("stopping: the running job is handed back after its epoch",
                 extra={"signal": signum})
        worker.stopping.set()
        signal.signal(signum, signal.SIG_DFL)  # a second signal ends the process at once

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    started = time.monotonic()
    where = client.connection_pool.connection_kwargs  # not the URL: it may hold a password
    log.info("worker started", extra={"redis": f"{where.get('host')}:{where.get('port')}",
                                      "prefix": s.prefix,
                                      "claim_timeout_s": s.claim_timeout_s,
                                      "metrics_port": s.metrics_port})
    try:
        worker.run()
    except NndlError as e:  # no data: nothing this worker could train
        log.error("worker cannot work", extra={"error": str(e), "code": e.code})
        return 1
    log.info("worker stopped", extra={"uptime_s": round(time.monotonic() - started, 1)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
