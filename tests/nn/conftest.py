"""Shared fixtures: MNIST loaded once per session from ../shared/data beside the repo."""

from __future__ import annotations

import os

# Mini-batches of 10 make matrices too small to share between BLAS threads, and on a
# busy 2-core machine spinning BLAS threads slow these tests tenfold. This only takes
# effect when numpy has not been imported yet (it reads the variable when it loads).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from nndl.trainer.data import Mnist, load_mnist  # noqa: E402

MNIST_PATH = Path(__file__).resolve().parents[2] / ".." / "shared/data/mnist.pkl.gz"


@pytest.fixture(scope="session")
def mnist() -> Mnist:
    if not MNIST_PATH.is_file():
        pytest.skip(f"MNIST is not at {MNIST_PATH} (see shared/data/README.md)")
    return load_mnist(MNIST_PATH)


@pytest.fixture(scope="session")
def small(mnist: Mnist) -> Mnist:
    """10,000 training, 1,000 validation and 2,000 test images: evaluation stays cheap."""
    return Mnist(
        training=(mnist.training[0][:10_000], mnist.training[1][:10_000]),
        validation=(mnist.validation[0][:1000], mnist.validation[1][:1000]),
        test=(mnist.test[0][:2000], mnist.test[1][:2000]),
        sha256=mnist.sha256,
    )
