"""Starting up beside other servers, and serving while Redis is away."""

from __future__ import annotations

import dataclasses

import grpc
import numpy as np
import pytest

from nndl.client import ClientError, DigitsClient
from nndl.server.app import build, main
from nndl.trainer.local_redis import free_port


def test_a_second_server_cannot_take_the_same_port(settings) -> None:
    first = build(dataclasses.replace(settings, port=free_port()))
    try:
        with pytest.raises(OSError, match="is another server running there"):
            build(dataclasses.replace(settings, port=first.port))
        assert main(["--port", str(first.port), "--metrics-port", "0",
                     "--redis-url", settings.redis_url]) == 1
    finally:
        first.stop(0.1)


def test_without_redis_calls_are_unavailable_with_a_reason(settings) -> None:
    nobody = f"redis://127.0.0.1:{free_port()}/0"
    running = build(dataclasses.replace(settings, redis_url=nobody))
    try:
        with DigitsClient(f"127.0.0.1:{running.port}", timeout=10, retries=1) as c:
            with pytest.raises(ClientError, match="cannot reach Redis") as e:
                c.classify(np.zeros((28, 28), dtype=np.uint8), model="mnist")
            assert e.value.code == grpc.StatusCode.UNAVAILABLE
            with pytest.raises(ClientError, match="cannot reach Redis"):
                c.jobs(5)
    finally:
        running.stop(0.1)
