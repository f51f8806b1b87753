"""Settings of the trainer daemon: built once from the environment and flags.

Every default is here. Environment variables are `NNDL_<FIELD>` (upper case);
`REDIS_URL` is honoured too, as most platforms set it.
"""

from __future__ import annotations

import argparse
import os
import socket
import uuid
from dataclasses import dataclass, fields

import redis

from nndl.trainer.keys import Keys
from nndl.trainer.queue import DEFAULT_MAX_WAITING, DEFAULT_RECORD_TTL_S, JobQueue
from nndl.trainer.registry import DirectoryStore, RedisStore, Registry


@dataclass(frozen=True)
class RegistrySettings:
    """Redis, the job queue's bounds and the model store: shared by trainer and server."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "nndl"
    registry_store: str = "dir"  # dir | redis
    registry_dir: str = "./var/models"
    record_ttl_s: int = DEFAULT_RECORD_TTL_S  # finished job records and events expire after this
    max_waiting: int = DEFAULT_MAX_WAITING  # jobs waiting for a worker; more are refused

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, socket_timeout=30,
                                    socket_connect_timeout=5, health_check_interval=15)

    def keys(self) -> Keys:
        return Keys(self.prefix)

    def registry(self, client: redis.Redis) -> Registry:
        if self.registry_store == "redis":
            store = RedisStore(client, self.keys())
        elif self.registry_store == "dir":
            store = DirectoryStore(self.registry_dir)
        else:
            raise ValueError(f"registry_store must be dir or redis, not {self.registry_store!r}")
        return Registry(client, self.keys(), store)

    def queue(self, client: redis.Redis) -> JobQueue:
        return JobQueue(client, self.keys(), record_ttl_s=self.record_ttl_s,
                        max_waiting=self.max_waiting)


@dataclass(frozen=True)
class TrainerSettings(RegistrySettings):
    """The worker daemon. The heartbeat refreshes a claim every claim_timeout_s / 4."""

    worker_id: str = ""  # default: host-pid-random
    mnist_path: str = ""  # a local mnist.pkl.gz; default: the cache, then download
    cache_dir: str = ""  # default: $XDG_CACHE_HOME/nndl
    mnist_mirrors: str = ""  # comma-separated: URLs of mnist.pkl.gz or of folders of IDX files
    claim_timeout_s: float = 60.0  # a held job idle this long is taken by another worker
    max_attempts: int = 3  # attempts that end without a result before the job fails
    metrics_port: int = 0  # 0: no metrics endpoint
    block_ms: int = 2000  # how long an idle worker waits on the stream per poll
    reconnect_max_s: float = 10.0  # the longest wait between tries to reach Redis
    log_level: str = "INFO"

    def resolved_worker_id(self) -> str:
        return self.worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"

    def mirror_list(self) -> list[str]:
        return [m.strip() for m in self.mnist_mirrors.split(",") if m.strip()]


def from_env_and_args(cls, argv: list[str] | None, description: str):
    """Builds a settings dataclass: defaults < environment < command-line flags."""
    values = {}
    for f in fields(cls):
        env = os.environ.get(f"NNDL_{f.name.upper()}")
        if f.name == "redis_url" and env is None:
            env = os.environ.get("REDIS_URL")
        if env is not None:
            values[f.name] = _convert(f.type, env, f"NNDL_{f.name.upper()}")
    parser = argparse.ArgumentParser(description=description)
    for f in fields(cls):
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, default=None,
                            help=f"default {values.get(f.name, f.default)!r} "
                                 f"(env NNDL_{f.name.upper()})")
    args = parser.parse_args(argv)
    for f in fields(cls):
        raw = getattr(args, f.name)
        if raw is not None:
            values[f.name] = _convert(f.type, raw, f"--{f.name.replace('_', '-')}")
    try:
        return cls(**values)
    except ValueError as e:  # a setting's own check: one line, no traceback
        raise SystemExit(f"{parser.prog}: {e}") from None


def _convert(annotation, raw: str, where: str):
    kind = annotation if isinstance(annotation, str) else annotation.__name__
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            return raw.strip().lower() in ("1", "true", "yes", "on")
    except ValueError:
        raise SystemExit(f"{where}: {raw!r} is not a valid {kind}") from None
    return raw
