"""The registry on a real Redis, each test run once per store (directory and Redis)."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from nndl.trainer import model_format
from nndl.trainer.errors import InvalidArgumentError, ModelFormatError, NndlError, NotFoundError
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


def _overwrite(registry: Registry, name: str, version: int, data: bytes) -> None:
    """Damages a stored document behind the store's back (it would refuse)."""
    if isinstance(registry.store, DirectoryStore):
        registry.store.path(name, version).write_bytes(data)
    else:
        registry.client.set(registry.keys.model_blob(name, version), data)


def test_versions_count_up_and_load_back(registry: Registry) -> None:
    assert registry.publish("m", _networks(1), {"validation_accuracy": 0.9}) == 1
    assert registry.publish("m", _networks(2), {"validation_accuracy": 0.8}) == 2
    assert registry.resolve("m") == ("m", 2)
    assert registry.resolve("m@latest") == ("m", 2)
    assert registry.resolve("m@1") == ("m", 1)
    assert [(v.version, v.validation_accuracy) for v in registry.versions("m")] == [
        (1, 0.9), (2, 0.8)]
    assert registry.names() == ["m"]
    doc = registry.load("m", 1)
    assert (doc.name, doc.version) == ("m", 1)
    for (_, want), (_, got) in zip(_networks(1), doc.networks, strict=True):
        for w, g in zip(want, got, strict=True):
            np.testing.assert_array_equal(w["w"], g["w"])


def test_a_published_version_is_never_replaced(registry: Registry) -> None:
    registry.publish("m", _networks(1), {})
    before = registry.store.get("m", 1)
    with pytest.raises(FileExistsError, match="never replaced"):
        registry.store.put("m", 1, b"{}")
    assert registry.store.get("m", 1) == before


def test_the_same_job_publishes_once(registry: Registry) -> None:
    first = registry.publish("m", _networks(), {}, job_id="job-1")
    again = registry.publish("m", _networks(), {}, job_id="job-1")
    other = registry.publish("m", _networks(), {}, job_id="job-2")
    assert (first, again, other) == (1, 1, 2)
    assert [(v.version, v.job_id) for v in registry.versions("m")] == [(1, "job-1"), (2, "job-2")]
    assert registry.load("m", 1).lineage["job_id"] == "job-1"


def test_a_retry_fills_the_number_a_dead_attempt_reserved(registry: Registry) -> None:
    """The first attempt reserved version 1 and died before writing: no gap is left."""
    k = registry.keys
    registry.client.hset(k.model_by_job("m"), "job-1", 1)
    registry.client.set(k.model_next_version("m"), 1)
    assert registry.publish("m", _networks(), {}, job_id="job-1") == 1
    assert registry.publish("m", _networks(), {}) == 2
    assert [v.version for v in registry.versions("m")] == [1, 2]


def test_a_retry_indexes_the_document_a_dead_attempt_wrote(registry: Registry) -> None:
    """The first attempt wrote its document and died before indexing it: that one is kept."""
    k = registry.keys
    registry.client.hset(k.model_by_job("m"), "job-1", 1)
    registry.client.set(k.model_next_version("m"), 1)
    lineage = {"job_id": "job-1", "validation_accuracy": 0.75}
    doc = model_format.to_document(_networks(seed=1), lineage, "m", 1, created_at=123.0)
    registry.store.put("m", 1, model_format.dumps(doc))

    assert registry.publish("m", _networks(seed=2), {"validation_accuracy": 0.5},
                            job_id="job-1") == 1
    (summary,) = registry.versions("m")
    assert (summary.created_at, summary.validation_accuracy) == (123.0, 0.75)
    loaded = registry.load("m", 1).networks[0][1][0]["w"]
    np.testing.assert_array_equal(loaded, _networks(seed=1)[0][1][0]["w"])


def test_a_document_of_another_publisher_is_not_taken_over(registry: Registry) -> None:
    """Redis lost its index but the store kept version 1: publishing must not claim it."""
    doc = model_format.to_document(_networks(), {"job_id": "old"}, "m", 1)
    registry.store.put("m", 1, model_format.dumps(doc))
    with pytest.raises(NndlError, match="the Redis index and the store disagree"):
        registry.publish("m", _networks(), {}, job_id="new")
    assert registry.versions("m") == []


def test_aliases_are_set_moved_and_removed(registry: Registry) -> None:
    for _ in range(3):
        registry.publish("m", _networks(), {})
    registry.set_alias("m", "staging", 1)
    registry.set_alias("m", "production", 2)
    registry.set_alias("m", "staging", 3)
    assert registry.aliases("m") == {"staging": 3, "production": 2}
    assert registry.resolve("m@staging") == ("m", 3)
    registry.delete_alias("m", "staging")
    assert registry.aliases("m") == {"production": 2}
    with pytest.raises(NotFoundError, match="no alias 'staging'"):
        registry.delete_alias("m", "staging")
    with pytest.raises(NotFoundError, match="no version 9"):
        registry.set_alias("m", "staging", 9)
    for bad in ("latest", "3", "Prod", ""):
        with pytest.raises(InvalidArgumentError, match="alias .* is not valid"):
            registry.set_alias("m", bad, 1)


