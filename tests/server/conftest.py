"""Server test helpers: small networks published straight into the registry, and stubs."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from nndl.trainer.nn.layers import Dense
from nndl.trainer.nn.network import Network
from nndl.trainer.registry import Registry
from nndl.v1 import nndl_pb2_grpc as rpc


def small_network(seed: int, hidden: int = 30) -> Network:
    """An untrained [784, hidden, 10] network: answers differ by seed, which tests need."""
    net = Network([Dense(784, hidden), Dense(hidden, 10)], "cross_entropy", xp=np)
    net.init_params(seed=seed, scheme="scaled")
    return net


def publish(registry: Registry, name: str, seed: int) -> tuple[int, Network]:
    net = small_network(seed)
    saved = (net.config(), [dict(layer) for layer in net.parameters()])
    return registry.publish(name, [saved], {"validation_accuracy": 0.5, "seed": seed}), net


def expected(net: Network, x: np.ndarray) -> np.ndarray:
    """What the server should answer for (N, 784) float32 input."""
    a = net.feedforward(x)
    return a / a.sum(axis=1, keepdims=True)


@pytest.fixture
def registry(settings) -> Iterator[Registry]:
    client = settings.redis()
    yield settings.registry(client)
    client.close()


@pytest.fixture
def channel(server) -> Iterator[grpc.Channel]:
    _, address = server
    with grpc.insecure_channel(address) as ch:
        yield ch


@pytest.fixture
def classifier(channel) -> rpc.ClassifierStub:
    return rpc.ClassifierStub(channel)


@pytest.fixture
def digits(mnist) -> tuple[np.ndarray, np.ndarray]:
    """200 test digits as uint8 (N, 784) and their labels."""
    x, y = mnist.test
    return (x[:200] * 255).round().astype(np.uint8), y[:200]
