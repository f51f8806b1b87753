"""Loaded models and their hot reload.

Requests resolve a reference ("name", "name@3", "name@alias") to a loaded model in
memory. Versions are immutable, so a loaded version never changes; what moves is
which version "name" and "name@alias" mean. A background thread follows the
registry's notifications (and re-checks every few seconds in case one was missed),
loads new versions off the request path, and swaps the mapping in one assignment.
A request holds the `LoadedModel` it started with, so it finishes on that version.
A version that fails to load is logged and counted, and the old mapping stays.

Memory stays bounded: a version stays loaded while a followed reference points to it,
or while it is one of the few most recently asked for by number (`name@3`).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import redis

from nndl.server.errors import ModelUnavailableError
from nndl.trainer.errors import ModelFormatError, NndlError, NotFoundError
from nndl.trainer.nn.ensemble import Ensemble
from nndl.trainer.registry import LATEST, Registry, is_version, parse_ref

log = logging.getLogger(__name__)

Target = tuple[str, int]  # (name, version)


# Images per forward pass: bounds the working memory of one call (a chapter 6 network
# needs about 60 MB for 1,024 images) whatever the batch size a client sends.
CHUNK = 1024


@dataclass(frozen=True)
class LoadedModel:
    """One immutable version in memory; any number of threads may classify with it at once
    (inference keeps no state on the layers)."""

    name: str
    version: int
    model: Ensemble
    lineage: dict

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """(N, 784) float32 -> (N, 10) float32 rows summing to 1."""
        out = np.empty((x.shape[0], 10), dtype=np.float32)
        for i in range(0, x.shape[0], CHUNK):
            out[i : i + CHUNK] = self.model.probabilities(x[i : i + CHUNK])
        return out


class ModelCache:
    def __init__(
        self,
        registry: Registry,
        refresh_s: float = 5.0,
        on_load: Callable[[str, int, bool], None] | None = None,
        on_unload: Callable[[str, int], None] | None = None,
        pinned_versions: int = 4,
    ) -> None:
        self.registry = registry
        self.refresh_s = refresh_s
        self.on_load = on_load or (lambda name, version, ok: None)
        self.on_unload = on_unload or (lambda name, version: None)
        self.pinned_versions = pinned_versions
        # Both maps are replaced whole, never changed in place, so lookups need no lock.
        self._versions: dict[Target, LoadedModel] = {}
        self._refs: dict[str, Target] = {}  # "name" / "name@alias" -> (name, version)
        self._pinned: OrderedDict[Target, None] = OrderedDict()  # "name@N" asked for lately
        self._failed: set[Target] = set()
        self._orphans: set[str] = set()  # refs served while the registry index is empty
        self._load_lock = threading.Lock()  # one load at a time; never held by a lookup
        self._swap_lock = threading.Lock()  # guards replacing the maps
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the request path

    def get(self, ref: str) -> LoadedModel:
        """The model a reference means now; loads it on first use."""
        name, selector = parse_ref(ref)
        if is_version(selector):
            return self._get_pinned((name, int(selector)))
        key = name if selector == LATEST else f"{name}@{selector}"
        target = self._refs.get(key)
        if target is not None:
            model = self._versions.get(target)
            if model is not None:
                return model
        target = self.registry.resolve(key)
        model = self._load(target)
        with self._swap_lock:
            followed = key in self._refs
            if not followed:  # once followed, only refresh() moves it: never backwards
                self._refs = {**self._refs, key: target}
        if followed:
            self._forget_unused()
        return model

    def _get_pinned(self, target: Target) -> LoadedModel:
        model = self._versions.get(target)
        if model is None:
            self.registry.resolve(f"{target[0]}@{target[1]}")  # NotFoundError if unknown
            model = self._load(target)
        if next(reversed(self._pinned), None) != target:
            with self._swap_lock:
                self._pinned.pop(target, None)
                self._pinned[target] = None
                while len(self._pinned) > self.pinned_versions:
                    self._pinned.popitem(last=False)
            self._forget_unused()
        return model

    def loaded(self) -> dict[str, int]:
        """What each followed reference serves now."""
        return {ref: v for ref, (_, v) in self._refs.items()}

    def loaded_versions(self) -> list[Target]:
        """Every version held in memory now."""
        return sorted(self._versions)

    # -- loading

    def _load(self, target: Target) -> LoadedModel:
        with self._load_lock:
            found = self._versions.get(target)
            if found is not None:
                return found
            name, version = target
            if target in self._failed:  # versions are immutable: it would fail again
                raise ModelUnavailableError(f"model {name} version {version} failed to load")
            try:
                doc = self.registry.load(name, version)
                model = LoadedModel(name, version, Ensemble(doc.build()), doc.lineage)
            except (ModelFormatError, NotFoundError, ValueError, KeyError, TypeError) as e:
                # ValueError and friends: a document that parsed but does not build.
                self._failed.add(target)
                self.on_load(name, version, False)
                log.error("model %s version %s failed to load: %s", name, version, e)
                raise ModelUnavailableError(
                    f"model {name} version {version} failed to load: {e}") from e
            self.on_load(name, version, True)  # counted before any request can use it
            with self._swap_lock:
                self._versions = {**self._versions, target: model}
            log.info("loaded model %s version %d", name, version)
            return model

    def refresh(self) -> None:
        """Re-resolves every followed reference; swaps in new versions that load."""
        for ref, current in list(self._refs.items()):
            try:
                target = self.registry.resolve(ref)
            except NotFoundError as e:
                if not self.registry.names():
                    # The whole index is gone: Redis restarted empty, most likely. Versions
                    # are immutable, so what is loaded is still right; keep serving it.
                    if ref not in self._orphans:
                        self._orphans.add(ref)
                        log.warning("the registry index is empty; %s keeps serving version "
                                    "%d until the index is back or the server restarts",
                                    ref, current[1])
                    continue
                # The alias (or model) was removed: stop serving it.
                with self._swap_lock:
                    self._refs = {k: v for k, v in self._refs.items() if k != ref}
                log.info("stopped serving %s: %s", ref, e)
                self._forget_unused()
                continue
            except NndlError as e:
                log.warning("reference %s no longer resolves: %s", ref, e)
                continue
            self._orphans.discard(ref)
            if target == current or target in self._failed:
                continue
            try:
                self._load(target)
            except ModelUnavailableError:
                continue  # keep serving the current version
            with self._swap_lock:
                self._refs = {**self._refs, ref: target}
            log.info("%s now serves version %d (was %d)", ref, target[1], current[1])
            self._forget_unused()

    def _forget_unused(self) -> None:
        """Drops versions nothing points to, so memory does not grow across reloads.

        Requests in flight keep their own reference to the model they started with.
        """
        with self._swap_lock:
            keep = set(self._refs.values()) | set(self._pinned)
            dropped = [t for t in self._versions if t not in keep]
            self._versions = {t: m for t, m in self._versions.items() if t in keep}
        for name, version in dropped:
            self.on_unload(name, version)
            log.info("unloaded model %s version %d", name, version)

    # -- following the registry

    def start(self) -> None:
        self._thread = threading.Thread(target=self._follow, daemon=True, name="model-reload")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _follow(self) -> None:
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self.registry.client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.registry.keys.registry_channel)
                self.refresh()
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=self.refresh_s)
                    if message is not None:
                        log.debug("registry event %s", json.loads(message["data"]))
                    self.refresh()
            except redis.RedisError as e:
                log.warning("lost the registry notifications (%s); retrying", e)
                self._stop.wait(1.0)
            except Exception:  # a bug here must not end hot reload for good
                log.exception("following the registry failed; retrying")
                self._stop.wait(1.0)
            finally:
                if pubsub is not None:
                    pubsub.close()
