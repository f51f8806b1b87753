"""Several networks answering as one: their probabilities are averaged."""

from __future__ import annotations

from typing import Any

from nndl.trainer.nn.network import Network

Array = Any


def probabilities(net: Network, x: Array) -> Array:
    """(N, 784) -> (N, 10) rows summing to 1.

    A softmax output already is a distribution; sigmoid outputs are independent
    scores in 0..1 and are normalised so that callers always get one.
    """
    a = net.feedforward(x)
    if net.layers[-1].act.name == "softmax":
        return a
    return a / net.xp.maximum(a.sum(axis=1, keepdims=True), 1e-12)


class Ensemble:
    """Members trained with different seeds; the answer is their mean probability."""

    def __init__(self, members: list[Network]) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one network")
        self.members = members
        self.xp = members[0].xp

    def probabilities(self, x: Array) -> Array:
        return _mean(self._each(x))

    def predict(self, x: Array) -> Array:
        return self.probabilities(x).argmax(axis=1)

    def vote(self, x: Array) -> Array:
        """The book's ensemble: each member votes its digit, the most votes win.

        Ties go to the digit with the highest mean probability among the tied ones.
        """
        each = self._each(x)
        return self._vote(each, _mean(each))

    def predict_and_vote(self, x: Array) -> tuple[Array, Array]:
        """(predict(x), vote(x)) from one forward pass of each member."""
        each = self._each(x)
        mean = _mean(each)
        return mean.argmax(axis=1), self._vote(each, mean)

    def _each(self, x: Array) -> list[Array]:
        return [probabilities(net, x) for net in self.members]  # each (N, 10)

    def _vote(self, each: list[Array], mean: Array) -> Array:
        xp = self.xp
        votes = xp.zeros(mean.shape, dtype=xp.float64)  # (N, 10) vote counts
        rows = xp.arange(mean.shape[0])
        for p in each:
            votes[rows, p.argmax(axis=1)] += 1.0
        # Mean probabilities are < 1, so they only ever break ties between equal counts.
        return (votes + mean * 0.5).argmax(axis=1)


def _mean(each: list[Array]) -> Array:
    total = each[0]
    for p in each[1:]:
        total = total + p
    return total / len(each)
