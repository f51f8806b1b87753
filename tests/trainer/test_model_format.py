"""model.json: round trip, old versions, the book's JSON, and every kind of damage refused."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from nndl.trainer import model_format
from nndl.trainer.errors import ModelFormatError
from nndl.trainer.nn.layers import Dense
from nndl.trainer.nn.network import Network

GOLDEN_V1 = Path(__file__).parent / "data" / "model-v1.json"


def _network(seed: int = 3) -> Network:
    net = Network([Dense(784, 16), Dense(16, 10)], "cross_entropy")
    net.init_params(seed=seed)
    return net


def _doc(*nets: Network) -> dict:
    nets = nets or (_network(),)
    return model_format.to_document([(n.config(), n.parameters()) for n in nets],
                                    {"job_id": "j1", "validation_accuracy": 0.9},
                                    name="m", version=1)


def _parse(doc: dict) -> model_format.ModelDocument:
    return model_format.parse(json.dumps(doc).encode())


def _x(n: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 784), dtype=np.float32)


def test_round_trip_gives_the_same_outputs() -> None:
    net = _network()
    doc = model_format.parse(model_format.dumps(_doc(net)))
    assert (doc.name, doc.version, doc.format_version) == ("m", 1, 1)
    assert doc.lineage == {"job_id": "j1", "validation_accuracy": 0.9}
    np.testing.assert_array_equal(doc.build()[0].feedforward(_x()), net.feedforward(_x()))


def test_an_ensemble_is_one_document_holding_several_networks() -> None:
    nets = [_network(seed) for seed in (1, 2, 3)]
    built = model_format.parse(model_format.dumps(_doc(*nets))).build()
    assert len(built) == 3
    for ours, theirs in zip(built, nets, strict=True):
        np.testing.assert_array_equal(ours.feedforward(_x()), theirs.feedforward(_x()))


def test_parameters_may_be_nested_lists() -> None:
    net = _network()
    doc = _doc(net)
    doc["networks"][0]["params"] = [{k: v.tolist() for k, v in layer.items()}
                                    for layer in net.parameters()]
    np.testing.assert_array_equal(_parse(doc).build()[0].feedforward(_x()), net.feedforward(_x()))


def test_a_v1_file_written_by_the_first_release_still_loads() -> None:
    """A frozen file: whatever the current format becomes, version 1 must keep loading."""
    doc = model_format.parse(GOLDEN_V1.read_bytes(), where=GOLDEN_V1.name)
    assert (doc.format_version, doc.name, doc.version) == (1, "golden", 1)
    assert doc.lineage["code_version"] == "424ea1a"
    x = np.linspace(0, 1, 784, dtype=np.float32)[None, :]
    expected = [0.00849098525941372, 0.047883547842502594, 0.017406698316335678,
                0.06317663192749023, 0.03298759460449219, 0.04473080486059189,
                0.012695311568677425, 0.08200971782207489, 0.059221863746643066,
                0.6313968300819397]
    np.testing.assert_allclose(doc.build()[0].feedforward(x)[0], expected, rtol=1e-6)


def test_each_format_version_has_its_own_reader(monkeypatch) -> None:
    seen = []

    def read_v2(doc: dict, where: str) -> model_format.ModelDocument:
        seen.append(where)
        return model_format.ModelDocument(networks=[], format_version=2)

    monkeypatch.setitem(model_format.READERS, 2, read_v2)
    doc = _doc()
    doc["format_version"] = 2
    assert _parse(doc).format_version == 2 and seen == ["model.json"]
    assert _parse(_doc()).format_version == 1  # version 1 still goes to its own reader


def _b64(values: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def _set(path: str, value):
    """A damage that sets one field, the path written like the error messages."""
    def damage(doc: dict) -> None:
        *parents, last = path.split("/")
        node = doc
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        node[int(last) if last.isdigit() else last] = value
    return damage


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        # unknown formats
        (_set("format", "other"), "format is 'other', not 'nndl-model'"),
        (lambda d: d.pop("format"), "format is None"),
        (_set("format_version", 2), "format_version 2 is not one this code reads"),
        (_set("format_version", "1"), "format_version '1' is not one"),
        (_set("format_version", True), "format_version True is not one"),
        # schema
        (_set("version", -1), "version must be a whole number"),
        (_set("name", 7), "name must be a string"),
        (_set("input/shape", [32, 32]), r"input.shape is \[32, 32\]"),
        (_set("networks", []), "networks must be a list of 1 to 10"),
        (_set("networks", [{}] * 11), "networks must be a list of 1 to 10"),
        (_set("networks/0/config/layers", []), r"networks\[0\].config.layers: must be a list"),
        (_set("networks/0/config/cost", None), r"config.cost: must be a cost's name"),
        (_set("networks/0/config/layers/0/n_in", {"a": [[[[1]]]]}), "nested at most 3 deep"),
        (_set("lineage", []), "lineage: must be an object"),
        (_set("lineage/validation_accuracy", 97.5), "validation_accuracy: must be a number"),
        (_set("params_sha256", "abc"), "params_sha256 must be 64 lowercase hex digits"),
        # names looked up in fixed tables
        (_set("networks/0/config/layers/0/activation", "evil"), "unknown activation 'evil'"),
        (_set("networks/0/config/layers/0/type", "__import__"), "unknown layer type '__import__'"),
        (_set("networks/0/config/cost", "os.system"), "unknown cost 'os.system'"),
        (_set("networks/0/config/layers/0/eval", "1"), r"networks\[0\].config: .*'eval'"),
        # shapes
        (_set("networks/0/params/0/w/shape", [784, 17]), "data holds 50176 bytes"),
        (_set("networks/0/params/0/w", {"shape": [16, 784], "dtype": "float32",
                                        "data": _b64([0.0] * 784 * 16)}),
         r"params\[0\].w: shape \[16, 784\], the layer needs \[784, 16\]"),
        (_set("networks/0/params/1/b", [0.0] * 11),
         r"params\[1\].b: shape \[11\], the layer needs \[10\]"),
        (lambda d: d["networks"][0]["params"][1].pop("b"),
         r"params\[1\]: has \['w'\], the layer needs \['b', 'w'\]"),
        (lambda d: d["networks"][0]["params"].pop(),
         r"params: must be a list of one object per layer \(2\)"),
        (_set("networks/0/params/1/b", [[0.0], [1.0, 2.0]]), "not a rectangular list"),
        (_set("networks/0/params/1/b", ["1"] * 10), "not a rectangular list of numbers"),
        (_set("networks/0/params/0/w/dtype", "float64"), "dtype must be float32"),
        (_set("networks/0/config/layers/1/n_out", 9), "the layer needs"),
        # corrupted data
        (_set("networks/0/params/1/b/data", "!!!!"), r"params\[1\].b: data is not valid base64"),
        (_set("params_sha256", "0" * 64), "params_sha256 does not match the parameters"),
        # non-finite values
        (_set("networks/0/params/1/b", {"shape": [10], "dtype": "float32",
                                        "data": _b64([0.0] * 9 + [float("nan")])}),
         r"params\[1\].b: holds NaN or infinite values \(first at \[9\]\)"),
        (_set("networks/0/params/1/b", [0.0, 1e39] + [0.0] * 8),
         r"params\[1\].b: holds NaN or infinite values \(first at \[1\]\)"),
        # sizes
        (_set("networks/0/config/layers/0/n_in", 10**9), r"layers\[0\]: its sizes multiply to"),
        (_set("networks/0/params/0/w/shape", [10**8]), "over 50000000 parameters"),
    ],
)
def test_damaged_documents_are_rejected(damage, message) -> None:
    doc = _doc()
    damage(doc)
    with pytest.raises(ModelFormatError, match=message):
        _parse(doc)


def test_a_truncated_file_is_rejected() -> None:
    data = model_format.dumps(_doc())
    for cut in (0, 1, len(data) // 2, len(data) - 1):
        with pytest.raises(ModelFormatError, match="models/m/1/model.json: not valid JSON"):
            model_format.parse(data[:cut], where="models/m/1/model.json")


def test_a_flipped_byte_in_the_parameters_fails_the_checksum() -> None:
    doc = _doc()
    data = doc["networks"][0]["params"][0]["w"]["data"]
    doc["networks"][0]["params"][0]["w"]["data"] = ("B" if data[100] == "A" else "A").join(
        (data[:100], data[101:]))
    with pytest.raises(ModelFormatError, match="params_sha256 does not match"):
        _parse(doc)


def test_corrupted_bytes_and_json_literals_are_rejected() -> None:
    data = bytearray(model_format.dumps(_doc()))
    data[0] = 0xFF
    with pytest.raises(ModelFormatError, match="not valid JSON"):
        model_format.parse(bytes(data))
    text = json.dumps(_doc()).replace('"version": 1', '"version": NaN')
    with pytest.raises(ModelFormatError, match="NaN is not allowed"):
        model_format.parse(text.encode())
    with pytest.raises(ModelFormatError, match="top level must be a JSON object"):
        model_format.parse(b"[1, 2]")
    with pytest.raises(ModelFormatError, match="nested too deeply"):
        model_format.parse(b"[" * 100_000)


def test_an_oversized_file_is_rejected_before_parsing(monkeypatch) -> None:
    data = model_format.dumps(_doc())
    monkeypatch.setattr(model_format, "MAX_DOCUMENT_BYTES", len(data) - 1)
    with pytest.raises(ModelFormatError, match=f"{len(data)} bytes is over the"):
        model_format.parse(data)


def test_too_many_parameters_across_networks_are_rejected(monkeypatch) -> None:
    net = _network()
    data = model_format.dumps(_doc(net, net))
    monkeypatch.setattr(model_format, "MAX_PARAMETERS", 2 * 12_730 - 1)
    message = r"networks\[1\].params\[1\]: the document holds over 25459 parameters"
    with pytest.raises(ModelFormatError, match=message):
        model_format.parse(data)


# -- the book's network2.py JSON


def _book_network(sizes: list[int], seed: int) -> tuple[list, list]:
    """Weights as network2.py's default_weight_initializer makes them."""
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal((y, x)) / np.sqrt(x) for x, y in zip(sizes[:-1], sizes[1:],
                                                                        strict=True)]
    biases = [rng.standard_normal((y, 1)) for y in sizes[1:]]
    return weights, biases


