"""Job specs and presets as a worker receives them, and the expanded training set."""

from __future__ import annotations

import numpy as np
import pytest

from nndl.trainer.errors import InvalidSpecError
from nndl.trainer.expand import expand, rotated, shifted
from nndl.trainer.presets import PRESETS, resolve
from nndl.trainer.spec import JobSpec
from nndl.trainer.training import build_network

BOOK_ROWS = ["ch1", "ch1-100", "ch3", "ch3-100", "ch3-l2", "ch6-shallow", "ch6-conv1",
             "ch6-conv2", "ch6-relu", "ch6-expanded", "ch6-dropout", "ch6-ensemble"]


def test_every_row_of_the_book_is_a_preset() -> None:
    assert list(PRESETS) == BOOK_ROWS
    for row in BOOK_ROWS:
        spec = resolve(row)
        assert 0.95 < spec.book_accuracy < 1.0 and spec.preset == row
        assert JobSpec.from_json(spec.to_json()) == spec
        net = build_network(spec, np, 0)
        assert net.feedforward(np.zeros((2, 784), np.float32)).shape == (2, 10)


def test_the_conv_presets_have_the_books_shape() -> None:
    net = build_network(resolve("ch6-dropout"), np, 0)
    assert [layer.n_out for layer in net.layers] == [12 * 12 * 20, 4 * 4 * 40, 1000, 1000, 10]
    assert [layer.dropout for layer in net.layers] == [0.0, 0.0, 0.5, 0.5, 0.5]
    assert resolve("ch6-ensemble").ensemble == 5


def test_resolving_does_not_alias_the_presets() -> None:
    resolve("ch6-conv2").conv[0]["filters"] = 99
    assert resolve("ch6-conv2").conv[0]["filters"] == 20


@pytest.mark.parametrize(("overrides", "field"), [
    ({"conv": [{"filters": 20, "kernel": 5}]}, "conv[0]"),
    ({"conv": [{"filters": 1000, "kernel": 5, "pool": 2}]}, "conv[0].filters"),
    ({"conv": [{"filters": 20, "kernel": 5, "pool": 2}] * 4}, "conv"),
    ({"conv": [{"filters": 8, "kernel": 9, "pool": 4}] * 2}, "does not fit"),
    ({"conv": [{"filters": 256, "kernel": 9, "pool": 1}] * 2}, "multiply-adds"),
    ({"conv": "20x5"}, "conv"),
    ({"layers": [784, 4096, 4096, 10]}, "parameters"),
    ({"expand": "shift+rotate"}, "rotate"),
    ({"rotate": 90.0, "expand": "shift+rotate"}, "rotate"),
    ({"expand": "mirror"}, "expand"),
])
def test_bad_specs_name_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(InvalidSpecError, match=field.replace("[", r"\[").replace("]", r"\]")):
        JobSpec.from_dict(overrides)


def test_unknown_preset() -> None:
    with pytest.raises(InvalidSpecError, match="unknown preset"):
        resolve("ch7")


def test_shift_expansion_is_the_books() -> None:
    x = np.zeros((2, 784), np.float32)
    x[:, 5 * 28 + 7] = 1.0
    big, labels = expand(x, np.array([3, 4]), "shift")
    assert big.shape == (10, 784) and list(labels) == [3, 4] * 5
    np.testing.assert_array_equal(big[:2], x)  # originals first
    moved = {tuple(np.argwhere(img.reshape(28, 28))[0]) for img in big[2:]}
    assert moved == {(4, 7), (6, 7), (5, 6), (5, 8)}
    edge = np.zeros((1, 784), np.float32)
    edge[0, 0] = 1.0
    assert shifted(edge, -1, 0).sum() == 0.0  # moved off the image, nothing wraps round


def test_rotation_keeps_the_digit(small) -> None:
    x = small.training[0][:20]
    turned = rotated(x, 10.0)
    np.testing.assert_allclose(rotated(x, 0.0), x, atol=1e-6)
    assert not np.allclose(turned, x)
    np.testing.assert_allclose(turned.sum(axis=1), x.sum(axis=1), rtol=0.05)
    big, _ = expand(x, np.arange(20), "shift+rotate", rotate=10.0)
    assert big.shape == (140, 784)


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "the job spec is not valid JSON"),
    ("[1, 2]", "a job spec must be a JSON object"),
    ("[" * 5000, "nested too deeply"),  # under the size limit, over Python's stack
    ("{}" + " " * 20_000, "larger than"),
])
def test_spec_text_that_is_no_spec_is_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(InvalidSpecError, match=message):
        JobSpec.from_json(text)
