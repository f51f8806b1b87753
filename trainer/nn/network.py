"""A feed-forward network: layers in order and the cost that trains them."""

from __future__ import annotations

from typing import Any

import numpy as np

from nndl.trainer.nn.costs import cost as cost_named
from nndl.trainer.nn.layers import ConvPool, Dense, layer_from_config

Array = Any


class Network:
    """Layers applied in order; the last one's activations are the ten outputs.

    >>> import numpy as np
    >>> from nndl.trainer.nn.layers import Dense
    >>> net = Network([Dense(784, 30), Dense(30, 10)], "cross_entropy", xp=np)
    >>> net.init_params(seed=1, scheme="scaled")
    >>> net.feedforward(np.zeros((2, 784), dtype=np.float32)).shape
    (2, 10)
    """

    def __init__(self, layers: list[Dense | ConvPool], cost: str, xp=np, dtype=np.float32) -> None:
        self.layers = layers
        self.cost = cost_named(cost)
        self.xp = xp
        self.dtype = dtype
        out = layers[-1].act.name
        if out not in self.cost.output_activations:
            raise ValueError(
                f"the {self.cost.name} cost needs {' or '.join(self.cost.output_activations)} "
                f"output neurons, not {out}"
            )
        for before, after in zip(layers[:-1], layers[1:], strict=True):
            if before.n_out != after.n_in:
                raise ValueError(f"a layer with {before.n_out} outputs feeds one of {after.n_in}")

    def init_params(self, seed: int, scheme: str = "scaled") -> None:
        rng = np.random.default_rng(seed)  # host RNG: the same weights on CPU and GPU
        for layer in self.layers:
            layer.init_params(self.xp, rng, scheme, self.dtype)

    def feedforward(self, x: Array, rng: np.random.Generator | None = None,
                    keep: bool = False) -> Array:
        """(N, 784) -> (N, 10); rng given means dropout on; keep: for `gradients` only.

        Without keep the layers store nothing, so inference is safe from several threads.
        """
        a = x
        for layer in self.layers:
            a = layer.forward(a, self.xp, rng, keep)
        return a

    def gradients(
        self, x: Array, y: Array, rng: np.random.Generator | None = None, scale: float | None = None
    ) -> None:
        """Backpropagation over the whole mini-batch; leaves grads in each layer.

        y is one-hot (N, 10). Backpropagation is linear in the output delta, so scaling
        that delta scales every gradient: the default 1/N gives the mean gradient,
        SGD passes -eta/N and gets its update directly.
        """
        xp = self.xp
        a = self.feedforward(x, rng, keep=True)
        last = self.layers[-1]
        dz = self.cost.delta(last.z, a, y, last.act, xp)  # (N, 10)
        dz *= (1.0 / x.shape[0]) if scale is None else scale
        for i in range(len(self.layers) - 1, -1, -1):
            da = self.layers[i].backward(dz, xp, need_dx=i > 0)
            if i:
                dz = self.layers[i - 1].dz_from_da(da, xp)

    def predict(self, x: Array) -> Array:
        return self.feedforward(x).argmax(axis=1)

    def parameters(self) -> list[dict[str, Array]]:
        return [layer.params for layer in self.layers]

    def config(self) -> dict:
        return {"layers": [layer.config() for layer in self.layers], "cost": self.cost.name}

    @classmethod
    def from_config(
        cls, config: dict, params: list[dict[str, np.ndarray]], xp=np, dtype=np.float32
    ) -> Network:
        """Rebuilds a trained network from `config()` and host parameter arrays."""
        layers = [layer_from_config(c) for c in config["layers"]]
        net = cls(layers, config["cost"], xp=xp, dtype=dtype)
        # Shapes are the caller's to check (the registry names the bad array precisely;
        # `layer.param_shapes()` says what each layer needs).
        for layer, p in zip(layers, params, strict=True):
            layer.params = {k: xp.asarray(v, dtype=dtype) for k, v in p.items()}
        return net

