"""The model registry: immutable numbered versions, aliases, and notifications.

The index (versions, aliases, which job made which version) lives in Redis; the
documents live in a `BlobStore`: a directory (the embedded default) or Redis itself
(for servers on other machines). Version numbers come from INCR, and a job id is tied
to its number in the same Lua script, so workers publishing at once never collide and
two attempts of one job fill one number, never two. Stores refuse to replace a
document, so a version once written is final.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import redis

from nndl.trainer import model_format
from nndl.trainer.errors import (
    InvalidArgumentError,
    ModelFormatError,
    NotFoundError,
    RegistryConflictError,
)
from nndl.trainer.keys import MODEL_NAME, Keys, text

LATEST = "latest"

# KEYS: by-job hash, next-version counter, versions hash. ARGV: job id.
# Returns {version, 1 if that version is already indexed else 0}.
_RESERVE_FOR_JOB = """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v then return {tonumber(v), redis.call('HEXISTS', KEYS[3], v)} end
v = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[1], v)
return {v, 0}
"""


class BlobStore(Protocol):
    """Where documents live. `put` never replaces: it raises FileExistsError instead."""

    def put(self, name: str, version: int, data: bytes) -> None: ...
    def get(self, name: str, version: int) -> bytes: ...


class DirectoryStore:
    """`<root>/<name>/<version>/model.json`: a temporary file, fsynced, then hard-linked.

    `os.link` is atomic like `rename`, so readers see no file or the whole file, and
    unlike `rename` it fails when the name exists, so a version is never overwritten.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def path(self, name: str, version: int) -> Path:
        """The document's path; a name that is not a model name never reaches the disk."""
        if not MODEL_NAME.match(name) or type(version) is not int or version < 1:
            raise InvalidArgumentError(f"model {name!r} version {version!r} is not a valid "
                                       "model name and version number")
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
            os.link(tmp, target)
        except FileExistsError:
            raise FileExistsError(f"model {name} version {version} already exists in "
                                  f"{self.root}; versions are never replaced") from None
        finally:
            Path(tmp).unlink(missing_ok=True)
        _fsync_dir(target.parent)  # the new name survives a power cut
        _fsync_dir(target.parent.parent)

    def get(self, name: str, version: int) -> bytes:
        try:
            with open(self.path(name, version), "rb") as f:
                _check_size(os.fstat(f.fileno()).st_size, name, version)
                return f.read()
        except FileNotFoundError:
            raise NotFoundError(
                f"model {name} version {version} has no file in {self.root}; is "
                "NNDL_REGISTRY_DIR the folder the trainers publish to?"
            ) from None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_size(size: int, name: str, version: int) -> None:
    """Refuses an oversized document before reading it into memory."""
    if size > model_format.MAX_DOCUMENT_BYTES:
        raise ModelFormatError(f"model {name} version {version}: {size} bytes is over the "
                               f"{model_format.MAX_DOCUMENT_BYTES} byte limit")


class RedisStore:
    """Documents as Redis strings: SET NX is atomic and never replaces a version."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client, self.keys = client, keys

    def put(self, name: str, version: int, data: bytes) -> None:
        if not self.client.set(self.keys.model_blob(name, version), data, nx=True):
            raise FileExistsError(f"model {name} version {version} already exists in the "
                                  "Redis store; versions are never replaced")

    def get(self, name: str, version: int) -> bytes:
        key = self.keys.model_blob(name, version)
        _check_size(int(self.client.strlen(key)), name, version)
        data = self.client.get(key)
        if data is None:
            raise NotFoundError(f"model {name} version {version} is not in the Redis store")
        return data


@dataclass(frozen=True)
class VersionSummary:
    """What the index keeps of a version, so listing needs no document loads."""

    version: int
    created_at: float
    validation_accuracy: float
    test_accuracy: float
    job_id: str
    preset: str
    networks: int


def _summary(version: int, created_at: float, lineage: dict, networks: int) -> VersionSummary:
    spec = lineage.get("spec")
    return VersionSummary(
        version=version, created_at=created_at,
        validation_accuracy=_accuracy(lineage.get("validation_accuracy")),
        test_accuracy=_accuracy(lineage.get("test_accuracy")),
        job_id=str(lineage.get("job_id", "")),
        preset=str(spec.get("preset", "")) if isinstance(spec, dict) else "",
        networks=networks)


def _accuracy(value: object) -> float:
    """Unmeasured (None, NaN) counts as 0, so it never wins a promotion."""
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return 0.0


def is_version(selector: str) -> bool:
    """ASCII digits only: Python's isdigit() also accepts '²' and other digit signs."""
    return selector.isascii() and selector.isdigit()


