"""Loaded models and their hot reload.

Requests resolve a reference ("name", "name@3", "name@alias") to a loaded model in
memory. Versions are immutable, so a loaded version never changes; what moves is
which version "name" and "name@alias" mean. A background thread follows the
registry's notifications (and re-checks every few seconds in case one was missed),
loads new versions off the request path, and swaps the mapping in one assignment.
A request holds the `LoadedModel` it started with, so it finishes on that version.
A version that fails to load is logged and counted, and the old mapping stays.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import redis

from nndl.trainer.errors import ModelFormatError, NndlError, NotFoundError
from nndl.trainer.nn.ensemble import Ensemble
from nndl.trainer.registry import LATEST, Registry, parse_ref

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: int
    model: Ensemble
    lineage: dict

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """(N, 784) float32 -> (N, 10) float32 rows summing to 1."""
        return np.asarray(self.model.probabilities(x), dtype=np.float32)


class ModelCache:
    def __init__(
        self,
        registry: Registry,
        refresh_s: float = 5.0,
        on_load: Callable[[str, int, bool], None] | None = None,
    ) -> None:
        self.registry = registry
        self.refresh_s = refresh_s
        self.on_load = on_load or (lambda name, version, ok: None)
        self._versions: dict[tuple[str, int], LoadedModel] = {}
        self._refs: dict[str, tuple[str, int]] = {}  # "name" / "name@alias" -> (name, version)
        self._failed: set[tuple[str, int]] = set()
        self._lock = threading.Lock()  # serialises loading, never held by a lookup
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the request path

    def get(self, ref: str) -> LoadedModel:
        """The model a reference means now; loads it on first use."""
        name, selector = parse_ref(ref)
        key = name if selector == LATEST else f"{name}@{selector}"
        target = self._refs.get(key) if not selector.isdigit() else (name, int(selector))
        if target is None:
            target = self.registry.resolve(key)
            self._load(target)
            self._refs = {**self._refs, key: target}
        model = self._versions.get(target)
        if model is None:
            self.registry.resolve(f"{name}@{target[1]}")  # NotFoundError for unknown versions
            model = self._load(target)
        return model

    def loaded(self) -> dict[str, int]:
        """What each followed reference serves now."""
        return {ref: v for ref, (_, v) in self._refs.items()}

    # -- loading

    def _load(self, target: tuple[str, int]) -> LoadedModel:
        with self._lock:
            found = self._versions.get(target)
            if found is not None:
                return found
            name, version = target
            try:
                doc = self.registry.load(name, version)
                model = LoadedModel(name, version, Ensemble(doc.build()), doc.lineage)
            except (ModelFormatError, NotFoundError) as e:
                self._failed.add(target)
                self.on_load(name, version, False)
                log.error("model %s version %s failed to load: %s", name, version, e)
                raise
            self._versions = {**self._versions, target: model}
            self.on_load(name, version, True)
            log.info("loaded model %s version %d", name, version)
            return model

    def refresh(self) -> None:
        """Re-resolves every followed reference; swaps in new versions that load."""
        for ref, current in list(self._refs.items()):
            try:
                target = self.registry.resolve(ref)
            except NndlError as e:
                log.warning("reference %s no longer resolves: %s", ref, e)
                continue
            if target == current or target in self._failed:
                continue
            try:
                self._load(target)
            except NndlError:
                continue  # keep serving the current version
            self._refs = {**self._refs, ref: target}
            self._forget_unused()

    def _forget_unused(self) -> None:
        """Drops versions no reference points to, so memory does not grow across reloads."""
        used = set(self._refs.values())
        self._versions = {t: m for t, m in self._versions.items() if t in used}

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
            finally:
                if pubsub is not None:
                    pubsub.close()
