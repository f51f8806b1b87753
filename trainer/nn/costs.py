"""Cost functions: the value (for monitoring) and the output-layer delta dC/dz.

Each value is the mean over the mini-batch; y is one-hot, shape (N, 10).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nndl.trainer.nn.activations import Activation

Array = Any


def _clip_open(a: Array, xp) -> Array:
    """Keeps log(a) and log(1 - a) finite: 1 - eps must still be below 1 in a's dtype."""
    eps = float(xp.finfo(a.dtype).eps)
    return xp.clip(a, eps, 1.0 - eps)


def _quadratic(a: Array, y: Array, xp) -> float:
    return float(0.5 * ((a - y) ** 2).sum() / a.shape[0])


def _quadratic_delta(z: Array, a: Array, y: Array, act: Activation, xp) -> Array:
    return (a - y) * act.prime(z, a, xp)


def _cross_entropy(a: Array, y: Array, xp) -> float:
    a = _clip_open(a, xp)
    return float(-(y * xp.log(a) + (1.0 - y) * xp.log(1.0 - a)).sum() / a.shape[0])


def _cross_entropy_delta(z: Array, a: Array, y: Array, act: Activation, xp) -> Array:
    # The sigmoid's derivative cancels, which is why this cost learns fast (book ch. 3).
    return a - y


def _log_likelihood(a: Array, y: Array, xp) -> float:
    return float(-(y * xp.log(_clip_open(a, xp))).sum() / a.shape[0])


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
