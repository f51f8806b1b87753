"""SIGTERM on a real `python -m nndl.server.app` process: stop accepting, drain, exit 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from nndl.trainer.local_redis import free_port
from nndl.trainer.nn.layers import Dense
from nndl.trainer.nn.network import Network
from nndl.v1 import nndl_pb2 as pb
from nndl.v1 import nndl_pb2_grpc as rpc

pytestmark = pytest.mark.timeout(60)
IMAGES = 20_000


def _in_flight(metrics_port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read()
    for line in text.decode().splitlines():
        if line.startswith("nndl_server_in_flight_requests "):
            return float(line.split()[1])
    return 0.0


def test_sigterm_drains_the_request_in_flight_and_exits_0(settings, registry) -> None:
    # Wide enough that a batch of 20,000 takes a noticeable moment to answer.
    net = Network([Dense(784, 400), Dense(400, 10)], "cross_entropy", xp=np)
    net.init_params(seed=1)
    registry.publish("slow", [(net.config(), [dict(p) for p in net.parameters()])], {})
    port, metrics_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "nndl.server.app", "--port", str(port),
         "--metrics-port", str(metrics_port), "--redis-url", settings.redis_url,
         "--prefix", settings.prefix, "--registry-dir", settings.registry_dir,
         "--grace-s", "30", "--log-level", "WARNING"],
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, stderr=subprocess.PIPE, text=True)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="nndl.v1.Classifier"),
                timeout=20, wait_for_ready=True)
            classifier = rpc.ClassifierStub(channel)
            x = np.random.default_rng(0).integers(0, 256, (IMAGES, 784), dtype=np.uint8)
            request = pb.ClassifyBatchRequest(model="slow", packed_response=True,
                                              packed=pb.PackedImages(
                                                  format=pb.PIXEL_FORMAT_U8, count=IMAGES,
                                                  data=x.tobytes()))
            answers: list = []
            call = threading.Thread(
                target=lambda: answers.append(classifier.ClassifyBatch(request, timeout=40)))
            call.start()
            deadline = time.monotonic() + 20
            while _in_flight(metrics_port) < 1:
                assert time.monotonic() < deadline, "the request never arrived"
                time.sleep(0.005)
            process.send_signal(signal.SIGTERM)
            call.join(timeout=40)
            assert process.wait(timeout=30) == 0, process.stderr.read()
            assert answers and answers[0].packed.count == IMAGES  # drained, not dropped
            with pytest.raises(grpc.RpcError) as e:
                classifier.Classify(pb.ClassifyRequest(model="slow",
                                                       image=pb.Image(pixels_u8=bytes(784))),
                                    timeout=5)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()
