"""Cost functions: the value (for monitoring) and the output-layer delta dC/dz.

Each value is the mean over the mini-batch; y is one-hot, shape (N, 10).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nndl.trainer.nn.activations import Activation

Array = Any
_EPS = 1e-12  # keeps log() finite when an output saturates at exactly 0 or 1


def _quadratic(a: Array, y: Array, xp) -> float:
    return float(0.5 * ((a - y) ** 2).sum() / a.shape[0])


def _quadratic_delta(z: Array, a: Array, y: Array, act: Activation, xp) -> Array:
    return (a - y) * act.prime(z, a, xp)


def _cross_entropy(a: Array, y: Array, xp) -> float:
    # Both logs are floored separately: in float32 1 - 1e-12 rounds to 1, so clipping
    # a itself to [eps, 1 - eps] would still give log(0) * 0 = NaN for a saturated a.
    log_a = xp.log(xp.maximum(a, _EPS))
    log_1ma = xp.log(xp.maximum(1.0 - a, _EPS))
    return float(-(y * log_a + (1.0 - y) * log_1ma).sum() / a.shape[0])


def _cross_entropy_delta(z: Array, a: Array, y: Array, act: Activation, xp) -> Array:
    # The sigmoid's derivative cancels, which is why this cost learns fast (book ch. 3).
    return a - y


def _log_likelihood(a: Array, y: Array, xp) -> float:
    return float(-(y * xp.log(xp.clip(a, _EPS, 1.0))).sum() / a.shape[0])


@dataclass(frozen=True)
class Cost:
    name: str
    value: Callable[[Array, Array, Any], float]
    delta: Callable[[Array, Array, Array, Activation, Any], Array]
    output_activations: tuple[str, ...]  # the output neurons this cost is defined for


COSTS: dict[str, Cost] = {
    c.name: c
    for c in (
        Cost("quadratic", _quadratic, _quadratic_delta, ("sigmoid", "tanh", "linear", "relu")),
        Cost("cross_entropy", _cross_entropy, _cross_entropy_delta, ("sigmoid",)),
        Cost("log_likelihood", _log_likelihood, _cross_entropy_delta, ("softmax",)),
    )
}


def cost(name: str) -> Cost:
    """Looks a cost up by name in the fixed table."""
    try:
        return COSTS[name]
    except KeyError:
        raise ValueError(f"unknown cost {name!r}; expected one of {', '.join(COSTS)}") from None
