"""The book's experiments as named presets, each carrying the book's test accuracy."""

from __future__ import annotations

from typing import Any

from nndl.trainer.errors import InvalidSpecError
from nndl.trainer.spec import JobSpec

_CH1 = {"layers": [784, 30, 10], "cost": "quadratic", "init": "large", "eta": 3.0,
        "epochs": 30, "mini_batch_size": 10}
_CH3 = {"layers": [784, 30, 10], "cost": "cross_entropy", "init": "large", "eta": 0.5,
        "epochs": 30, "mini_batch_size": 10}

PRESETS: dict[str, dict[str, Any]] = {
    "ch1": {**_CH1, "book_accuracy": 0.9542},
    "ch1-100": {**_CH1, "layers": [784, 100, 10], "book_accuracy": 0.9659},
    "ch3": {**_CH3, "book_accuracy": 0.9549},
    "ch3-100": {**_CH3, "layers": [784, 100, 10], "book_accuracy": 0.9682},
    "ch3-l2": {**_CH3, "layers": [784, 100, 10], "lmbda": 5.0, "eta": 0.1, "epochs": 60,
               "init": "scaled", "book_accuracy": 0.9804},
}


def resolve(preset: str, overrides: dict[str, Any] | None = None) -> JobSpec:
    """The preset's spec with `overrides` applied on top, validated as a whole."""
    base: dict[str, Any] = {}
    if preset:
        if preset not in PRESETS:
            raise InvalidSpecError(
                f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}"
            )
        base = {**PRESETS[preset], "preset": preset}
    return JobSpec.from_dict({**base, **(overrides or {})})
