"""Layers: each owns its parameters, its forward pass and its backward pass.

Arrays are batch-major: activations are (N, features). A layer's `backward` takes
dC/dz of its own output and returns dC/da of its input, leaving its parameter
gradients in `grads`. The gradients are sums over the mini-batch of the delta it was
given: the network scales the output delta once (by 1/N for the mean, or by -eta/N
so that the gradients already are the SGD step), which is cheaper than scaling every
parameter-sized array after the fact.

`forward(..., keep=True)` keeps on the layer what `backward` needs; inference leaves
it False, so that a served model holds no per-batch buffers (a convolutional layer's
are about 270 kB an image) and several threads can run the same model at once.

Images travel as (N, H*W*C) rows in H, W, C order (channels last), so that a
convolutional layer's output is already the flat input a dense layer expects.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nndl.trainer.nn.activations import activation

Array = Any


def _normal(rng: np.random.Generator, shape: tuple[int, ...], scale: float, xp, dtype) -> Array:
    return xp.asarray(rng.standard_normal(shape) * scale, dtype=dtype)


class Dense:
    """A fully connected layer: a = f(x @ w + b), with optional dropout on its input.

    Dropout is inverted (kept inputs are scaled by 1/keep while training), so the
    network needs no rescaling at inference.
    """

    kind = "dense"

    def __init__(self, n_in: int, n_out: int, act: str = "sigmoid", dropout: float = 0.0) -> None:
        self.n_in, self.n_out = n_in, n_out
        self.act = activation(act)
        self.dropout = dropout
        self.params: dict[str, Array] = {}
        self.grads: dict[str, Array] = {}
        self._x: Array = None
        self._mask: Array = None
        self.z: Array = None
        self.a: Array = None

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"w": (self.n_in, self.n_out), "b": (self.n_out,)}

    def init_params(self, xp, rng: np.random.Generator, scheme: str, dtype) -> None:
        """`large` is the book's N(0,1) of chapter 1; `scaled` is N(0,1/n_in) of chapter 3."""
        scale = 1.0 if scheme == "large" else 1.0 / float(self.n_in) ** 0.5
        self.params = {
            "w": _normal(rng, (self.n_in, self.n_out), scale, xp, dtype),
            "b": _normal(rng, (self.n_out,), 1.0, xp, dtype),
        }

    def config(self) -> dict:
        return {
            "type": self.kind,
            "n_in": self.n_in,
            "n_out": self.n_out,
            "activation": self.act.name,
            "dropout": self.dropout,
        }

    def forward(self, x: Array, xp, rng: np.random.Generator | None = None,
                keep: bool = False) -> Array:
        """(N, n_in) -> (N, n_out); rng given means training, so dropout is applied."""
        mask = None
        if rng is not None and self.dropout > 0.0:
            p_keep = 1.0 - self.dropout
            kept = rng.random(x.shape, dtype=np.float32) < p_keep  # host RNG: same on CPU/GPU
            mask = xp.asarray(kept, dtype=x.dtype)
            mask *= 1.0 / p_keep
            x = x * mask
        z = x @ self.params["w"]  # (N, n_out)
        z += self.params["b"]
        a = self.act.fn(z, xp)
        if keep:
            self._x, self._mask, self.z, self.a = x, mask, z, a
        return a

    def dz_from_da(self, da: Array, xp) -> Array:
        return da * self.act.prime(self.z, self.a, xp)

    def backward(self, dz: Array, xp, need_dx: bool = True) -> Array | None:
        """dz (N, n_out) -> dC/dx (N, n_in); the first layer skips that product."""
        self.grads = {"w": self._x.T @ dz, "b": dz.sum(axis=0)}  # (n_in, n_out), (n_out,)
        if not need_dx:
            return None
        dx = dz @ self.params["w"].T  # (N, n_in)
        if self._mask is not None:
            dx *= self._mask  # dropped inputs had no effect, so they get no gradient
        return dx


