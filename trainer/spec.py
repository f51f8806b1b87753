"""The job spec: every option of a training job, validated before it is queued.

A spec travels as a JSON object; `JobSpec.from_dict` is the one gate it passes
through, and its errors name the field and the allowed range.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from nndl.trainer.errors import InvalidSpecError
from nndl.trainer.keys import MODEL_NAME
from nndl.trainer.nn.activations import ACTIVATIONS
from nndl.trainer.nn.backend import DEVICES
from nndl.trainer.nn.costs import COSTS

MAX_SPEC_BYTES = 16_384

# Bounds that keep one job from taking the machine down.
LIMITS = {
    "epochs": (1, 500),
    "mini_batch_size": (1, 10_000),
    "eta": (1e-6, 100.0),
    "lmbda": (0.0, 1e4),
    "l1": (0.0, 1e4),
    "momentum": (0.0, 0.999),
    "dropout": (0.0, 0.9),
    "early_stopping": (0, 500),
    "eta_schedule": (0, 500),
    "train_size": (10, 50_000),
    "ensemble": (1, 10),
    "seed": (0, 2**32 - 1),
    "layer_width": (1, 4096),
    "layers": (2, 12),
    "rotate": (0.0, 30.0),  # degrees
    "conv": (0, 3),  # conv-pool layers
    "filters": (1, 256),
    "kernel": (1, 9),
    "pool": (1, 4),
}
MAX_PARAMETERS = 20_000_000  # 80 MB of float32 per network, several copies while training
MAX_CONV_MACS = 50_000_000  # multiply-adds per image in the conv layers (ch6: 1.6 million)
CONV_KEYS = ("filters", "kernel", "pool")
CHOICES = {
    "activation": tuple(a for a in ACTIVATIONS if a != "softmax"),
    "output": ("sigmoid", "softmax"),
    "cost": tuple(COSTS),
    "init": ("large", "scaled"),
    "expand": ("none", "shift", "shift+rotate"),
    "device": DEVICES,
    "dtype": ("float32", "float64"),
}


@dataclass(frozen=True)
class JobSpec:
    """A training job. Defaults are the book's chapter 3 network."""

    model: str = "mnist"  # registry name the result is published under
    preset: str = ""  # the preset this spec started from, if any
    layers: list[int] = field(default_factory=lambda: [784, 30, 10])
    activation: str = "sigmoid"  # hidden neurons
    output: str = "sigmoid"  # output neurons
    cost: str = "cross_entropy"
    init: str = "scaled"  # large: N(0,1); scaled: N(0,1/n_in)
    epochs: int = 30
    mini_batch_size: int = 10
    eta: float = 0.5
    lmbda: float = 0.0
    l1: float = 0.0
    momentum: float = 0.0
    dropout: float = 0.0
    early_stopping: int = 0
    eta_schedule: int = 0
    train_size: int = 50_000  # the first N training images
    expand: str = "none"  # shift: the book's 1-pixel shifts (x5); shift+rotate adds ±rotate
    rotate: float = 0.0  # degrees of the two rotated copies that expand shift+rotate adds
    conv: list[dict] = field(default_factory=list)  # conv-pool layers before the dense ones
    ensemble: int = 1
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    promote: str = ""  # alias to move to the result when it beats the alias's holder
    book_accuracy: float = 0.0  # the book's reported test accuracy for the preset (0..1)

    @classmethod
    def from_dict(cls, data: Any) -> JobSpec:
        """Validates and builds; raises InvalidSpecError naming the first bad field."""
        if not isinstance(data, dict):
            raise InvalidSpecError("a job spec must be a JSON object")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise InvalidSpecError(
                f"unknown field {unknown[0]!r} in the job spec; known fields: "
                + ", ".join(known)
            )
        values = {name: _coerce(name, data[name], known[name].type) for name in data}
        spec = cls(**values)
        spec.validate()
        return spec

    @classmethod
    def from_json(cls, text: str) -> JobSpec:
        return cls.from_dict(spec_fields(text))

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def validate(self) -> None:
        if not MODEL_NAME.match(self.model):
            raise InvalidSpecError(
                f"model {self.model!r} is not a valid name: use 1 to 64 of a-z, 0-9 and '-', "
                "starting with a letter or digit"
            )
        for name, choices in CHOICES.items():
            if getattr(self, name) not in choices:
                raise InvalidSpecError(
                    f"{name} must be one of {', '.join(choices)}, not {getattr(self, name)!r}"
                )
        for name in ("epochs", "mini_batch_size", "eta", "lmbda", "l1", "momentum", "dropout",
                     "early_stopping", "eta_schedule", "train_size", "ensemble", "seed", "rotate"):
            _in_range(name, getattr(self, name))
        if self.expand == "shift+rotate" and self.rotate <= 0.0:
            raise InvalidSpecError("expand shift+rotate needs rotate (degrees) above 0")
        self._validate_layers()
        self._validate_size()
        if self.promote and not MODEL_NAME.match(self.promote):
            raise InvalidSpecError(f"promote {self.promote!r} is not a valid alias name")
        if self.promote == "latest":
            raise InvalidSpecError("promote cannot be 'latest': it always means the newest")
        if not 0.0 <= self.book_accuracy <= 1.0:
            raise InvalidSpecError("book_accuracy must be between 0 and 1")

    def _validate_layers(self) -> None:
        lo, hi = LIMITS["layers"]
        if not lo <= len(self.layers) <= hi:
            raise InvalidSpecError(f"layers must list {lo} to {hi} sizes, not {len(self.layers)}")
        if self.layers[0] != 784 or self.layers[-1] != 10:
            raise InvalidSpecError(
                f"layers must start with 784 inputs and end with 10 outputs, not {self.layers}"
            )
        wlo, whi = LIMITS["layer_width"]
        for i, width in enumerate(self.layers[1:-1], start=1):
            if not wlo <= width <= whi:
                raise InvalidSpecError(f"layers[{i}] must be between {wlo} and {whi}, not {width}")
        if self.output == "softmax" and self.cost != "log_likelihood":
            raise InvalidSpecError("a softmax output needs cost log_likelihood")
        if self.cost == "log_likelihood" and self.output != "softmax":
            raise InvalidSpecError("cost log_likelihood needs output softmax")
        if self.cost == "cross_entropy" and self.output != "sigmoid":
            raise InvalidSpecError("cost cross_entropy needs output sigmoid")


    def conv_shapes(self) -> list[list[int]]:
        """The (H, W, C) input of each conv-pool layer, then the shape of the last output."""
        shapes = [[28, 28, 1]]
        for i, c in enumerate(self.conv):
            h, w, _ = shapes[-1]
            ph, pw = (h - c["kernel"] + 1) // c["pool"], (w - c["kernel"] + 1) // c["pool"]
            if ph < 1 or pw < 1:
                raise InvalidSpecError(
                    f"conv[{i}]: a {c['kernel']}x{c['kernel']} kernel with pool {c['pool']} "
                    f"does not fit its {h}x{w} input"
                )
            shapes.append([ph, pw, c["filters"]])
        return shapes

    def _validate_size(self) -> None:
        """Refuses networks whose weights or convolutions would swamp a worker."""
        lo, hi = LIMITS["conv"]
        if not lo <= len(self.conv) <= hi:
            raise InvalidSpecError(f"conv must list {lo} to {hi} layers, not {len(self.conv)}")
        for i, c in enumerate(self.conv):
            if sorted(c) != sorted(CONV_KEYS):
                raise InvalidSpecError(
                    f"conv[{i}] must have exactly the keys {', '.join(CONV_KEYS)}, not {sorted(c)}"
                )
            for key in CONV_KEYS:
                _in_range(key, c[key], f"conv[{i}].{key}")
        shapes = self.conv_shapes()
        params, macs = 0, 0
        for (_, _, c_in), (ph, pw, f), c in zip(shapes[:-1], shapes[1:], self.conv, strict=True):
            k = c["kernel"]
            params += k * k * c_in * f + f
            macs += ph * pw * c["pool"] ** 2 * k * k * c_in * f
        sizes = [shapes[-1][0] * shapes[-1][1] * shapes[-1][2], *self.layers[1:]]
        params += sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        if macs > MAX_CONV_MACS:
            raise InvalidSpecError(
                f"conv layers need {macs:,} multiply-adds per image; the limit is {MAX_CONV_MACS:,}"
            )
        if params > MAX_PARAMETERS:
            raise InvalidSpecError(
                f"the network has {params:,} parameters; the limit is {MAX_PARAMETERS:,}"
            )


