"""Backpropagation against central finite differences, in float64, for every piece."""

from __future__ import annotations

import numpy as np
import pytest

from nndl.trainer.nn.activations import ACTIVATIONS
from nndl.trainer.nn.costs import COSTS
from nndl.trainer.nn.layers import ConvPool, Dense
from nndl.trainer.nn.network import Network

EPS = 1e-6


def _numeric_vs_backprop(net: Network, x: np.ndarray, y: np.ndarray, seed: int | None = None):
    """Largest |finite difference - backprop| over all parameters, and the largest gradient.

    With `seed` the same dropout mask is drawn for every evaluation.
    """

    def rng():
        return None if seed is None else np.random.default_rng(seed)

    def cost() -> float:
        return net.cost.value(net.feedforward(x, rng()), y, np)

    net.gradients(x, y, rng())
    worst, biggest = 0.0, 0.0
    for layer in net.layers:
        for name, p in layer.params.items():
            g = layer.grads[name]
            for i in np.ndindex(p.shape):
                old = p[i]
                p[i] = old + EPS
                up = cost()
                p[i] = old - EPS
                down = cost()
                p[i] = old
                worst = max(worst, abs((up - down) / (2 * EPS) - g[i]))
                biggest = max(biggest, abs(g[i]))
    return worst, biggest


def _data(n: int, n_in: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, n_in)), np.eye(10)[rng.integers(0, 10, n)]


@pytest.mark.parametrize("hidden", [a for a in ACTIVATIONS if a != "softmax"])
@pytest.mark.parametrize("cost", list(COSTS))
def test_dense_layers_every_activation_and_cost(hidden: str, cost: str) -> None:
    output = {"quadratic": "sigmoid", "cross_entropy": "sigmoid", "log_likelihood": "softmax"}
    net = Network([Dense(12, 7, hidden), Dense(7, 5, hidden), Dense(5, 10, output[cost])],
                  cost, dtype=np.float64)
    net.init_params(seed=3)
    x, y = _data(6, 12)
    worst, biggest = _numeric_vs_backprop(net, x, y)
    assert biggest > 1e-3  # the check is not vacuous
    assert worst < 1e-7


@pytest.mark.parametrize("output", ["tanh", "linear", "relu"])
def test_quadratic_cost_with_other_outputs(output: str) -> None:
    net = Network([Dense(12, 6, "tanh"), Dense(6, 10, output)], "quadratic", dtype=np.float64)
    net.init_params(seed=4)
    x, y = _data(5, 12)
    worst, biggest = _numeric_vs_backprop(net, x, y)
    assert biggest > 1e-3
    assert worst < 1e-7


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("pool", [1, 2])
def test_two_conv_pool_layers(act: str, pool: int) -> None:
    # 9x9x2 -> conv 3 -> 7x7 (pool 2 crops to 6x6) -> 3x3x3 -> conv 2 -> 2x2 -> pool -> ...
    first = ConvPool([9, 9, 2], filters=3, kernel=3, pool=pool, act=act)
    h, w, c = first.out_shape
    second = ConvPool([h, w, c], filters=4, kernel=2, pool=1, act=act)
    net = Network([first, second, Dense(second.n_out, 10, "softmax")], "log_likelihood",
                  dtype=np.float64)
    net.init_params(seed=5)
    x, y = _data(3, 9 * 9 * 2)
    worst, biggest = _numeric_vs_backprop(net, x, y)
    assert biggest > 1e-3
    assert worst < 1e-7


def test_conv_gradient_on_blank_regions_goes_to_one_input_per_window() -> None:
    """Ties in a pool window (blank image areas) must not multiply the gradient."""
    first = ConvPool([8, 8, 1], filters=2, kernel=3, pool=2, act="sigmoid")
    second = ConvPool(first.out_shape, filters=2, kernel=2, pool=1, act="sigmoid")
    net = Network([first, second, Dense(second.n_out, 10, "softmax")], "log_likelihood",
                  dtype=np.float64)
    net.init_params(seed=6)
    x, y = _data(2, 64)
    x[:, :32] = 0.0  # the top half is blank, as MNIST borders are
    worst, _ = _numeric_vs_backprop(net, x, y)
    assert worst < 1e-7


def test_dropout_gradient_with_a_fixed_mask() -> None:
    net = Network([Dense(12, 8, "relu"), Dense(8, 8, "relu", dropout=0.5),
                   Dense(8, 10, "softmax", dropout=0.5)], "log_likelihood", dtype=np.float64)
    net.init_params(seed=7)
    x, y = _data(4, 12)
    worst, biggest = _numeric_vs_backprop(net, x, y, seed=11)
    assert biggest > 1e-3
    assert worst < 1e-7


@pytest.mark.parametrize("name", [a for a in ACTIVATIONS if a != "softmax"])
def test_activation_derivatives(name: str) -> None:
    act = ACTIVATIONS[name]
    z = np.linspace(-4.0, 4.0, 41) + 0.013  # avoids ReLU's kink at exactly 0
    numeric = (act.fn(z + EPS, np) - act.fn(z - EPS, np)) / (2 * EPS)
    np.testing.assert_allclose(act.prime(z, act.fn(z, np), np), numeric, atol=1e-8)


def test_scale_gives_the_sgd_step() -> None:
    """gradients(scale=-eta/N) must equal -eta times the mean gradient."""
    net = Network([Dense(12, 6), Dense(6, 10)], "cross_entropy", dtype=np.float64)
    net.init_params(seed=8)
    x, y = _data(5, 12)
    net.gradients(x, y)
    mean = [dict(layer.grads) for layer in net.layers]
    net.gradients(x, y, scale=-0.3 / 5)
    for layer, g in zip(net.layers, mean, strict=True):
        for k in g:
            np.testing.assert_allclose(layer.grads[k], -0.3 * g[k], rtol=1e-12)
