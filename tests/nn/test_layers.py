"""Layer forward passes against plain reference implementations."""

from __future__ import annotations

import numpy as np
import pytest

from nndl.trainer.nn.layers import ConvPool, Dense, layer_from_config


def _naive_conv_pool(x: np.ndarray, w: np.ndarray, b: np.ndarray, pool: int) -> np.ndarray:
    """Loops straight from the definition: (N, H, W, C) -> pre-activation (N, PH, PW, F)."""
    n, h, wd, _ = x.shape
    k, f = w.shape[0], w.shape[3]
    conv = np.zeros((n, h - k + 1, wd - k + 1, f))
    for i in range(h - k + 1):
        for j in range(wd - k + 1):
            patch = x[:, i : i + k, j : j + k, :]  # (N, k, k, C)
            conv[:, i, j, :] = np.tensordot(patch, w, axes=([1, 2, 3], [0, 1, 2]))
    ph, pw = conv.shape[1] // pool, conv.shape[2] // pool
    out = np.zeros((n, ph, pw, f))
    for i in range(ph):
        for j in range(pw):
            out[:, i, j, :] = conv[:, i * pool : (i + 1) * pool, j * pool : (j + 1) * pool, :].max(
                axis=(1, 2)
            )
    return out + b


@pytest.mark.parametrize(("shape", "kernel", "pool"), [([28, 28, 1], 5, 2), ([12, 12, 3], 5, 2),
                                                      ([9, 9, 2], 4, 3), ([6, 6, 1], 3, 1)])
def test_conv_pool_matches_the_definition(shape: list[int], kernel: int, pool: int) -> None:
    layer = ConvPool(shape, filters=4, kernel=kernel, pool=pool, act="linear")
    layer.init_params(np, np.random.default_rng(0), "scaled", np.float64)
    x = np.random.default_rng(1).random((3, int(np.prod(shape))))
    want = _naive_conv_pool(x.reshape(3, *shape), layer.params["w"], layer.params["b"], pool)
    np.testing.assert_allclose(layer.forward(x, np), want.reshape(3, -1), rtol=1e-12)


def test_conv_pool_matches_pytorch() -> None:
    torch = pytest.importorskip("torch")
    layer = ConvPool([28, 28, 1], filters=20, kernel=5, pool=2, act="relu")
    layer.init_params(np, np.random.default_rng(0), "scaled", np.float64)
    x = np.random.default_rng(1).random((4, 784))
    tw = torch.from_numpy(layer.params["w"].transpose(3, 2, 0, 1).copy())  # (F, C, k, k)
    tx = torch.from_numpy(x.reshape(4, 1, 28, 28))
    conv = torch.nn.functional.conv2d(tx, tw, torch.from_numpy(layer.params["b"]))
    want = torch.relu(torch.nn.functional.max_pool2d(conv, 2)).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(layer.forward(x, np), want.reshape(4, -1), rtol=1e-10, atol=1e-12)


def test_conv_output_feeds_a_dense_layer() -> None:
    layer = ConvPool([28, 28, 1], filters=20, kernel=5, pool=2)
    assert (layer.out_shape, layer.n_out) == ([12, 12, 20], 2880)
    assert Dense(layer.n_out, 10).n_in == 2880


def test_a_kernel_that_does_not_fit_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        ConvPool([4, 4, 1], filters=2, kernel=5, pool=1)


@pytest.mark.parametrize("config", [
    {"type": "lambda", "n_in": 1},
    {"type": "dense", "n_in": 3, "n_out": 2, "activation": "sigmoid", "evil": 1},
    {"type": "dense", "n_in": 3, "n_out": 2, "activation": "os.system"},
])
def test_layer_configs_are_looked_up_in_fixed_tables(config: dict) -> None:
    with pytest.raises(ValueError):
        layer_from_config(config)


@pytest.mark.parametrize("layer", [Dense(784, 30, "tanh", dropout=0.5),
                                   ConvPool([28, 28, 1], 20, 5, 2, "relu")])
def test_config_round_trip(layer: Dense | ConvPool) -> None:
    again = layer_from_config(layer.config())
    assert again.config() == layer.config()
    assert again.param_shapes() == layer.param_shapes()
