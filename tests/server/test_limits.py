"""Load limits: job watchers cannot starve classification, and too many calls are refused."""

from __future__ import annotations

import dataclasses
import importlib.util
import threading
import time
from collections import Counter

import grpc
import numpy as np
import pytest

from nndl.server.app import build
from nndl.server.settings import ServerSettings
from nndl.trainer.presets import resolve
from nndl.v1 import nndl_pb2 as pb
from nndl.v1 import nndl_pb2_grpc as rpc
from tests.deploy.stack import DEPLOY
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


def test_watchers_whose_callers_left_free_their_slots_while_the_job_waits(
        limited, settings, registry) -> None:
    running, channel = limited
    job = settings.queue(registry.client).submit(resolve("ch1", {"epochs": 1}))  # stays queued
    for w in [_open_watch(channel, job.id) for _ in range(2)]:
        w.cancel()
    until = time.monotonic() + 10
    while True:  # each stream notices within a second (one blocking read of the events)
        try:
            _open_watch(channel, job.id).cancel()
            break
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert time.monotonic() < until, "the watchers never let go"
            time.sleep(0.2)
    def cancelled() -> float:
        return running.metrics.registry.get_sample_value(
            "nndl_server_requests_total", {"method": "WatchJob", "code": "CANCELLED"}) or 0.0

    while cancelled() < 3 and time.monotonic() < until:  # counted as the streams end
        time.sleep(0.1)
    assert cancelled() == 3


def test_calls_beyond_max_in_flight_get_resource_exhausted(settings, registry) -> None:
    # 3 calls in flight at most: 2 watchers and a Classify held inside its forward pass
    # fill them. Meanwhile every other call is refused at once, health checks too
    # (deploy/healthcheck.py calls that busy, not broken); afterwards calls are served.
    running = build(dataclasses.replace(settings, threads=3, max_watchers=2, max_in_flight=3,
                                        batch_max_images=1))
    address = f"127.0.0.1:{running.port}"
    publish(registry, "mnist", seed=1)
    job = settings.queue(registry.client).submit(resolve("ch1", {"epochs": 1}))
    entered, release = threading.Event(), threading.Event()
    forward = running.classifier.forward

    def held_forward(model, x):
        entered.set()
        release.wait(30)
        return forward(model, x)

    running.classifier.forward = held_forward
    try:
        with grpc.insecure_channel(address) as channel:
            watchers = [_open_watch(channel, job.id) for _ in range(2)]
            stub = rpc.ClassifierStub(channel)
            held = stub.Classify.future(pb.ClassifyRequest(image=IMAGE), timeout=30)
            assert entered.wait(10)
            codes = Counter()
            for _ in range(10):
                try:
                    stub.Classify(pb.ClassifyRequest(image=IMAGE), timeout=10)
                    codes["OK"] += 1
                except grpc.RpcError as e:
                    codes[e.code().name] += 1
            assert codes == {"RESOURCE_EXHAUSTED": 10}, codes
            assert healthcheck_main(["grpc", address]) == 0  # busy for a moment: healthy
            time.sleep(0.2)
            assert healthcheck_main(["grpc", address, "--busy-for-s", "0.1"]) == 1  # stuck
            release.set()
            assert held.result().model == "mnist"
            for w in watchers:
                w.cancel()
            assert _eventually_served(stub)
            assert healthcheck_main(["grpc", address, "--busy-for-s", "0.1"]) == 0  # reset
    finally:
        release.set()
        running.stop(1.0)


def healthcheck_main(argv: list[str]) -> int:
    spec = importlib.util.spec_from_file_location("healthcheck", DEPLOY / "healthcheck.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


def _eventually_served(stub: rpc.ClassifierStub, within_s: float = 10.0) -> bool:
    until = time.monotonic() + within_s
    while time.monotonic() < until:
        try:
            return stub.Classify(pb.ClassifyRequest(image=IMAGE), timeout=5).model == "mnist"
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise
            time.sleep(0.1)
    return False


def test_settings_that_would_starve_the_server_are_refused() -> None:
    with pytest.raises(ValueError, match="--max-watchers must be at least 1 and below --threads"):
        ServerSettings(threads=4, max_watchers=4)
    with pytest.raises(ValueError, match="--max-in-flight"):
        ServerSettings(threads=16, max_in_flight=8)
    with pytest.raises(ValueError, match="--tls-cert and --tls-key go together"):
        ServerSettings(tls_cert="cert.pem")
    with pytest.raises(ValueError, match="--tls-cert /nonexistent/cert.pem: no such file"):
        ServerSettings(tls_cert="/nonexistent/cert.pem", tls_key="/nonexistent/key.pem")


def test_redis_errors_that_are_bugs_are_internal_not_unavailable() -> None:
    import redis

    from nndl.server.errors import abort_with

    class Context:
        def __init__(self) -> None:
            self.trailing, self.status = (), None

        def set_trailing_metadata(self, metadata) -> None:
            self.trailing = metadata

        def abort(self, code, details):
            self.status = (code, details)
            raise RuntimeError("aborted")

    for error, code in ((redis.ConnectionError("refused"), grpc.StatusCode.UNAVAILABLE),
                        (redis.exceptions.BusyLoadingError("loading"), grpc.StatusCode.UNAVAILABLE),
                        (redis.ResponseError("WRONGTYPE"), grpc.StatusCode.INTERNAL)):
        context = Context()
        with pytest.raises(RuntimeError, match="aborted"):
            abort_with("GetJob", error, context)
        assert context.status[0] == code, error
