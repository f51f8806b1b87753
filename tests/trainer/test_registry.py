"""The registry on a real Redis: versions, aliases, idempotent publishing, both stores."""

from __future__ import annotations

import pytest

from nndl.trainer.errors import NotFoundError
from nndl.trainer.keys import Keys
from nndl.trainer.nn.layers import Dense
from nndl.trainer.nn.network import Network
from nndl.trainer.registry import DirectoryStore, RedisStore, Registry


def _networks(seed: int = 0) -> list:
    net = Network([Dense(784, 8), Dense(8, 10)], "cross_entropy")
    net.init_params(seed=seed)
    return [(net.config(), net.parameters())]


@pytest.fixture(params=["dir", "redis"])
def registry(request, rclient, prefix, tmp_path) -> Registry:
    keys = Keys(prefix)
    store = DirectoryStore(tmp_path) if request.param == "dir" else RedisStore(rclient, keys)
    return Registry(rclient, keys, store)


def test_versions_count_up_and_load_back(registry: Registry) -> None:
    assert registry.publish("m", _networks(1), {"validation_accuracy": 0.9}) == 1
    assert registry.publish("m", _networks(2), {"validation_accuracy": 0.8}) == 2
    assert registry.resolve("m") == ("m", 2)
    assert registry.resolve("m@1") == ("m", 1)
    assert [v.version for v in registry.versions("m")] == [1, 2]
    doc = registry.load("m", 1)
    assert doc.version == 1 and doc.name == "m"


def test_the_same_job_publishes_once(registry: Registry) -> None:
    first = registry.publish("m", _networks(), {}, job_id="job-1")
    again = registry.publish("m", _networks(), {}, job_id="job-1")
    assert first == again == 1
    assert len(registry.versions("m")) == 1


def test_aliases_move_only_on_improvement(registry: Registry) -> None:
    registry.publish("m", _networks(), {"validation_accuracy": 0.95})
    registry.publish("m", _networks(), {"validation_accuracy": 0.90})
    registry.publish("m", _networks(), {"validation_accuracy": 0.97})
    assert registry.promote_if_better("m", "production", 1)
    assert not registry.promote_if_better("m", "production", 2)
    assert registry.resolve("m@production") == ("m", 1)
    assert registry.promote_if_better("m", "production", 3)
    assert registry.resolve("m@production") == ("m", 3)


def test_unknown_names_versions_and_aliases(registry: Registry) -> None:
    with pytest.raises(NotFoundError, match="no model named 'nope'"):
        registry.resolve("nope")
    registry.publish("m", _networks(), {})
    with pytest.raises(NotFoundError, match="no version 7"):
        registry.resolve("m@7")
    with pytest.raises(NotFoundError, match="no alias 'staging'"):
        registry.resolve("m@staging")