def _book_save(sizes: list[int], weights: list, biases: list, cost: str) -> bytes:
    """What network2.py's Network.save writes."""
    return json.dumps({"sizes": sizes, "weights": [w.tolist() for w in weights],
                       "biases": [b.tolist() for b in biases], "cost": cost}).encode()


def _book_feedforward(weights: list, biases: list, a: np.ndarray) -> np.ndarray:
    """network2.py's feedforward, in float64 on (784, 1) column vectors."""
    for w, b in zip(weights, biases, strict=True):
        a = 1.0 / (1.0 + np.exp(-(np.dot(w, a) + b)))
    return a


@pytest.mark.parametrize(
    ("sizes", "cost"),
    [([784, 30, 10], "CrossEntropyCost"), ([784, 100, 10], "QuadraticCost"),
     ([784, 64, 32, 10], "CrossEntropyCost"), ([784, 10], "QuadraticCost")],
)
def test_book_json_gives_the_books_feedforward(sizes, cost) -> None:
    weights, biases = _book_network(sizes, seed=len(sizes))
    networks = model_format.from_book_json(_book_save(sizes, weights, biases, cost))
    # ... and survives being written as model.json and read back.
    doc = model_format.parse(model_format.dumps(model_format.to_document(networks, {})))
    net = doc.build()[0]
    assert net.cost.name == model_format.BOOK_COSTS[cost]
    x = np.random.default_rng(7).random((64, 784))
    ours = net.feedforward(x.astype(np.float32))  # (64, 10)
    book = np.hstack([_book_feedforward(weights, biases, col.reshape(784, 1)) for col in x])
    np.testing.assert_allclose(ours, book.T, rtol=0, atol=2e-5)  # float32 rounding
    np.testing.assert_array_equal(ours.argmax(axis=1), book.argmax(axis=0))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d.pop("cost"), "needs the keys sizes, weights, biases and cost"),
        (_set("cost", "__import__('os')"), "cost \"__import__\\('os'\\)\" is not one of"),
        (_set("sizes", [784, 30, 9]), "sizes must be positive whole numbers from 784 to 10"),
        (_set("sizes/1", "30"), "sizes must be positive whole numbers"),
        (_set("weights", []), "weights must be a list of 2 arrays"),
        (_set("biases/1", [[0.0]] * 11), r"layer 1 has weights \[10, 30\] and biases \[11, 1\]"),
        (_set("weights/0/3/5", 1e39),
         r"weights\[0\]: holds NaN or infinite values \(first at \[3, 5\]\)"),
    ],
)
def test_damaged_book_json_is_rejected(damage, message) -> None:
    weights, biases = _book_network([784, 30, 10], seed=0)
    doc = json.loads(_book_save([784, 30, 10], weights, biases, "CrossEntropyCost"))
    damage(doc)
    with pytest.raises(ModelFormatError, match=message):
        model_format.from_book_json(json.dumps(doc).encode())