class ConvPool:
    """Convolution (valid, stride 1) then max-pooling, then bias and activation.

    Like the book's ConvPoolLayer the bias and activation come after the pooling: for
    a monotonic activation that gives the same result as pooling activations, on
    pool² times fewer numbers. Weights w are (kernel, kernel, C, filters), so that
    reshaping them to the (kernel²·C, filters) matrix of the im2col product is free.
    """

    kind = "conv_pool"
    dropout = 0.0  # dropout belongs to the fully connected layers (book ch. 6)

    def __init__(
        self, in_shape: list[int], filters: int, kernel: int, pool: int = 2, act: str = "sigmoid"
    ) -> None:
        self.in_shape = [int(v) for v in in_shape]  # H, W, C
        h, w, c = self.in_shape
        self.filters, self.kernel, self.pool = filters, kernel, pool
        # Like Theano's ignore_border: conv rows/columns that do not fill a pool are dropped.
        self.ph, self.pw = (h - kernel + 1) // pool, (w - kernel + 1) // pool
        if self.ph < 1 or self.pw < 1:
            raise ValueError(f"a {kernel}x{kernel} kernel with pool {pool} does not fit {h}x{w}")
        self.n_in = h * w * c
        self.n_out = self.ph * self.pw * filters
        self.out_shape = [self.ph, self.pw, filters]
        self.act = activation(act)
        self.params: dict[str, Array] = {}
        self.grads: dict[str, Array] = {}
        self._cols: Array = None
        self._conv: Array = None
        self._pooled: Array = None
        self.z: Array = None
        self.a: Array = None

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        k, c = self.kernel, self.in_shape[2]
        return {"w": (k, k, c, self.filters), "b": (self.filters,)}

    def init_params(self, xp, rng: np.random.Generator, scheme: str, dtype) -> None:
        k, c = self.kernel, self.in_shape[2]
        scale = 1.0 if scheme == "large" else 1.0 / float(k * k * c) ** 0.5  # 1/sqrt(fan-in)
        self.params = {
            "w": _normal(rng, (k, k, c, self.filters), scale, xp, dtype),
            "b": _normal(rng, (self.filters,), 1.0, xp, dtype),
        }

    def config(self) -> dict:
        return {
            "type": self.kind,
            "in_shape": list(self.in_shape),
            "filters": self.filters,
            "kernel": self.kernel,
            "pool": self.pool,
            "activation": self.act.name,
        }

    def _im2col(self, x: Array, xp) -> Array:
        """(N, H*W*C) -> (N*PH*PW*p*p, k*k*C): one row per conv output, pool windows together.

        The rows come ordered (image, pool row, pool column, row in window, column in
        window), so the p*p outputs that one max-pool compares are adjacent.
        """
        h, w, c = self.in_shape
        k, p = self.kernel, self.pool
        x4 = xp.ascontiguousarray(x).reshape(-1, h, w, c)  # (N, H, W, C)
        sn, sh, sw, sc = x4.strides
        view = xp.lib.stride_tricks.as_strided(
            x4,
            shape=(x4.shape[0], self.ph, self.pw, p, p, k, k, c),
            strides=(sn, p * sh, p * sw, sh, sw, sh, sw, sc),
        )
        return view.reshape(-1, k * k * c)  # the one copy of the layer

    def forward(self, x: Array, xp, rng: np.random.Generator | None = None,
                keep: bool = False) -> Array:
        """(N, H*W*C) -> (N, PH*PW*F)."""
        n, f, pp = x.shape[0], self.filters, self.pool * self.pool
        cols = self._im2col(x, xp)  # (N*PH*PW*p², k²C)
        conv = (cols @ self.params["w"].reshape(-1, f)).reshape(-1, pp, f)  # (M, p², F)
        # The max of each window by p² - 1 elementwise maxima over (M, F) slices: much
        # faster than a reduction (or argmax) along the middle axis.
        pooled = conv[:, 0].copy()  # (M, F), M = N*PH*PW
        for j in range(1, pp):
            xp.maximum(pooled, conv[:, j], out=pooled)
        z = (pooled.reshape(n, -1, f) + self.params["b"]).reshape(n, -1)  # (N, PH*PW*F)
        a = self.act.fn(z, xp)
        if keep:
            self._cols, self._conv, self._pooled, self.z, self.a = cols, conv, pooled, z, a
        return a

    def dz_from_da(self, da: Array, xp) -> Array:
        return da * self.act.prime(self.z, self.a, xp)

    def backward(self, dz: Array, xp, need_dx: bool = True) -> Array | None:
        """dz (N, PH*PW*F) -> dC/dx (N, H*W*C)."""
        n, f, p = dz.shape[0], self.filters, self.pool
        d = dz.reshape(-1, f)  # (M, F)
        conv, pooled = self._conv, self._pooled
        dconv = xp.empty_like(conv)  # (M, p², F)
        # Each window's gradient goes to its first maximal input only: blank image areas
        # tie, and sending it to every tied input would multiply it.
        free = xp.ones(pooled.shape, dtype=bool)  # (M, F): windows not yet claimed
        for j in range(p * p):
            hit = conv[:, j] == pooled
            hit &= free
            free ^= hit
            xp.multiply(hit, d, out=dconv[:, j])
        dconv = dconv.reshape(-1, f)  # (N*PH*PW*p², F)
        w2 = self.params["w"].reshape(-1, f)  # (k²C, F)
        self.grads = {
            "w": (self._cols.T @ dconv).reshape(self.params["w"].shape),
            "b": d.sum(axis=0),
        }
        if not need_dx:
            return None
        return self._col2im((dconv @ w2.T), n, xp)

    def _col2im(self, dcols: Array, n: int, xp) -> Array:
        """Adds each patch gradient (N*PH*PW*p², k²C) back onto the pixels it came from."""
        h, w, c = self.in_shape
        k, p, ph, pw = self.kernel, self.pool, self.ph, self.pw
        d = dcols.reshape(n, ph, pw, p, p, k, k, c)
        dx = xp.zeros((n, h, w, c), dtype=dcols.dtype)
        for i in range(k):  # k² strided adds, each over the whole batch
            for j in range(k):
                target = dx[:, i : i + ph * p, j : j + pw * p, :].reshape(n, ph, p, pw, p, c)
                target.transpose(0, 1, 3, 2, 4, 5)[...] += d[:, :, :, :, :, i, j, :]
        return dx.reshape(n, h * w * c)


LAYER_TYPES: dict[str, type[Dense] | type[ConvPool]] = {"dense": Dense, "conv_pool": ConvPool}


def layer_from_config(config: dict) -> Dense | ConvPool:
    """Builds a layer from its `config()` dict; the type is looked up in a fixed table."""
    kind = config.get("type")
    if kind not in LAYER_TYPES:
        raise ValueError(f"unknown layer type {kind!r}; expected one of {', '.join(LAYER_TYPES)}")
    args = {k: v for k, v in config.items() if k != "type"}
    if "activation" in args:
        args["act"] = args.pop("activation")
    try:
        return LAYER_TYPES[kind](**args)
    except TypeError as e:
        raise ValueError(f"bad {kind} layer config {config!r}: {e}") from None
