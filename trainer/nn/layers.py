"""Layers: each owns its parameters, its forward pass and its backward pass.

Arrays are batch-major: activations are (N, features). A layer's `backward` takes
dC/dz of its own output and returns dC/da of its input, leaving its parameter
gradients (already averaged over the mini-batch) in `grads`.
"""

from __future__ import annotations

from typing import Any

from nndl.trainer.nn.activations import activation

Array = Any


class Dense:
    """A fully connected layer: a = f(x @ w + b), with optional dropout on its input."""

    kind = "dense"

    def __init__(
        self, n_in: int, n_out: int, act: str = "sigmoid", dropout: float = 0.0
    ) -> None:
        self.n_in, self.n_out = n_in, n_out
        self.act = activation(act)
        self.dropout = dropout
        self.params: dict[str, Array] = {}
        self.grads: dict[str, Array] = {}
        self._x: Array = None
        self._z: Array = None
        self._a: Array = None

    def init_params(self, xp, rng, scheme: str, dtype) -> None:
        """`large` is the book's N(0,1) of chapter 1; `scaled` is N(0,1/n_in) of chapter 3."""
        scale = 1.0 if scheme == "large" else 1.0 / float(self.n_in) ** 0.5
        w = rng.standard_normal((self.n_in, self.n_out)) * scale
        b = rng.standard_normal(self.n_out)
        self.params = {"w": xp.asarray(w, dtype=dtype), "b": xp.asarray(b, dtype=dtype)}

    def config(self) -> dict:
        return {
            "type": self.kind,
            "n_in": self.n_in,
            "n_out": self.n_out,
            "activation": self.act.name,
            "dropout": self.dropout,
        }

    def forward(self, x: Array, xp, rng=None) -> Array:
        """rng given means training: inverted dropout, so inference needs no rescale."""
        if rng is not None and self.dropout > 0.0:
            keep = 1.0 - self.dropout
            mask = xp.asarray(rng.random(x.shape) < keep, dtype=x.dtype) / keep
            x = x * mask
        self._x = x
        self._z = x @ self.params["w"] + self.params["b"]  # (N, n_out)
        self._a = self.act.fn(self._z, xp)
        return self._a

    def dz_from_da(self, da: Array, xp) -> Array:
        return da * self.act.prime(self._z, self._a, xp)

    def backward(self, dz: Array, xp) -> Array:
        n = dz.shape[0]
        self.grads = {"w": self._x.T @ dz / n, "b": dz.sum(axis=0) / n}
        return dz @ self.params["w"].T  # (N, n_in)

    @property
    def z(self) -> Array:
        return self._z


LAYER_TYPES = {"dense": Dense}


def layer_from_config(config: dict):
    """Builds a layer from its `config()` dict; the type is looked up in a fixed table."""
    kind = config.get("type")
    if kind not in LAYER_TYPES:
        raise ValueError(f"unknown layer type {kind!r}; expected one of {', '.join(LAYER_TYPES)}")
    args = {k: v for k, v in config.items() if k != "type"}
    if "activation" in args:
        args["act"] = args.pop("activation")
    return LAYER_TYPES[kind](**args)
