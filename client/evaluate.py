"""The MNIST test set through the server: accuracy, per digit, confusion, worst mistakes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from nndl.client.charts import digit_grid
from nndl.client.client import DigitsClient

BATCH = 2_500  # images a request: 7.8 MB as packed float32, a fraction of the server's 128 MB limit


@dataclass(frozen=True)
class Evaluation:
    model: str
    version: int
    labels: np.ndarray  # (N,) the true digits
    predicted: np.ndarray  # (N,) the server's digits
    confidence: np.ndarray  # (N,) the server's confidence in its digit

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.predicted == self.labels))

    @property
    def confusion(self) -> np.ndarray:
        """(10, 10) counts: row = the true digit, column = the server's answer."""
        m = np.zeros((10, 10), dtype=np.int64)
        np.add.at(m, (self.labels, self.predicted), 1)
        return m

    @property
    def per_digit(self) -> list[float | None]:
        """Accuracy on the images of each true digit (None for a digit with no images)."""
        m = self.confusion
        return [float(m[d, d] / m[d].sum()) if m[d].sum() else None for d in range(10)]

    def worst_mistakes(self, count: int) -> np.ndarray:
        """Indices of the wrong answers given with the most confidence, worst first."""
        wrong = np.flatnonzero(self.predicted != self.labels)
        return wrong[np.argsort(-self.confidence[wrong], kind="stable")][:count]


def evaluate(client: DigitsClient, x: np.ndarray, y: np.ndarray, model: str = "",
             ) -> Evaluation:
    """x: (N, 784) floats in 0..1, y: (N,) digits.

    The pixels go as float32, the values the trainer tested on, so that the accuracy
    here is the one the job published. (MNIST's floats are bytes / 256, the server's
    uint8 convention is bytes / 255: sending uint8 would move a few answers.)
    """
    pixels = np.asarray(x, dtype=np.float32)  # (N, 784)
    results = []
    for start in range(0, len(pixels), BATCH):
        results += client.classify_batch(pixels[start:start + BATCH], model=model)
    return Evaluation(
        model=results[0].model, version=results[0].version, labels=np.asarray(y),
        predicted=np.array([r.digit for r in results]),
        confidence=np.array([r.confidence for r in results]))


def confusion_table(m: np.ndarray) -> str:
    """The confusion matrix as text: rows are true digits, columns the server's answers."""
    width = max(4, len(str(m.max())) + 1)
    lines = ["true\\said" + "".join(f"{d:>{width}}" for d in range(10))]
    lines += [f"{d:>9}" + "".join(f"{v:>{width}}" for v in row) for d, row in enumerate(m)]
    return "\n".join(lines)


def mistakes_image(ev: Evaluation, x: np.ndarray, count: int) -> Image.Image:
    """A grid of the most confident mistakes, each captioned "7 as 1, 94%": the true digit,
    the server's answer and its confidence (ASCII: the default font has no arrows)."""
    worst = ev.worst_mistakes(count)
    captions = [f"{ev.labels[i]} as {ev.predicted[i]}, {100 * ev.confidence[i]:.0f}%"
                for i in worst]
    return digit_grid(x[worst], captions)
