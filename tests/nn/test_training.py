"""run_training and SGD: determinism, resume, schedules, learning on small subsets."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from nndl.trainer.data import Mnist
from nndl.trainer.errors import TrainingDivergedError
from nndl.trainer.nn.layers import Dense
from nndl.trainer.nn.network import Network
from nndl.trainer.nn.sgd import SGD, EpochReport, SGDConfig
from nndl.trainer.presets import resolve
from nndl.trainer.spec import JobSpec
from nndl.trainer.training import run_training


class Recorder:
    """Hooks that keep every report and checkpoint, and can interrupt after epoch k."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.reports: list[tuple[int, EpochReport]] = []
        self.checkpoints: list[dict] = []
        self.stop_after = stop_after

    def on_epoch(self, member: int, report: EpochReport, checkpoint) -> None:
        self.reports.append((member, report))
        self.checkpoints.append(checkpoint())
        if self.stop_after is not None and len(self.reports) == self.stop_after:
            raise KeyboardInterrupt("interrupted by the test")


def _small(**overrides) -> JobSpec:
    base = {"layers": [784, 20, 10], "epochs": 3, "train_size": 1000, "eta": 0.5}
    return JobSpec.from_dict({**base, **overrides})


def _params(outcome) -> list[np.ndarray]:
    return [v for net in outcome.networks for p in net.parameters() for v in p.values()]


def test_same_seed_same_network(small: Mnist) -> None:
    spec = _small(dropout=0.3, layers=[784, 20, 20, 10])
    a, b = run_training(spec, small, Recorder()), run_training(spec, small, Recorder())
    for x, y in zip(_params(a), _params(b), strict=True):
        np.testing.assert_array_equal(x, y)
    c = run_training(_small(seed=1, dropout=0.3, layers=[784, 20, 20, 10]), small, Recorder())
    assert not np.array_equal(_params(a)[0], _params(c)[0])


@pytest.mark.parametrize("stop_after", [1, 3, 4])
def test_resume_from_checkpoint_equals_an_uninterrupted_run(small: Mnist, stop_after: int) -> None:
    # Two members, momentum, L2, dropout and the eta schedule: all the state there is.
    spec = _small(ensemble=2, momentum=0.5, lmbda=1.0, dropout=0.2, eta_schedule=1,
                  layers=[784, 20, 20, 10], train_size=300)
    whole = run_training(spec, small, Recorder())
    first = Recorder(stop_after=stop_after)
    with pytest.raises(KeyboardInterrupt):
        run_training(spec, small, first)
    saved = _through_json_and_npz(first.checkpoints[-1])
    saved["seconds"] = 1000.0  # as if the earlier attempt had taken that long
    started = time.perf_counter()
    resumed = run_training(spec, small, Recorder(), resume=saved)
    attempt = time.perf_counter() - started
    for x, y in zip(_params(whole), _params(resumed), strict=True):
        np.testing.assert_array_equal(x, y)
    assert _without_times(resumed.history) == _without_times(whole.history)
    assert resumed.test_accuracy == whole.test_accuracy
    assert 0.0 < whole.test_accuracy_by_vote <= 1.0  # two members: the book's vote as well
    assert 1000.0 <= resumed.seconds <= 1000.0 + attempt  # the earlier attempt's time counts


def _without_times(history: list[list[dict]]) -> list[list[dict]]:
    return [[{k: v for k, v in r.items() if k != "seconds"} for r in h] for h in history]


def _through_json_and_npz(checkpoint: dict) -> dict:
    """What a worker does: arrays out to npz-like storage, everything else through JSON."""
    arrays: dict[str, np.ndarray] = {}

    def strip(v):
        if isinstance(v, np.ndarray):
            key = f"a{len(arrays)}"
            arrays[key] = v.copy()
            return {"__array__": key}
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items()}
        if isinstance(v, list):
            return [strip(x) for x in v]
        assert v is None or isinstance(v, str | int | float), type(v)
        return v

    def restore(v):
        if isinstance(v, dict):
            return arrays[v["__array__"]] if "__array__" in v else {
                k: restore(x) for k, x in v.items()}
        if isinstance(v, list):
            return [restore(x) for x in v]
        return v

    return restore(json.loads(json.dumps(strip(checkpoint))))