def _in_range(name: str, value: float, label: str = "") -> None:
    lo, hi = LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise InvalidSpecError(f"{label or name} must be between {lo} and {hi}, not {value!r}")


def _coerce(name: str, value: Any, annotation: str) -> Any:
    """Checks a JSON value against the field's type; ints are accepted for floats."""
    kind = annotation.split("[")[0]
    ok = {
        "str": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "list": isinstance(value, list) and all(_is_item(v, annotation) for v in value),
    }[kind]
    if not ok:
        wanted = {"str": "a string", "int": "an integer", "float": "a number",
                  "list": "a list of objects" if "dict" in annotation else "a list of integers"}[
            kind
        ]
        raise InvalidSpecError(f"{name} must be {wanted}, not {json.dumps(value)[:40]}")
    if kind == "float":
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidSpecError(f"{name} must be a finite number")
    return value


def _is_item(value: Any, annotation: str) -> bool:
    """A list item: an integer, or for list[dict] an object of integers (a conv layer)."""
    if "dict" in annotation:
        return isinstance(value, dict) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value.values()
        )
    return isinstance(value, int) and not isinstance(value, bool)


def spec_fields(text: str) -> dict:
    """The fields a JSON job spec sets (empty text: none), checked for size and syntax;
    their values are checked when they become a JobSpec."""
    if len(text.encode()) > MAX_SPEC_BYTES:
        raise InvalidSpecError(f"the job spec is larger than {MAX_SPEC_BYTES} bytes")
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as e:
        raise InvalidSpecError(f"the job spec is not valid JSON: {e}") from e
    except RecursionError:
        raise InvalidSpecError("the job spec is nested too deeply to be a job spec") from None
    if not isinstance(data, dict):
        raise InvalidSpecError("a job spec must be a JSON object")
    return data
