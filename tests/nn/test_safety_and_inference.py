"""Numerical safety, dropout and ensembles at inference, and the GPU path where there is one."""

from __future__ import annotations

import numpy as np
import pytest

from nndl.trainer.nn.activations import ACTIVATIONS
from nndl.trainer.nn.backend import array_module, to_numpy
from nndl.trainer.nn.costs import COSTS
from nndl.trainer.nn.ensemble import Ensemble, probabilities
from nndl.trainer.nn.layers import ConvPool, Dense
from nndl.trainer.nn.network import Network


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activations_take_huge_inputs_without_warnings(name: str, dtype) -> None:
    z = np.array([[-1e30, -1e4, -90.0, 0.0, 90.0, 1e4, 1e30]], dtype=dtype)
    a = ACTIVATIONS[name].fn(z, np)  # warnings are errors under pytest
    assert np.isfinite(a).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(COSTS))
def test_costs_of_saturated_outputs_are_finite(name: str, dtype) -> None:
    y = np.eye(10, dtype=dtype)[[3, 4]]
    for a in (y.copy(), 1.0 - y, np.zeros_like(y), np.ones_like(y)):
        assert np.isfinite(COSTS[name].value(a, y, np))


def test_a_confidently_wrong_output_costs_a_lot_but_finitely() -> None:
    y = np.eye(10, dtype=np.float32)[[3]]
    assert 20.0 < COSTS["cross_entropy"].value(1.0 - y, y, np) < 1e4


def _dropout_net() -> Network:
    net = Network([Dense(20, 50, "relu"), Dense(50, 10, "linear", dropout=0.5)], "quadratic",
                  dtype=np.float64)
    net.init_params(seed=1)
    return net


def test_dropout_is_off_at_inference() -> None:
    net, x = _dropout_net(), np.random.default_rng(2).random((4, 20))
    np.testing.assert_array_equal(net.feedforward(x), net.feedforward(x))
    assert not np.allclose(net.feedforward(x, np.random.default_rng(3)), net.feedforward(x))


def test_inverted_dropout_needs_no_rescaling_at_inference() -> None:
    """The mean training-mode output over many masks is the inference output."""
    net, x = _dropout_net(), np.random.default_rng(2).random((4, 20))
    rng = np.random.default_rng(4)
    mean = np.mean([net.feedforward(x, rng) for _ in range(4000)], axis=0)
    np.testing.assert_allclose(mean, net.feedforward(x), rtol=0.05, atol=0.05)


def test_inference_keeps_nothing_on_the_layers() -> None:
    """A served model must not hold a batch's buffers (a conv layer's are ~270 kB an image)."""
    net = _net(0)
    net.feedforward(np.random.default_rng(1).random((50, 784), dtype=np.float32))
    for layer in net.layers:
        kept = {k: v for k, v in vars(layer).items()
                if k not in ("params", "grads") and isinstance(v, np.ndarray)}
        assert kept == {}, f"{type(layer).__name__} kept {sorted(kept)}"


def test_threads_sharing_one_network_get_their_own_answers() -> None:
    from concurrent.futures import ThreadPoolExecutor

    net, rng = _net(0), np.random.default_rng(5)
    batches = [rng.random((int(rng.integers(1, 40)), 784), dtype=np.float32) for _ in range(64)]
    alone = [net.feedforward(x) for x in batches]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(net.feedforward, batches))
    for want, got in zip(alone, together, strict=True):
        np.testing.assert_array_equal(got, want)


def _net(seed: int, output: str = "softmax") -> Network:
    cost = "log_likelihood" if output == "softmax" else "cross_entropy"
    net = Network([ConvPool([28, 28, 1], 2, 5, 2, "relu"), Dense(288, 10, output)], cost)
    net.init_params(seed=seed)
    return net


@pytest.mark.parametrize("output", ["softmax", "sigmoid"])
def test_probabilities_are_distributions(output: str) -> None:
    x = np.random.default_rng(0).random((5, 784), dtype=np.float32)
    p = probabilities(_net(1, output), x)
    assert p.shape == (5, 10) and (p >= 0).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)


def test_ensemble_averages_and_votes() -> None:
    x = np.random.default_rng(0).random((50, 784), dtype=np.float32)
    members = [_net(s) for s in (1, 2, 3)]
    ensemble = Ensemble(members)
    mean = np.mean([probabilities(m, x) for m in members], axis=0)
    np.testing.assert_allclose(ensemble.probabilities(x), mean, rtol=1e-6)
    np.testing.assert_array_equal(ensemble.predict(x), mean.argmax(axis=1))
    votes = np.stack([m.predict(x) for m in members])  # (3, N)
    majority = [np.bincount(v, minlength=10).max() >= 2 for v in votes.T]
    for i in np.flatnonzero(majority):
        assert ensemble.vote(x[i : i + 1])[0] == np.bincount(votes[:, i]).argmax()


def test_an_ensemble_of_one_is_the_network() -> None:
    x = np.random.default_rng(0).random((5, 784), dtype=np.float32)
    net = _net(1)
    np.testing.assert_array_equal(Ensemble([net]).predict(x), net.predict(x))


def test_rebuilt_network_answers_the_same() -> None:
    net, x = _net(1), np.random.default_rng(0).random((5, 784), dtype=np.float32)
    params = [{k: to_numpy(v) for k, v in p.items()} for p in net.parameters()]
    again = Network.from_config(net.config(), params)
    np.testing.assert_array_equal(again.feedforward(x), net.feedforward(x))
    assert [{k: v.shape for k, v in p.items()} for p in params] == [
        layer.param_shapes() for layer in again.layers]


def test_gpu_matches_cpu() -> None:
    cupy = pytest.importorskip("cupy")
    try:
        xp, device, _ = array_module("gpu")
    except Exception as e:  # no CUDA device behind an installed CuPy
        pytest.skip(str(e))
    assert device == "gpu"
    cpu, x = _net(1), np.random.default_rng(0).random((5, 784), dtype=np.float32)
    params = [{k: to_numpy(v) for k, v in p.items()} for p in cpu.parameters()]
    gpu = Network.from_config(cpu.config(), params, xp=cupy)
    y = np.eye(10, dtype=np.float32)[[1, 2, 3, 4, 5]]
    gpu.gradients(cupy.asarray(x), cupy.asarray(y))
    cpu.gradients(x, y)
    np.testing.assert_allclose(to_numpy(gpu.feedforward(cupy.asarray(x))), cpu.feedforward(x),
                               rtol=1e-4, atol=1e-6)
    for g, c in zip(gpu.layers, cpu.layers, strict=True):
        for k in c.grads:
            np.testing.assert_allclose(to_numpy(g.grads[k]), c.grads[k], rtol=1e-3, atol=1e-5)
