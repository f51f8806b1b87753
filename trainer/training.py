"""Runs a job spec through the network library: data, networks, epochs, ensemble.

No queue and no storage here. The caller passes hooks that see every epoch and
may save the checkpoint it is offered, or raise to interrupt; a checkpoint given
back as `resume` continues the run where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from nndl.trainer.data import Mnist
from nndl.trainer.expand import expand
from nndl.trainer.nn.backend import array_module
from nndl.trainer.nn.ensemble import Ensemble
from nndl.trainer.nn.layers import ConvPool, Dense
from nndl.trainer.nn.network import Network
from nndl.trainer.nn.sgd import SGD, EpochReport, SGDConfig
from nndl.trainer.spec import JobSpec


class Hooks(Protocol):
    def on_epoch(
        self, member: int, report: EpochReport, checkpoint: Callable[[], dict]
    ) -> None:
        """Called after every epoch; may raise to stop the run (it then propagates)."""


@dataclass
class TrainingOutcome:
    networks: list[Network]
    history: list[list[dict]]  # per member, per epoch
    validation_accuracy: float
    test_accuracy: float  # of the mean probabilities, as the model is served
    test_accuracy_by_vote: float  # the book's ensemble: each network votes (nan for one)
    device: str
    seconds: float
    notes: list[str] = field(default_factory=list)


def build_network(spec: JobSpec, xp, member: int) -> Network:
    """The spec's conv-pool layers, then its dense layers; dropout on dense inputs.

    Dropout (book ch. 6) goes on the input of every dense layer except one reading
    the raw image, which includes the inputs of the layers after the convolutions.
    """
    layers: list[Dense | ConvPool] = []
    shapes = spec.conv_shapes()
    for c, in_shape in zip(spec.conv, shapes, strict=False):
        layers.append(ConvPool(in_shape, c["filters"], c["kernel"], c["pool"], spec.activation))
    h, w, ch = shapes[-1]
    sizes = [h * w * ch, *spec.layers[1:]]
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        last = i == len(sizes) - 2
        layers.append(
            Dense(n_in, n_out, act=spec.output if last else spec.activation,
                  dropout=spec.dropout if layers else 0.0)
        )
    net = Network(layers, spec.cost, xp=xp, dtype=np.dtype(spec.dtype).type)
    net.init_params(seed=member_seed(spec, member), scheme=spec.init)
    return net


def member_seed(spec: JobSpec, member: int) -> int:
    """Each ensemble member gets its own seed, so members differ (book ch. 6)."""
    return spec.seed + 1000 * member


def sgd_config(spec: JobSpec, member: int) -> SGDConfig:
    return SGDConfig(
        epochs=spec.epochs, mini_batch_size=spec.mini_batch_size, eta=spec.eta,
        lmbda=spec.lmbda, l1=spec.l1, momentum=spec.momentum, seed=member_seed(spec, member),
        early_stopping=spec.early_stopping, eta_schedule=spec.eta_schedule,
        monitor_size=spec.train_size,
    )


def run_training(
    spec: JobSpec, mnist: Mnist, hooks: Hooks, resume: dict | None = None
) -> TrainingOutcome:
    """Trains the spec's network (or ensemble) and measures it on validation and test.

    The returned networks hold the last epoch's parameters, or the best epoch's when
    early stopping is on.
    """
    # Time spent by earlier attempts on the epochs resumed from counts too.
    started = time.perf_counter() - (float(resume.get("seconds", 0.0)) if resume else 0.0)
    xp, device, note = array_module(spec.device)
    dtype = np.dtype(spec.dtype).type
    tx, ty = mnist.training
    training = expand(tx[: spec.train_size], ty[: spec.train_size], spec.expand, spec.rotate)
    done: list[dict] = list(resume["members"]) if resume else []
    networks = [Network.from_config(d["config"], d["params"], xp=xp, dtype=dtype) for d in done]
    history = [d["history"] for d in done]
    for member in range(len(done), spec.ensemble):
        net = build_network(spec, xp, member)
        sgd = SGD(net, training, mnist.validation, sgd_config(spec, member))
        if resume and resume.get("current"):
            sgd.load_state_dict(resume["current"])
            resume = None

        def checkpoint(sgd: SGD = sgd) -> dict:
            return {"members": list(done), "current": sgd.state_dict(),
                    "seconds": time.perf_counter() - started}

        while not sgd.done:
            report = sgd.run_epoch()
            hooks.on_epoch(member, report, checkpoint)
        if spec.early_stopping:
            sgd.keep_best()
        done.append({"config": net.config(), "params": sgd.state_dict()["params"],
                     "history": sgd.state.history})
        networks.append(net)
        history.append(sgd.state.history)
    model = Ensemble(networks)
    test_accuracy, by_vote = _accuracies(model, mnist.test, xp)
    return TrainingOutcome(
        networks=networks,
        history=history,
        validation_accuracy=_accuracies(model, mnist.validation, xp)[0],
        test_accuracy=test_accuracy,
        test_accuracy_by_vote=by_vote if len(networks) > 1 else float("nan"),
        device=device,
        seconds=time.perf_counter() - started,
        notes=[note] if note else [],
    )


def _accuracies(model: Ensemble, data: tuple[np.ndarray, np.ndarray], xp
                ) -> tuple[float, float]:
    """(accuracy of the mean probabilities, accuracy of the members' vote), one pass."""
    x, y = data
    by_mean = by_vote = 0
    for i in range(0, x.shape[0], 1000):
        labels = xp.asarray(y[i : i + 1000])
        mean, vote = model.predict_and_vote(xp.asarray(x[i : i + 1000]))
        by_mean += int((mean == labels).sum())
        by_vote += int((vote == labels).sum())
    return by_mean / x.shape[0], by_vote / x.shape[0]
