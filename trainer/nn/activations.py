"""Neuron activations, each with the derivative that backpropagation needs.

`prime` takes both z and a = f(z) because for sigmoid and tanh the derivative is
cheapest from a, for ReLU from z.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Array = Any


def _sigmoid(z: Array, xp) -> Array:
    # sigmoid(z) = (1 + tanh(z/2)) / 2: tanh never overflows, so there is no exp(-z)
    # to blow up for large negative z and no clip is needed.
    a = xp.tanh(z * 0.5)
    a *= 0.5
    a += 0.5
    return a


def _sigmoid_prime(z: Array, a: Array, xp) -> Array:
    return a * (1.0 - a)


def _tanh(z: Array, xp) -> Array:
    return xp.tanh(z)


def _tanh_prime(z: Array, a: Array, xp) -> Array:
    return 1.0 - a * a


def _relu(z: Array, xp) -> Array:
    return xp.maximum(z, 0.0)


def _relu_prime(z: Array, a: Array, xp) -> Array:
    return (z > 0).astype(z.dtype)


def _linear(z: Array, xp) -> Array:
    return z


def _linear_prime(z: Array, a: Array, xp) -> Array:
    return xp.ones_like(z)


def _softmax(z: Array, xp) -> Array:
    # Subtracting the row maximum keeps exp from overflowing; the result is unchanged.
    e = xp.exp(z - z.max(axis=1, keepdims=True))
    e /= e.sum(axis=1, keepdims=True)
    return e


def _softmax_prime(z: Array, a: Array, xp) -> Array:
    # Only the diagonal of the Jacobian: softmax is meant to be paired with the
    # log-likelihood cost, whose delta (a - y) needs no activation derivative.
    return a * (1.0 - a)


@dataclass(frozen=True)
class Activation:
    name: str
    fn: Callable[[Array, Any], Array]
    prime: Callable[[Array, Array, Any], Array]


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("sigmoid", _sigmoid, _sigmoid_prime),
        Activation("tanh", _tanh, _tanh_prime),
        Activation("relu", _relu, _relu_prime),
        Activation("linear", _linear, _linear_prime),
        Activation("softmax", _softmax, _softmax_prime),
    )
}


def activation(name: str) -> Activation:
    """Looks an activation up by name in the fixed table (never by attribute lookup)."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; expected one of {', '.join(ACTIVATIONS)}"
        ) from None