def test_aliases_move_only_on_improvement(registry: Registry) -> None:
    for accuracy in (0.95, 0.90, 0.97, 0.97, None):
        registry.publish("m", _networks(), {"validation_accuracy": accuracy})
    assert registry.promote_if_better("m", "production", 1)  # no holder yet
    assert not registry.promote_if_better("m", "production", 2)  # worse
    assert registry.resolve("m@production") == ("m", 1)
    assert registry.promote_if_better("m", "production", 3)  # better
    assert not registry.promote_if_better("m", "production", 4)  # only as good
    assert not registry.promote_if_better("m", "production", 5)  # unmeasured
    assert not registry.promote_if_better("m", "production", 3)  # itself
    assert registry.resolve("m@production") == ("m", 3)
    with pytest.raises(NotFoundError, match="no version 6"):
        registry.promote_if_better("m", "production", 6)


def test_concurrent_promotions_leave_the_best(registry: Registry) -> None:
    accuracies = [0.91, 0.95, 0.93, 0.99, 0.92, 0.97, 0.90, 0.98]
    for a in accuracies:
        registry.publish("m", _networks(), {"validation_accuracy": a})
    threads = [threading.Thread(target=registry.promote_if_better, args=("m", "prod", v))
               for v in range(1, len(accuracies) + 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert registry.resolve("m@prod") == ("m", 4)


def test_latest_is_always_the_newest(registry: Registry) -> None:
    registry.publish("m", _networks(), {"validation_accuracy": 0.99})
    registry.set_alias("m", "production", 1)
    registry.publish("m", _networks(), {"validation_accuracy": 0.10})
    assert registry.resolve("m") == ("m", 2)
    assert registry.resolve("m@production") == ("m", 1)


def _next_event(pubsub, timeout: float = 1.0) -> dict:
    message = pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
    assert message is not None, f"no registry event within {timeout} s"
    return json.loads(message["data"])


def test_subscribers_hear_of_new_versions_and_alias_moves_within_a_second(
        registry: Registry) -> None:
    pubsub = registry.client.pubsub()
    pubsub.subscribe(registry.keys.registry_channel)
    assert pubsub.get_message(timeout=1.0)["type"] == "subscribe"
    registry.publish("m", _networks(), {"validation_accuracy": 0.5}, job_id="j")
    assert _next_event(pubsub) == {"event": "version", "model": "m", "version": 1}
    registry.publish("m", _networks(), {}, job_id="j")  # a retry announces nothing new
    registry.promote_if_better("m", "production", 1)
    assert _next_event(pubsub) == {"event": "alias", "model": "m", "alias": "production",
                                   "version": 1}
    registry.delete_alias("m", "production")
    assert _next_event(pubsub) == {"event": "alias", "model": "m", "alias": "production",
                                   "version": 0}
    pubsub.close()


def test_unknown_names_versions_and_aliases(registry: Registry) -> None:
    with pytest.raises(NotFoundError, match="no model named 'nope'"):
        registry.resolve("nope")
    with pytest.raises(InvalidArgumentError, match="model name 'No!' is not valid"):
        registry.resolve("No!")
    registry.publish("m", _networks(), {})
    with pytest.raises(NotFoundError, match="no version 7"):
        registry.resolve("m@7")
    with pytest.raises(NotFoundError, match="no alias 'staging'"):
        registry.resolve("m@staging")
    with pytest.raises(NotFoundError, match="model m version 7"):
        registry.load("m", 7)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d[: len(d) // 2], "model m version 1: not valid JSON"),
        (lambda d: d.replace(b'"format":"nndl-model"', b'"format":"onnx"'),
         "model m version 1: format is 'onnx'"),
        (lambda d: d.replace(b'"version":1', b'"version":2'),
         "model m version 1: the file says it is 'm' version 2"),
    ],
)
def test_damaged_stored_documents_are_refused_with_where(registry, damage, message) -> None:
    registry.publish("m", _networks(), {})
    _overwrite(registry, "m", 1, damage(registry.store.get("m", 1)))
    with pytest.raises(ModelFormatError, match=message):
        registry.load("m", 1)


def test_an_oversized_stored_document_is_refused_before_reading(registry, monkeypatch) -> None:
    registry.publish("m", _networks(), {})
    size = len(registry.store.get("m", 1))
    monkeypatch.setattr(model_format, "MAX_DOCUMENT_BYTES", size - 1)
    with pytest.raises(ModelFormatError, match=f"model m version 1: {size} bytes is over"):
        registry.store.get("m", 1)


def test_a_book_json_file_round_trips_through_the_registry(registry: Registry) -> None:
    rng = np.random.default_rng(4)
    weights = [rng.standard_normal((30, 784)), rng.standard_normal((10, 30))]
    biases = [rng.standard_normal((30, 1)), rng.standard_normal((10, 1))]
    book = json.dumps({"sizes": [784, 30, 10], "weights": [w.tolist() for w in weights],
                       "biases": [b.tolist() for b in biases], "cost": "QuadraticCost"})
    version = registry.publish("book", model_format.from_book_json(book.encode()),
                               {"imported_from": "network2.py JSON"})
    doc = registry.load("book", version)
    (_, params), = doc.networks
    for ours, w, b in zip(params, weights, biases, strict=True):
        np.testing.assert_array_equal(ours["w"], w.T.astype(np.float32))
        np.testing.assert_array_equal(ours["b"], b[:, 0].astype(np.float32))
    assert doc.build()[0].cost.name == "quadratic"


def test_publishing_needs_a_valid_name(registry: Registry) -> None:
    with pytest.raises(InvalidArgumentError, match="model name 'Bad Name' is not valid"):
        registry.publish("Bad Name", _networks(), {})

