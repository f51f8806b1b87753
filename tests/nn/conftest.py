"""Fixtures of the network library's tests; `mnist` (session-scoped) is tests/conftest.py's."""

from __future__ import annotations

import pytest

from nndl.trainer.data import Mnist


@pytest.fixture(scope="session")
def small(mnist: Mnist) -> Mnist:
    """10,000 training, 1,000 validation and 2,000 test images: evaluation stays cheap."""
    return Mnist(
        training=(mnist.training[0][:10_000], mnist.training[1][:10_000]),
        validation=(mnist.validation[0][:1000], mnist.validation[1][:1000]),
        test=(mnist.test[0][:2000], mnist.test[1][:2000]),
        sha256=mnist.sha256,
    )