def test_eta_schedule_halves_and_stops_at_one_128th(small: Mnist) -> None:
    # eta so small that validation accuracy barely moves: it stalls, eta halves each epoch.
    spec = _small(eta=1e-6, eta_schedule=1, epochs=100, train_size=100)
    outcome = run_training(spec, small, Recorder())
    etas = [r["eta"] for r in outcome.history[0]]
    # The run ends when eta is halved down to eta0/128, so eta0/64 is the last one used.
    assert etas[-1] == pytest.approx(1e-6 / 64)
    assert len(set(etas)) == 7
    assert all(b in (a, a / 2) for a, b in zip(etas, etas[1:], strict=False))
    assert len(etas) < 100


def test_early_stopping_keeps_the_best_epoch(small: Mnist) -> None:
    # A high eta makes validation accuracy jump around, so the best epoch is not the last.
    spec = _small(eta=8.0, epochs=12, early_stopping=3, train_size=500, init="large")
    outcome = run_training(spec, small, Recorder())
    history = outcome.history[0]
    best = max(history, key=lambda r: r["validation_accuracy"])
    assert len(history) < 12  # it did stop early: three epochs without improvement
    assert history[-1]["epoch"] - best["epoch"] == 3
    assert history[-1]["validation_accuracy"] < best["validation_accuracy"]
    assert outcome.validation_accuracy == pytest.approx(best["validation_accuracy"])


def test_reports_monitor_cost_and_accuracy_every_epoch(small: Mnist) -> None:
    rec = Recorder()
    run_training(_small(), small, rec)
    assert [r.epoch for _, r in rec.reports] == [1, 2, 3]
    for _, r in rec.reports:
        assert 0.0 < r.training_accuracy <= 1.0 and 0.0 < r.validation_accuracy <= 1.0
        assert np.isfinite(r.training_cost) and np.isfinite(r.validation_cost)


def test_fully_connected_learns(small: Mnist) -> None:
    spec = _small(layers=[784, 30, 10], train_size=10_000, epochs=2)
    assert run_training(spec, small, Recorder()).test_accuracy > 0.88


def test_softmax_relu_conv_net_learns(small: Mnist) -> None:
    spec = resolve("ch6-relu", {"train_size": 2000, "epochs": 2, "eta": 0.1,
                                "conv": [{"filters": 8, "kernel": 5, "pool": 2}],
                                "layers": [784, 50, 10]})
    assert run_training(spec, small, Recorder()).test_accuracy > 0.85


def test_dropout_and_expansion_train_together(small: Mnist) -> None:
    spec = _small(layers=[784, 100, 10], dropout=0.5, expand="shift", train_size=1000,
                  epochs=2, output="softmax", cost="log_likelihood", activation="relu",
                  eta=0.1)
    rec = Recorder()
    outcome = run_training(spec, small, rec)
    assert outcome.test_accuracy > 0.8


def test_l1_and_momentum_learn(small: Mnist) -> None:
    spec = _small(l1=1.0, momentum=0.9, eta=0.05, train_size=2000, epochs=2)
    assert run_training(spec, small, Recorder()).test_accuracy > 0.8


def test_a_diverging_run_fails_with_the_reason(small: Mnist) -> None:
    net = Network([Dense(784, 30, "relu"), Dense(30, 10, "linear")], "quadratic")
    net.init_params(seed=0, scheme="large")
    sgd = SGD(net, (small.training[0][:500], small.training[1][:500]), None,
              SGDConfig(eta=50.0, epochs=3))
    with pytest.raises(TrainingDivergedError, match="became (nan|inf)"):
        sgd.run_epoch()


def test_auto_without_a_gpu_says_so(small: Mnist) -> None:
    try:
        import cupy  # noqa: F401

        pytest.skip("CuPy is installed here")
    except ImportError:
        pass
    outcome = run_training(_small(device="auto", epochs=1), small, Recorder())
    assert outcome.device == "cpu" and "no GPU" in outcome.notes[0]
