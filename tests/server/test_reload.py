"""Hot reload under load: new versions swap in without a failed request; bad ones don't."""

from __future__ import annotations

import json
import threading
import time

import grpc
import numpy as np
import pytest

from nndl.v1 import nndl_pb2 as pb
from tests.server.conftest import publish

IMAGE = pb.Image(pixels_u8=np.arange(784, dtype=np.uint8).tobytes())


def _wait_for_version(classifier, ref: str, version: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if classifier.Classify(pb.ClassifyRequest(model=ref, image=IMAGE)).version == version:
            return
        time.sleep(0.02)
    raise AssertionError(f"{ref} did not move to version {version} in {timeout_s} s")


def _sample(running, name: str, labels: dict) -> float:
    return running.metrics.registry.get_sample_value(name, labels) or 0.0


def test_twenty_reloads_under_load_fail_no_request(server, classifier, registry) -> None:
    running, _ = server
    first, _ = publish(registry, "hot", seed=0)
    _wait_for_version(classifier, "hot", first)
    stop = threading.Event()
    seen: list[list[int]] = [[] for _ in range(4)]
    failures: list[Exception] = []

    def load(i: int) -> None:
        while not stop.is_set():
            try:
                if i == 0:
                    r = classifier.ClassifyBatch(pb.ClassifyBatchRequest(
                        model="hot", images=[IMAGE] * 16), timeout=10)
                else:
                    r = classifier.Classify(pb.ClassifyRequest(model="hot", image=IMAGE),
                                            timeout=10)
                seen[i].append(r.version)
            except grpc.RpcError as e:
                failures.append(e)

    threads = [threading.Thread(target=load, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        for seed in range(1, 21):
            version, _ = publish(registry, "hot", seed=seed)
            _wait_for_version(classifier, "hot", version)
    finally:
        stop.set()
        for t in threads:
            t.join()

    assert failures == []
    assert all(len(s) > 20 for s in seen)
    assert all(s == sorted(s) for s in seen)  # once moved on, never served an older one
    assert running.cache.loaded_versions() == [("hot", 21)]  # the 20 old ones were dropped
    assert _sample(running, "nndl_server_model_loads_total",
                   {"model": "hot", "result": "success"}) == 21
    info = [s.labels for m in running.metrics.registry.collect() for s in m.samples
            if s.name == "nndl_server_model_version_info"]
    assert info == [{"model": "hot", "version": "21"}]


def test_a_corrupt_version_is_counted_and_the_old_one_keeps_serving(
        server, classifier, registry, settings) -> None:
    running, _ = server
    good, _ = publish(registry, "fragile", seed=1)
    _wait_for_version(classifier, "fragile", good)

    # A version whose file is damaged after it was registered: in the index, unloadable.
    keys, client = registry.keys, registry.client
    bad = int(client.incr(keys.model_next_version("fragile")))
    path = registry.store.path("fragile", bad)
    path.parent.mkdir(parents=True)
    path.write_text('{"format": "nndl-model", "networks": [')
    summary = {"version": bad, "created_at": time.time(), "validation_accuracy": 0.9,
               "test_accuracy": 0.0, "job_id": "", "preset": "", "networks": 1}
    client.hset(keys.model_versions("fragile"), str(bad), json.dumps(summary))
    client.publish(keys.registry_channel, json.dumps({"event": "version", "model": "fragile",
                                                      "version": bad}))

    deadline = time.monotonic() + 10
    while _sample(running, "nndl_server_model_loads_total",
                  {"model": "fragile", "result": "failure"}) < 1:
        assert time.monotonic() < deadline, "the bad version was never tried"
        time.sleep(0.05)
    for _ in range(20):
        r = classifier.Classify(pb.ClassifyRequest(model="fragile", image=IMAGE))
        assert r.version == good
    with pytest.raises(grpc.RpcError) as e:
        classifier.Classify(pb.ClassifyRequest(model=f"fragile@{bad}", image=IMAGE))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"version {bad} failed to load" in e.value.details()
    assert _sample(running, "nndl_server_model_loads_total",
                   {"model": "fragile", "result": "failure"}) == 1  # not retried per request

    fixed, _ = publish(registry, "fragile", seed=2)
    _wait_for_version(classifier, "fragile", fixed)


def test_explicit_versions_do_not_pile_up_in_memory(server, classifier, registry) -> None:
    running, _ = server
    versions = [publish(registry, "many", seed=s)[0] for s in range(10)]
    for v in versions:
        r = classifier.Classify(pb.ClassifyRequest(model=f"many@{v}", image=IMAGE))
        assert r.version == v
    held = running.cache.loaded_versions()
    assert len(held) <= running.cache.pinned_versions
    assert ("many", versions[-1]) in held


def test_a_removed_alias_stops_being_served(server, classifier, registry) -> None:
    running, _ = server
    version, _ = publish(registry, "gone", seed=1)
    registry.set_alias("gone", "staging", version)
    assert classifier.Classify(pb.ClassifyRequest(model="gone@staging", image=IMAGE)).version \
        == version
    registry.delete_alias("gone", "staging")
    deadline = time.monotonic() + 10
    while True:
        try:
            classifier.Classify(pb.ClassifyRequest(model="gone@staging", image=IMAGE))
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND, e.details()
            assert "staging" in e.details()
            break
        assert time.monotonic() < deadline, "gone@staging was still served 10 s after removal"
        time.sleep(0.05)
    assert "gone@staging" not in running.cache.loaded()
    # The version itself still answers by name.
    assert classifier.Classify(pb.ClassifyRequest(model="gone", image=IMAGE)).version == version


def test_a_model_whose_index_redis_lost_keeps_being_served(server, classifier,
                                                           registry) -> None:
    running, _ = server
    version, _ = publish(registry, "kept", seed=1)
    registry.set_alias("kept", "production", version)
    for ref in ("kept", "kept@production"):
        assert classifier.Classify(pb.ClassifyRequest(model=ref, image=IMAGE)).version == version
    # Redis restarted empty (or failed over to an empty replica): the index is gone.
    registry.client.delete(*registry.client.keys(f"{registry.keys.prefix}:*"))
    running.cache.refresh()
    for ref in ("kept", "kept@production"):
        assert classifier.Classify(pb.ClassifyRequest(model=ref, image=IMAGE)).version == version
    # Whereas with the index there, a model that is gone from it is no longer served.
    publish(registry, "other", seed=2)
    running.cache.refresh()
    with pytest.raises(grpc.RpcError) as e:
        classifier.Classify(pb.ClassifyRequest(model="kept", image=IMAGE))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
