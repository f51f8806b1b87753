"""The model registry: immutable numbered versions, aliases, and notifications.

The index (versions, aliases, which job made which version) lives in Redis; the
documents live in a `BlobStore`: a directory (the embedded default) or Redis itself
(for servers on other machines). Version numbers come from one INCR, so workers
publishing at once never collide, and a job id maps to at most one version, so a
retried job never publishes twice.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import redis

from nndl.trainer import model_format
from nndl.trainer.errors import InvalidArgumentError, NotFoundError
from nndl.trainer.keys import Keys

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
LATEST = "latest"


class BlobStore(Protocol):
    def put(self, name: str, version: int, data: bytes) -> None: ...
    def get(self, name: str, version: int) -> bytes: ...
    def delete(self, name: str, version: int) -> None: ...


class DirectoryStore:
    """`<root>/<name>/<version>/model.json`, written to a temporary file, fsynced, renamed."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def path(self, name: str, version: int) -> Path:
        return self.root / name / str(version) / "model.json"

    def put(self, name: str, version: int, data: bytes) -> None:
        target = self.path(name, version)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".model.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)  # atomic: readers see no file or the whole file
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def get(self, name: str, version: int) -> bytes:
        try:
            return self.path(name, version).read_bytes()
        except FileNotFoundError:
            raise NotFoundError(
                f"model {name} version {version} has no file in {self.root}"
            ) from None

    def delete(self, name: str, version: int) -> None:
        self.path(name, version).unlink(missing_ok=True)


class RedisStore:
    """Documents as Redis strings: one SET is atomic, and every server can reach it."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client, self.keys = client, keys

    def put(self, name: str, version: int, data: bytes) -> None:
        self.client.set(self.keys.model_blob(name, version), data)

    def get(self, name: str, version: int) -> bytes:
        data = self.client.get(self.keys.model_blob(name, version))
        if data is None:
            raise NotFoundError(f"model {name} version {version} is not in the Redis store")
        return data

    def delete(self, name: str, version: int) -> None:
        self.client.delete(self.keys.model_blob(name, version))


@dataclass(frozen=True)
class VersionSummary:
    version: int
    created_at: float
    validation_accuracy: float
    test_accuracy: float
    job_id: str
    preset: str
    networks: int


def parse_ref(ref: str) -> tuple[str, str]:
    """'name', 'name@3' or 'name@alias' -> (name, selector); selector 'latest' by default."""
    name, _, selector = ref.strip().partition("@")
    if not NAME.match(name):
        raise InvalidArgumentError(
            f"model name {name!r} is not valid: use 1 to 64 of a-z, 0-9 and '-'"
        )
    return name, selector or LATEST


class Registry:
    """Publishes, finds and loads model versions."""

    def __init__(self, client: redis.Redis, keys: Keys, store: BlobStore) -> None:
        self.client, self.keys, self.store = client, keys, store

    # -- publishing

    def publish(
        self, name: str, networks: list, lineage: dict, job_id: str = ""
    ) -> int:
        """Stores a new version and returns its number; the same job id returns the same one."""
        if not NAME.match(name):
            raise InvalidArgumentError(f"model name {name!r} is not valid")
        k = self.keys
        if job_id:
            existing = self.client.hget(k.model_by_job(name), job_id)
            if existing is not None:
                return int(existing)
        version = int(self.client.incr(k.model_next_version(name)))
        created = time.time()
        doc = model_format.to_document(networks, lineage, name, version, created)
        self.store.put(name, version, model_format.dumps(doc))
        summary = {
            "version": version, "created_at": created,
            "validation_accuracy": float(lineage.get("validation_accuracy", 0.0) or 0.0),
            "test_accuracy": float(lineage.get("test_accuracy", 0.0) or 0.0),
            "job_id": job_id, "preset": str(lineage.get("spec", {}).get("preset", "")),
            "networks": len(networks),
        }
        if job_id and not self.client.hsetnx(k.model_by_job(name), job_id, version):
            # Another attempt of the same job published first: keep its version.
            self.store.delete(name, version)
            return int(self.client.hget(k.model_by_job(name), job_id))
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(k.model_versions(name), str(version), json.dumps(summary))
        pipe.sadd(k.models, name)
        pipe.execute()
        self._announce({"event": "version", "model": name, "version": version})
        return version

    def _announce(self, event: dict) -> None:
        self.client.publish(self.keys.registry_channel, json.dumps(event))

    # -- finding

    def names(self) -> list[str]:
        return sorted(m.decode() if isinstance(m, bytes) else m
                      for m in self.client.smembers(self.keys.models))

    def versions(self, name: str) -> list[VersionSummary]:
        raw = self.client.hgetall(self.keys.model_versions(name))
        out = [VersionSummary(**json.loads(v)) for v in raw.values()]
        return sorted(out, key=lambda s: s.version)

    def aliases(self, name: str) -> dict[str, int]:
        raw = self.client.hgetall(self.keys.model_aliases(name))
        return {_text(a): int(v) for a, v in raw.items()}

    def resolve(self, ref: str) -> tuple[str, int]:
        """The (name, version) a reference means now; NotFoundError when there is none."""
        name, selector = parse_ref(ref)
        if selector == LATEST:
            versions = self.client.hkeys(self.keys.model_versions(name))
            if not versions:
                raise NotFoundError(f"there is no model named {name!r}")
            return name, max(int(v) for v in versions)
        if selector.isdigit():
            version = int(selector)
            if not self.client.hexists(self.keys.model_versions(name), str(version)):
                raise NotFoundError(f"model {name!r} has no version {version}")
            return name, version
        target = self.client.hget(self.keys.model_aliases(name), selector)
        if target is None:
            raise NotFoundError(f"model {name!r} has no alias {selector!r}")
        return name, int(target)

    def load(self, name: str, version: int) -> model_format.ModelDocument:
        data = self.store.get(name, version)
        return model_format.parse(data, where=f"{name} version {version}")

    # -- aliases

    def set_alias(self, name: str, alias: str, version: int) -> None:
        if not NAME.match(alias) or alias == LATEST or alias.isdigit():
            raise InvalidArgumentError(
                f"alias {alias!r} is not valid: use a-z, 0-9 and '-', not a number or 'latest'"
            )
        self.resolve(f"{name}@{version}")
        self.client.hset(self.keys.model_aliases(name), alias, version)
        self._announce({"event": "alias", "model": name, "alias": alias, "version": version})

    def delete_alias(self, name: str, alias: str) -> None:
        if not self.client.hdel(self.keys.model_aliases(name), alias):
            raise NotFoundError(f"model {name!r} has no alias {alias!r}")
        self._announce({"event": "alias", "model": name, "alias": alias, "version": 0})

    def promote_if_better(self, name: str, alias: str, version: int) -> bool:
        """Moves `alias` to `version` only when its validation accuracy beats the holder's."""
        summaries = {s.version: s for s in self.versions(name)}
        current = self.aliases(name).get(alias)
        new = summaries[version].validation_accuracy
        if current in summaries and new <= summaries[current].validation_accuracy:
            return False
        self.set_alias(name, alias, version)
        return True


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v
