"""model.json: round trip, and every kind of damage rejected with a clear message."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nndl.trainer import model_format
from nndl.trainer.errors import ModelFormatError
from nndl.trainer.nn.layers import Dense
from nndl.trainer.nn.network import Network


def _network() -> Network:
    net = Network([Dense(784, 16), Dense(16, 10)], "cross_entropy")
    net.init_params(seed=3)
    return net


def _doc() -> dict:
    net = _network()
    return model_format.to_document([(net.config(), net.parameters())], {"job_id": "j1"},
                                    name="m", version=1)


def test_round_trip_gives_the_same_outputs() -> None:
    net = _network()
    data = model_format.dumps(_doc())
    loaded = model_format.parse(data).build()[0]
    x = np.random.default_rng(0).random((5, 784), dtype=np.float32)
    np.testing.assert_array_equal(loaded.feedforward(x), net.feedforward(x))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d.update(format="other"), "format is 'other'"),
        (lambda d: d.update(format_version=99), "format_version 99"),
        (lambda d: d["networks"][0]["params"][0]["w"].update(shape=[784, 17]), "needs"),
        (lambda d: d.update(params_sha256="0" * 64), "params_sha256 does not match"),
        (lambda d: d["networks"][0]["config"]["layers"][0].update(activation="evil"),
         "unknown activation 'evil'"),
        (lambda d: d["networks"][0]["params"][1].pop("b"),
         r"params\[1\]: has \['w'\], the layer needs"),
        (lambda d: d.update(networks=[]), "networks must be a list"),
    ],
)
def test_damaged_documents_are_rejected(damage, message) -> None:
    doc = _doc()
    damage(doc)
    with pytest.raises(ModelFormatError, match=message):
        model_format.parse(json.dumps(doc).encode())


def test_nan_parameters_are_rejected() -> None:
    doc = _doc()
    doc["networks"][0]["params"][1]["b"] = [float("nan")] * 10
    with pytest.raises(ModelFormatError, match="NaN"):
        model_format.parse(json.dumps(doc).encode())


def test_truncated_file_is_rejected() -> None:
    data = model_format.dumps(_doc())
    with pytest.raises(ModelFormatError, match="not valid JSON"):
        model_format.parse(data[: len(data) // 2])


def test_book_json_gives_the_books_feedforward() -> None:
    rng = np.random.default_rng(1)
    sizes = [784, 30, 10]
    weights = [rng.standard_normal((y, x)) for x, y in zip(sizes[:-1], sizes[1:], strict=True)]
    biases = [rng.standard_normal((y, 1)) for y in sizes[1:]]
    book = {"sizes": sizes, "weights": [w.tolist() for w in weights],
            "biases": [b.tolist() for b in biases], "cost": "CrossEntropyCost"}
    config, params = model_format.from_book_json(json.dumps(book).encode())[0]
    net = Network.from_config(config, params)

    x = rng.random(784)
    a = x.reshape(784, 1)  # the book's column-vector feedforward
    for w, b in zip(weights, biases, strict=True):
        a = 1.0 / (1.0 + np.exp(-(w @ a + b)))
    ours = net.feedforward(x.astype(np.float32)[None, :])[0]
    np.testing.assert_allclose(ours, a[:, 0], rtol=1e-4, atol=1e-6)
