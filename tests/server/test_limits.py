"""Load limits: job watchers cannot starve classification, and too many calls are refused."""

from __future__ import annotations

import dataclasses
from collections import Counter

import grpc
import numpy as np
import pytest

from nndl.server.app import build
from nndl.server.settings import ServerSettings
from nndl.trainer.presets import resolve
from nndl.v1 import nndl_pb2 as pb
from nndl.v1 import nndl_pb2_grpc as rpc
from tests.server.conftest import publish

IMAGE = pb.Image(pixels_u8=np.arange(784, dtype=np.uint8).tobytes())


@pytest.fixture
def limited(settings):
    """A server with 3 threads, 2 of which job watchers may hold, and 3 calls in flight."""
    running = build(dataclasses.replace(settings, threads=3, max_watchers=2, max_in_flight=3))
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield running, channel
    running.stop(1.0)


def _open_watch(channel: grpc.Channel, job_id: str):
    """A WatchJob stream that has started (its first event arrived) and stays open."""
    stream = rpc.TrainingStub(channel).WatchJob(pb.WatchJobRequest(id=job_id, from_start=True),
                                                timeout=30)
    next(stream)  # the "queued" event: the stream now holds a server thread
    return stream


def test_watchers_beyond_the_limit_are_refused_and_classify_still_answers(
        limited, settings, registry) -> None:
    running, channel = limited
    publish(registry, "mnist", seed=1)
    queue = settings.queue(registry.client)
    job = queue.submit(resolve("ch1", {"epochs": 1}))  # no worker: it stays queued
    watchers = [_open_watch(channel, job.id) for _ in range(2)]
    try:
        with pytest.raises(grpc.RpcError) as refused:
            next(rpc.TrainingStub(channel).WatchJob(pb.WatchJobRequest(id=job.id), timeout=10))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "2 jobs are being watched" in refused.value.details()
        # The third thread is still free for classification.
        answer = rpc.ClassifierStub(channel).Classify(pb.ClassifyRequest(image=IMAGE),
                                                      timeout=10)
        assert answer.model == "mnist"
    finally:
        for w in watchers:
            w.cancel()
    counted = running.metrics.registry.get_sample_value(
        "nndl_server_requests_total", {"method": "WatchJob", "code": "RESOURCE_EXHAUSTED"})
    assert counted == 1.0


def test_calls_beyond_max_in_flight_get_resource_exhausted(limited, settings, registry) -> None:
    _, channel = limited
    publish(registry, "mnist", seed=1)
    job = settings.queue(registry.client).submit(resolve("ch1", {"epochs": 1}))
    watchers = [_open_watch(channel, job.id) for _ in range(2)]  # 2 of the 3 calls in flight
    try:
        stub = rpc.ClassifierStub(channel)
        batch = pb.ClassifyBatchRequest(packed=pb.PackedImages(
            format=pb.PIXEL_FORMAT_U8, count=2000, data=bytes(784 * 2000)), packed_response=True)
        calls = [stub.ClassifyBatch.future(batch, timeout=30) for _ in range(20)]
        codes = Counter()
        for call in calls:
            try:
                call.result()
                codes["OK"] += 1
            except grpc.RpcError as e:
                codes[e.code().name] += 1
    finally:
        for w in watchers:
            w.cancel()
    assert set(codes) == {"OK", "RESOURCE_EXHAUSTED"}, codes
    assert codes["RESOURCE_EXHAUSTED"] >= 10, codes  # one call at a time got the free slot


def test_settings_that_would_starve_the_server_are_refused() -> None:
    with pytest.raises(ValueError, match="--max-watchers must be at least 1 and below --threads"):
        ServerSettings(threads=4, max_watchers=4)
    with pytest.raises(ValueError, match="--max-in-flight"):
        ServerSettings(threads=16, max_in_flight=8)
    with pytest.raises(ValueError, match="--tls-cert and --tls-key go together"):
        ServerSettings(tls_cert="cert.pem")
    with pytest.raises(ValueError, match="--tls-cert /nonexistent/cert.pem: no such file"):
        ServerSettings(tls_cert="/nonexistent/cert.pem", tls_key="/nonexistent/key.pem")