def parse_ref(ref: str) -> tuple[str, str]:
    """'name', 'name@3' or 'name@alias' -> (name, selector); selector 'latest' by default."""
    name, at, selector = ref.strip().partition("@")
    if not MODEL_NAME.match(name):
        raise InvalidArgumentError(
            f"model name {name!r} is not valid: use 1 to 64 of a-z, 0-9 and '-'"
        )
    if not at:
        return name, LATEST
    if not selector:
        raise InvalidArgumentError(
            f"model reference {ref!r} ends in '@': add a version number or an alias, "
            "or leave out the '@'"
        )
    if is_version(selector):
        if len(selector) > 18 or int(selector) < 1:
            raise InvalidArgumentError(f"model reference {ref!r}: versions are 1 and up")
    elif not MODEL_NAME.match(selector):
        raise InvalidArgumentError(
            f"model reference {ref!r}: {selector!r} is neither a version number nor an alias"
        )
    return name, selector


def _check_alias(alias: str) -> None:
    if not MODEL_NAME.match(alias) or alias == LATEST or is_version(alias):
        raise InvalidArgumentError(
            f"alias {alias!r} is not valid: use a-z, 0-9 and '-', not a number or 'latest'"
        )


class Registry:
    """Publishes, finds and loads model versions; moves aliases; announces both."""

    def __init__(self, client: redis.Redis, keys: Keys, store: BlobStore) -> None:
        self.client, self.keys, self.store = client, keys, store
        self._reserve_for_job = client.register_script(_RESERVE_FOR_JOB)

    # -- publishing

    def publish(
        self, name: str, networks: model_format.Networks, lineage: dict, job_id: str = ""
    ) -> int:
        """Stores a new version and returns its number; the same job id returns the same one.

        The number is reserved first, the document written, and only then is the version
        indexed (and so visible). Another attempt of the same job that finds the number
        reserved writes it too; whichever document lands first is the version.
        """
        if not MODEL_NAME.match(name):
            raise InvalidArgumentError(f"model name {name!r} is not valid")
        k = self.keys
        if job_id:
            lineage = {**lineage, "job_id": job_id}
            version, indexed = self._reserve_for_job(
                keys=[k.model_by_job(name), k.model_next_version(name), k.model_versions(name)],
                args=[job_id])
            if indexed:
                self.client.sadd(k.models, name)  # in case the first attempt died before it
                return int(version)
        else:
            version = self.client.incr(k.model_next_version(name))
        version = int(version)
        created = time.time()
        doc = model_format.to_document(networks, lineage, name, version, created)
        try:
            self.store.put(name, version, model_format.dumps(doc))
            summary = _summary(version, created, lineage, len(networks))
        except FileExistsError as e:
            summary = self._adopt(name, version, job_id, e)
        self._index(name, summary)
        return version

    def _adopt(self, name: str, version: int, job_id: str, cause: Exception) -> VersionSummary:
        """The summary of a document another attempt of this job already wrote."""
        stored = self.load(name, version)
        if not job_id or stored.lineage.get("job_id") != job_id:
            raise RegistryConflictError(
                f"model {name} version {version} already has a document from another "
                "publisher; the Redis index and the store disagree (was Redis reset while "
                "the store kept its files?)") from cause
        return _summary(version, stored.created_at, stored.lineage, len(stored.networks))

    def _index(self, name: str, summary: VersionSummary) -> None:
        """Makes a written version visible; the first summary indexed stays."""
        k = self.keys
        added = self.client.hsetnx(k.model_versions(name), str(summary.version),
                                   json.dumps(asdict(summary)))
        self.client.sadd(k.models, name)  # another hash slot: not in the same transaction
        if added:
            self._announce({"event": "version", "model": name, "version": summary.version})

    def _announce(self, event: dict) -> None:
        self.client.publish(self.keys.registry_channel, json.dumps(event))

    # -- finding

    def names(self) -> list[str]:
        return sorted(text(m) for m in self.client.smembers(self.keys.models))

    def versions(self, name: str) -> list[VersionSummary]:
        raw = self.client.hgetall(self.keys.model_versions(name))
        out = [VersionSummary(**json.loads(v)) for v in raw.values()]
        return sorted(out, key=lambda s: s.version)

    def summary(self, name: str, version: int) -> VersionSummary:
        """One indexed version; NotFoundError when it is not (yet) published."""
        raw = self.client.hget(self.keys.model_versions(name), str(version))
        if raw is None:
            raise NotFoundError(f"model {name!r} has no version {version}")
        return VersionSummary(**json.loads(raw))

    def aliases(self, name: str) -> dict[str, int]:
        raw = self.client.hgetall(self.keys.model_aliases(name))
        return {text(a): int(v) for a, v in raw.items()}

    def resolve(self, ref: str) -> tuple[str, int]:
        """The (name, version) a reference means now; NotFoundError when there is none."""
        name, selector = parse_ref(ref)
        if selector == LATEST:
            versions = self.client.hkeys(self.keys.model_versions(name))
            if not versions:
                raise NotFoundError(f"there is no model named {name!r}")
            return name, max(int(v) for v in versions)
        if is_version(selector):
            return name, self.summary(name, int(selector)).version
        target = self.client.hget(self.keys.model_aliases(name), selector)
        if target is None:
            raise NotFoundError(f"model {name!r} has no alias {selector!r}")
        return name, int(target)

    def load(self, name: str, version: int) -> model_format.ModelDocument:
        """The validated document; one filed under another name or number is refused."""
        where = f"model {name} version {version}"
        doc = model_format.parse(self.store.get(name, version), where=where)
        if (doc.name, doc.version) != (name, version):
            raise ModelFormatError(
                f"{where}: the file says it is {doc.name!r} version {doc.version}")
        return doc

    # -- aliases

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Points `alias` at `version`, wherever it pointed before."""
        _check_alias(alias)
        self.summary(name, version)  # indexed versions are never removed: no race
        self.client.hset(self.keys.model_aliases(name), alias, version)
        self._announce({"event": "alias", "model": name, "alias": alias, "version": version})

    def delete_alias(self, name: str, alias: str) -> None:
        if not self.client.hdel(self.keys.model_aliases(name), alias):
            raise NotFoundError(f"model {name!r} has no alias {alias!r}")
        self._announce({"event": "alias", "model": name, "alias": alias, "version": 0})

    def promote_if_better(self, name: str, alias: str, version: int) -> bool:
        """Moves `alias` to `version` only when its validation accuracy beats the holder's.

        The aliases hash is WATCHed, so two jobs promoting at once cannot both read the
        old holder and the worse one win.
        """
        _check_alias(alias)
        new = self.summary(name, version).validation_accuracy
        key = self.keys.model_aliases(name)
        with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key)
                    holder = pipe.hget(key, alias)
                    if holder is not None and (
                            new <= self.summary(name, int(holder)).validation_accuracy):
                        return False
                    pipe.multi()
                    pipe.hset(key, alias, version)
                    pipe.execute()
                    break
                except redis.WatchError:
                    continue  # the alias moved meanwhile: compare with its new holder
        self._announce({"event": "alias", "model": name, "alias": alias, "version": version})
        return True


