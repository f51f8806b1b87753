"""Shared fixtures: MNIST loaded once per session from ../shared/data beside the repo."""

from __future__ import annotations

from pathlib import Path

import pytest

from nndl.trainer.data import Mnist, load_mnist

MNIST_PATH = Path(__file__).resolve().parents[2] / ".." / "shared/data/mnist.pkl.gz"


@pytest.fixture(scope="session")
def mnist() -> Mnist:
    if not MNIST_PATH.is_file():
        pytest.skip(f"MNIST is not at {MNIST_PATH} (see shared/data/README.md)")
    return load_mnist(MNIST_PATH)
