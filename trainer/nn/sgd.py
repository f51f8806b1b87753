"""Mini-batch stochastic gradient descent, one epoch at a time.

The caller drives the epochs (`SGD.run_epoch`), so that plumbing around the library
can checkpoint, cancel or report between them without the library knowing how.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from nndl.trainer.errors import TrainingDivergedError
from nndl.trainer.nn.backend import to_numpy
from nndl.trainer.nn.network import Network

Array = Any


@dataclass(frozen=True)
class SGDConfig:
    """Hyper-parameters of one training run (the book's names where it has them)."""

    epochs: int = 30
    mini_batch_size: int = 10
    eta: float = 0.5
    lmbda: float = 0.0  # L2 regularisation (network2.py's convention: decay eta*lmbda/n)
    l1: float = 0.0  # L1 regularisation, same convention
    momentum: float = 0.0
    seed: int = 0
    early_stopping: int = 0  # stop after this many epochs without improvement; 0 = never
    eta_schedule: int = 0  # halve eta after this many epochs without improvement; 0 = fixed
    monitor_size: int = 50_000  # training cost/accuracy are measured on the first this many


@dataclass
class EpochReport:
    epoch: int  # 1-based
    epochs: int
    eta: float
    seconds: float  # training time of the epoch, without the evaluation passes
    training_cost: float
    validation_accuracy: float  # 0..1, nan without validation data
    validation_cost: float = float("nan")
    training_accuracy: float = float("nan")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class _State:
    epoch: int = 0
    eta: float = 0.0
    best_accuracy: float = -1.0
    best_epoch: int = 0
    best_params: list[dict[str, np.ndarray]] | None = None
    stalled: int = 0  # epochs since the last improvement (for early stopping)
    schedule_stalled: int = 0  # the same, reset at each halving of eta
    history: list[dict] = field(default_factory=list)


def one_hot(labels: Array, xp, dtype) -> Array:
    """(N,) int labels -> (N, 10) rows with a single 1."""
    out = xp.zeros((labels.shape[0], 10), dtype=dtype)
    out[xp.arange(labels.shape[0]), labels] = 1.0
    return out


def evaluate(
    net: Network, x: Array, labels: Array, lmbda: float = 0.0, chunk: int = 1000
) -> tuple[float, float]:
    """(mean cost with the book's L2 term, accuracy) in one pass, in chunks for memory."""
    xp = net.xp
    total, right = 0.0, 0
    for i in range(0, x.shape[0], chunk):
        xb, yb = x[i : i + chunk], labels[i : i + chunk]
        a = net.feedforward(xb)  # (chunk, 10)
        total += net.cost.value(a, one_hot(yb, xp, net.dtype), xp) * xb.shape[0]
        right += int((a.argmax(axis=1) == yb).sum())
    n = max(1, x.shape[0])
    l2 = 0.5 * lmbda / n * sum(float((p["w"] ** 2).sum()) for p in net.parameters() if "w" in p)
    return total / n + l2, right / n


class SGD:
    """Trains `net` on (x, labels) with the given configuration, epoch by epoch."""

    def __init__(
        self,
        net: Network,
        training: tuple[Array, Array],
        validation: tuple[Array, Array] | None,
        config: SGDConfig,
    ) -> None:
        self.net, self.config = net, config
        xp = net.xp
        self.x = xp.asarray(training[0], dtype=net.dtype)  # (n, 784)
        self.labels = xp.asarray(training[1])
        self.y = one_hot(self.labels, xp, net.dtype)  # (n, 10), made once for all epochs
        self.validation = (
            None
            if validation is None
            else (xp.asarray(validation[0], dtype=net.dtype), xp.asarray(validation[1]))
        )
        self.state = _State(eta=config.eta)
        self.velocities = [
            {k: xp.zeros_like(v) for k, v in p.items()} for p in net.parameters()
        ]

    @property
    def done(self) -> bool:
        c, s = self.config, self.state
        if s.epoch >= c.epochs:
            return True
        if c.early_stopping and s.stalled >= c.early_stopping:
            return True
        # The book's schedule ends once eta has been halved down to eta0/128.
        return bool(c.eta_schedule) and s.eta <= c.eta / 128.0

    def _rng(self) -> np.random.Generator:
        # Seeded by (seed, epoch) so that a run resumed from a checkpoint shuffles and
        # drops out exactly as the uninterrupted run would have.
        return np.random.default_rng([self.config.seed, self.state.epoch])

    def run_epoch(self) -> EpochReport:
        started = time.perf_counter()
        c, s, net, xp = self.config, self.state, self.net, self.net.xp
        rng = self._rng()
        n = self.x.shape[0]
        perm = xp.asarray(rng.permutation(n))
        # On the CPU each batch is gathered on its own: copying the shuffled set first
        # costs more (50,000 images are 157 MB to allocate and write every epoch). On a
        # GPU that copy is cheap and two gathers per batch would be 10,000 kernel launches.
        whole = xp is not np
        x, y = (self.x[perm], self.y[perm]) if whole else (self.x, self.y)
        dropout_rng = rng if any(layer.dropout for layer in net.layers) else None
        m = c.mini_batch_size
        # A diverging run overflows somewhere in the epoch; instead of a warning per
        # operation it ends with TrainingDivergedError from the finiteness check below.
        with np.errstate(over="ignore", invalid="ignore"):
            for k in range(0, n, m):
                if whole:
                    xb, yb = x[k : k + m], y[k : k + m]
                else:
                    rows = perm[k : k + m]
                    xb, yb = np.take(x, rows, axis=0), np.take(y, rows, axis=0)
                # The gradients come out as -eta * mean gradient: the update itself.
                net.gradients(xb, yb, dropout_rng, -s.eta / xb.shape[0])  # xb: (m, 784)
                self._update(n)
            s.epoch += 1
            report = self._evaluate(time.perf_counter() - started)
        self._track(report)
        return report

    def _update(self, n: int) -> None:
        """Applies the steps left in the layers' grads, with decay and momentum."""
        c, eta = self.config, self.state.eta
        for layer, vel in zip(self.net.layers, self.velocities, strict=True):
            grads = layer.grads
            for name, p in layer.params.items():
                if name == "w":
                    if c.lmbda:
                        p *= 1.0 - eta * c.lmbda / n  # L2: weight decay (book ch. 3)
                    if c.l1:
                        p -= (eta * c.l1 / n) * self.net.xp.sign(p)
                if c.momentum:
                    v = vel[name]
                    v *= c.momentum
                    v += grads[name]
                    p += v
                else:
                    p += grads[name]

    def _evaluate(self, seconds: float) -> EpochReport:
        c, s, net = self.config, self.state, self.net
        m = c.monitor_size
        train_cost, train_accuracy = evaluate(net, self.x[:m], self.labels[:m], c.lmbda)
        weights = sum(float(abs(p).sum()) for layer in net.parameters() for p in layer.values())
        # A saturated output can keep the cost finite while weights are already inf/NaN.
        if not (np.isfinite(train_cost) and np.isfinite(weights)):
            what = "training cost" if not np.isfinite(train_cost) else "sum of |weights|"
            value = train_cost if not np.isfinite(train_cost) else weights
            raise TrainingDivergedError(
                f"the {what} became {value} in epoch {s.epoch}; "
                "try a smaller learning rate (eta)"
            )
        report = EpochReport(
            epoch=s.epoch, epochs=c.epochs, eta=s.eta, seconds=seconds, training_cost=train_cost,
            validation_accuracy=float("nan"), training_accuracy=train_accuracy,
        )
        if self.validation is not None:
            vx, vl = self.validation
            report.validation_cost, report.validation_accuracy = evaluate(net, vx, vl, c.lmbda)
        return report

    def _track(self, report: EpochReport) -> None:
        """Best-epoch bookkeeping for early stopping and the eta schedule."""
        s, c = self.state, self.config
        s.history.append(report.as_dict())
        score = report.validation_accuracy
        if np.isnan(score):
            score = -report.training_cost
        if score > s.best_accuracy:
            s.best_accuracy, s.best_epoch = score, s.epoch
            s.best_params = [{k: to_numpy(v).copy() for k, v in p.items()}
                             for p in self.net.parameters()]
            s.stalled = s.schedule_stalled = 0
            return
        s.stalled += 1
        s.schedule_stalled += 1
        if c.eta_schedule and s.schedule_stalled >= c.eta_schedule:
            s.eta /= 2.0
            s.schedule_stalled = 0

    def keep_best(self) -> None:
        """Restores the parameters of the best epoch (early stopping keeps those)."""
        if self.state.best_params is None:
            return
        xp = self.net.xp
        for layer, p in zip(self.net.layers, self.state.best_params, strict=True):
            layer.params = {k: xp.asarray(v, dtype=self.net.dtype) for k, v in p.items()}

    # -- checkpoints: plain dicts of host arrays, so plumbing can store them anywhere

    def state_dict(self) -> dict:
        s = self.state
        return {
            "epoch": s.epoch, "eta": s.eta, "best_accuracy": s.best_accuracy,
            "best_epoch": s.best_epoch, "stalled": s.stalled,
            "schedule_stalled": s.schedule_stalled, "history": list(s.history),
            "params": [{k: to_numpy(v) for k, v in p.items()} for p in self.net.parameters()],
            "velocities": [{k: to_numpy(v) for k, v in p.items()} for p in self.velocities],
            "best_params": s.best_params,
        }

    def load_state_dict(self, d: dict) -> None:
        xp, dt = self.net.xp, self.net.dtype
        s = self.state
        s.epoch, s.eta = int(d["epoch"]), float(d["eta"])
        s.best_accuracy, s.best_epoch = float(d["best_accuracy"]), int(d["best_epoch"])
        s.stalled, s.schedule_stalled = int(d["stalled"]), int(d["schedule_stalled"])
        s.history = list(d["history"])
        s.best_params = d["best_params"]
        for layer, p in zip(self.net.layers, d["params"], strict=True):
            layer.params = {k: xp.asarray(v, dtype=dt) for k, v in p.items()}
        self.velocities = [{k: xp.asarray(v, dtype=dt) for k, v in p.items()}
                           for p in d["velocities"]]
