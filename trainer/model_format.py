"""The `model.json` format: versioned JSON weights with their lineage.

A document holds one or more networks (an ensemble is one version holding several),
each as the library's layer configuration plus its parameters as base64
little-endian float32 with their shapes. Loading validates everything and executes
nothing: layer, activation and cost names are looked up in fixed tables.
Each format version keeps its own reader, so files written by older code still load.
See docs/model-format.md.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nndl.trainer.errors import ModelFormatError
from nndl.trainer.nn.network import Network

FORMAT_NAME = "nndl-model"
FORMAT_VERSION = 1  # what `to_document` writes; `READERS` holds every version that loads
MAX_DOCUMENT_BYTES = 256 * 1024 * 1024
MAX_PARAMETERS = 50_000_000  # in one document, all networks together
MAX_NETWORKS = 10
MAX_LAYERS = 64
INPUT_CONVENTION = {
    "shape": [28, 28],
    "layout": "row-major, flattened to 784",
    "range": [0.0, 1.0],
    "ink": "white on black (0 is background)",
}
SHA256 = re.compile(r"^[0-9a-f]{64}$")

Params = list[dict[str, np.ndarray]]  # one {name: host array} per layer
Networks = list[tuple[dict, Params]]  # (config, params) per network


@dataclass
class ModelDocument:
    """A parsed, validated model: networks as (config, host params) pairs."""

    networks: Networks
    lineage: dict = field(default_factory=dict)
    name: str = ""
    version: int = 0
    created_at: float = 0.0
    format_version: int = FORMAT_VERSION

    def build(self, xp=np) -> list[Network]:
        return [Network.from_config(c, p, xp=xp) for c, p in self.networks]


# -- writing


def _encode_array(a: np.ndarray) -> dict:
    le = np.ascontiguousarray(a, dtype="<f4")
    return {"shape": list(le.shape), "dtype": "float32",
            "data": base64.b64encode(le.tobytes()).decode("ascii")}


def params_sha256(networks: Networks) -> str:
    """SHA-256 over every parameter's little-endian float32 bytes, in document order.

    Networks in order, layers in order, a layer's arrays by sorted name. Shapes are
    not hashed: they are checked against the architecture instead.
    """
    h = hashlib.sha256()
    for _, params in networks:
        for layer in params:
            for key in sorted(layer):
                h.update(np.ascontiguousarray(layer[key], dtype="<f4").tobytes())
    return h.hexdigest()


def to_document(
    networks: Networks,
    lineage: dict,
    name: str = "",
    version: int = 0,
    created_at: float = 0.0,
) -> dict:
    """The JSON-able document (current format version) for (config, host params) pairs."""
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": version,
        "created_at": created_at,
        "input": copy.deepcopy(INPUT_CONVENTION),  # callers may edit the document
        "networks": [
            {"config": config,
             "params": [{k: _encode_array(v) for k, v in sorted(layer.items())}
                        for layer in params]}
            for config, params in networks
        ],
        "params_sha256": params_sha256(networks),
        "lineage": lineage,
    }


def _finite_or_none(node: Any) -> Any:
    """JSON has no NaN: unmeasured values (NaN in epoch reports) are written as null."""
    if isinstance(node, float):
        return node if math.isfinite(node) else None
    if isinstance(node, dict):
        return {k: _finite_or_none(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_finite_or_none(v) for v in node]
    return node


def dumps(document: dict) -> bytes:
    return json.dumps(_finite_or_none(document), separators=(",", ":"),
                      allow_nan=False).encode()


# -- reading


def parse(data: bytes, where: str = "model.json") -> ModelDocument:
    """Validates a document's bytes; every failure says what is wrong and where."""
    doc = _load_json(data, where)
    if not isinstance(doc, dict):
        raise ModelFormatError(f"{where}: the top level must be a JSON object")
    if doc.get("format") != FORMAT_NAME:
        raise ModelFormatError(
            f"{where}: format is {doc.get('format')!r}, not {FORMAT_NAME!r}; "
            "is this an nndl model file?")
    fv = doc.get("format_version")
    if type(fv) is not int or fv not in READERS:
        known = ", ".join(map(str, READERS))
        raise ModelFormatError(
            f"{where}: format_version {fv!r} is not one this code reads ({known}); "
            "a newer nndl may have written it")
    return READERS[fv](doc, where)


def _load_json(data: bytes, where: str) -> Any:
    """JSON with a size bound, no NaN/Infinity literals and no stack overflow."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise ModelFormatError(
            f"{where}: {len(data)} bytes is over the {MAX_DOCUMENT_BYTES} byte limit")
    try:
        return json.loads(data, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelFormatError(f"{where}: not valid JSON ({e})") from e
    except RecursionError as e:
        raise ModelFormatError(f"{where}: not valid JSON (nested too deeply)") from e


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _read_v1(doc: dict, where: str) -> ModelDocument:
    """Format version 1 (the first, written since commit 424ea1a)."""
    name, version, created = doc.get("name", ""), doc.get("version", 0), doc.get("created_at", 0)
    if not isinstance(name, str):
        raise ModelFormatError(f"{where}: name must be a string")
    if type(version) is not int or version < 0:
        raise ModelFormatError(f"{where}: version must be a whole number >= 0, not {version!r}")
    if not _is_number(created):
        raise ModelFormatError(f"{where}: created_at must be a number of seconds")
    _check_input(doc.get("input"), f"{where}: input")
    nets = doc.get("networks")
    if not isinstance(nets, list) or not 1 <= len(nets) <= MAX_NETWORKS:
        raise ModelFormatError(f"{where}: networks must be a list of 1 to {MAX_NETWORKS}")
    networks, total = [], 0
    for i, net in enumerate(nets):
        networks.append(_parse_network(net, f"{where}: networks[{i}]", MAX_PARAMETERS - total))
        total += sum(a.size for layer in networks[-1][1] for a in layer.values())
    stated = doc.get("params_sha256")
    if not isinstance(stated, str) or not SHA256.match(stated):
        raise ModelFormatError(f"{where}: params_sha256 must be 64 lowercase hex digits")
    actual = params_sha256(networks)
    if stated != actual:
        raise ModelFormatError(
            f"{where}: params_sha256 does not match the parameters (file says "
            f"{stated[:12]}…, parameters hash to {actual[:12]}…): the file is corrupted")
    lineage = doc.get("lineage", {})
    _check_lineage(lineage, f"{where}: lineage")
    return ModelDocument(networks=networks, lineage=lineage, name=name, version=version,
                         created_at=float(created), format_version=1)


# One reader per format version, never changed once released. Format 2 would add
# `2: _read_v2` and point FORMAT_VERSION at it; `1: _read_v1` stays so old files load.
READERS: dict[int, Callable[[dict, str], ModelDocument]] = {1: _read_v1}


def _is_number(v: Any) -> bool:
    return type(v) in (int, float) and math.isfinite(v)


def _check_input(spec: Any, where: str) -> None:
    """The server feeds 28x28 pixels in 0..1; a model expecting anything else would misread."""
    if not isinstance(spec, dict):
        raise ModelFormatError(f"{where}: must be an object describing the input convention")
    for key in ("shape", "range"):
        if spec.get(key) != INPUT_CONVENTION[key]:
            raise ModelFormatError(
                f"{where}.{key} is {spec.get(key)!r}; this code serves {INPUT_CONVENTION[key]!r}")


_LINEAGE_TYPES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "job_id": ("a string", lambda v: isinstance(v, str)),
    "spec": ("an object", lambda v: isinstance(v, dict)),
    "dataset_sha256": ("a string", lambda v: isinstance(v, str)),
    "history": ("a list", lambda v: isinstance(v, list)),
    "validation_accuracy": ("a number in 0..1 or null",
                            lambda v: v is None or (_is_number(v) and 0 <= v <= 1)),
    "test_accuracy": ("a number in 0..1 or null",
                      lambda v: v is None or (_is_number(v) and 0 <= v <= 1)),
    "device": ("a string", lambda v: isinstance(v, str)),
    "duration_seconds": ("a number or null", lambda v: v is None or _is_number(v)),
    "code_version": ("a string", lambda v: isinstance(v, str)),
}


def _check_lineage(lineage: Any, where: str) -> None:
    """Known fields must have their types (the registry indexes them); others are free."""
    if not isinstance(lineage, dict):
        raise ModelFormatError(f"{where}: must be an object")
    for key, (wanted, ok) in _LINEAGE_TYPES.items():
        if key in lineage and not ok(lineage[key]):
            raise ModelFormatError(f"{where}.{key}: must be {wanted}, not {lineage[key]!r}")


def _parse_network(net: Any, where: str, budget: int) -> tuple[dict, Params]:
    if not isinstance(net, dict) or not isinstance(net.get("config"), dict):
        raise ModelFormatError(f"{where}: must be an object with a config")
    config, raw_params = net["config"], net.get("params")
    _check_config(config, f"{where}.config")
    if not isinstance(raw_params, list) or len(raw_params) != len(config["layers"]):
        raise ModelFormatError(
            f"{where}.params: must be a list of one object per layer "
            f"({len(config['layers'])})")
    params = []
    for i, layer in enumerate(raw_params):
        if not isinstance(layer, dict):
            raise ModelFormatError(f"{where}.params[{i}]: must be an object")
        params.append({k: _decode_array(v, f"{where}.params[{i}].{k}", budget)
                       for k, v in layer.items()})
        budget -= sum(a.size for a in params[-1].values())
        if budget < 0:
            raise ModelFormatError(
                f"{where}.params[{i}]: the document holds over {MAX_PARAMETERS} parameters")
    _check_shapes(config, params, where)
    return config, params


def _check_config(config: dict, where: str) -> None:
    """Plain data only, and no layer big enough to exhaust memory when it is rebuilt.

    The bound is generic (any layer type): the product of a layer's whole numbers is at
    least what building it allocates (n_in * n_out; filters * channels * height * width).
    """
    layers = config.get("layers")
    if not isinstance(layers, list) or not 1 <= len(layers) <= MAX_LAYERS:
        raise ModelFormatError(f"{where}.layers: must be a list of 1 to {MAX_LAYERS} layers")
    if not isinstance(config.get("cost"), str):
        raise ModelFormatError(f"{where}.cost: must be a cost's name")
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict) or not isinstance(layer.get("type"), str):
            raise ModelFormatError(f"{where}.layers[{i}]: must be an object with a type")
        size = 1
        for key, value in layer.items():
            for number in _numbers(value, f"{where}.layers[{i}].{key}"):
                size *= max(1, int(number)) if float(number).is_integer() else 1
        if size > MAX_PARAMETERS:
            raise ModelFormatError(
                f"{where}.layers[{i}]: its sizes multiply to {size}, over the "
                f"{MAX_PARAMETERS} parameter limit")


def _numbers(value: Any, where: str, depth: int = 0) -> list[int | float]:
    """The numbers in a config value: a string, bool, number, or a short list or object."""
    if isinstance(value, str | bool) or value is None:
        return []
    if _is_number(value):
        return [value]
    if depth < 3 and isinstance(value, dict) and len(value) <= 16:
        return [n for k, v in value.items() for n in _numbers(v, f"{where}.{k}", depth + 1)]
    if depth < 3 and isinstance(value, list) and len(value) <= 16:
        return [n for i, v in enumerate(value) for n in _numbers(v, f"{where}[{i}]", depth + 1)]
    raise ModelFormatError(f"{where}: must be a string, a finite number, or a list or object "
                           "of up to 16 of them, nested at most 3 deep")


def _check_shapes(config: dict, params: Params, where: str) -> None:
    """Rebuilds fresh parameters from the config and compares every shape."""
    try:
        fresh = Network.from_config(config, params)
        fresh.init_params(seed=0)
    except (ValueError, TypeError, KeyError, IndexError, ArithmeticError) as e:
        raise ModelFormatError(f"{where}.config: {e}") from e
    for i, (want, got) in enumerate(zip(fresh.parameters(), params, strict=True)):
        if set(want) != set(got):
            raise ModelFormatError(
                f"{where}.params[{i}]: has {sorted(got)}, the layer needs {sorted(want)}"
            )
        for k in want:
            if want[k].shape != got[k].shape:
                raise ModelFormatError(
                    f"{where}.params[{i}].{k}: shape {list(got[k].shape)}, "
                    f"the layer needs {list(want[k].shape)}"
                )
    try:
        out = fresh.feedforward(np.zeros((1, 784), dtype=np.float32))
    except (ValueError, TypeError, IndexError, ArithmeticError) as e:
        raise ModelFormatError(f"{where}: the layers do not fit together ({e})") from e
    if out.shape != (1, 10):
        raise ModelFormatError(f"{where}: the network gives {out.shape[1:]} outputs, not 10")


def _decode_array(spec: Any, where: str, budget: int = MAX_PARAMETERS) -> np.ndarray:
    """Base64 little-endian float32 with a shape, or nested lists of numbers."""
    if isinstance(spec, list):
        try:
            raw = np.asarray(spec)
        except ValueError as e:
            raise ModelFormatError(f"{where}: not a rectangular list of numbers") from e
        if raw.dtype.kind not in "iuf":
            raise ModelFormatError(f"{where}: not a rectangular list of numbers")
        with np.errstate(over="ignore"):  # too big for float32 becomes inf, refused below
            a = raw.astype(np.float32)
    elif isinstance(spec, dict):
        a = _decode_base64(spec, where, budget)
    else:
        raise ModelFormatError(f"{where}: must be base64 with shape, or nested lists")
    if not np.isfinite(a).all():
        first = [int(i) for i in np.argwhere(~np.isfinite(a))[0]]
        raise ModelFormatError(f"{where}: holds NaN or infinite values (first at {first})")
    return a


def _decode_base64(spec: dict, where: str, budget: int) -> np.ndarray:
    shape, data = spec.get("shape"), spec.get("data")
    if spec.get("dtype") != "float32":
        raise ModelFormatError(f"{where}: dtype must be float32")
    if not isinstance(shape, list) or not all(type(d) is int and d > 0 for d in shape):
        raise ModelFormatError(f"{where}: shape must be a list of positive integers")
    count = math.prod(shape)
    if count > budget:
        raise ModelFormatError(
            f"{where}: shape {shape} takes the document over {MAX_PARAMETERS} parameters")
    if not isinstance(data, str):
        raise ModelFormatError(f"{where}: data must be a base64 string")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ModelFormatError(f"{where}: data is not valid base64 ({e})") from e
    if len(raw) != 4 * count:
        raise ModelFormatError(
            f"{where}: data holds {len(raw)} bytes; shape {shape} needs {4 * count}")
    return np.frombuffer(raw, dtype="<f4").reshape(shape).astype(np.float32)


# -- the book's format


BOOK_COSTS = {"CrossEntropyCost": "cross_entropy", "QuadraticCost": "quadratic"}


def from_book_json(data: bytes, where: str = "book JSON") -> Networks:
    """Converts network2.py's saved JSON (sizes, weights, biases, cost) to our networks.

    The book stores w as (n_out, n_in) and b as (n_out, 1) column vectors; we keep
    batch-major (n_in, n_out) and (n_out,), so weights are transposed. Every layer is
    sigmoid, as in the book's `feedforward`.
    """
    doc = _load_json(data, where)
    if not isinstance(doc, dict) or not {"sizes", "weights", "biases", "cost"} <= set(doc):
        raise ModelFormatError(f"{where}: needs the keys sizes, weights, biases and cost")
    if doc["cost"] not in BOOK_COSTS:
        raise ModelFormatError(
            f"{where}: cost {doc['cost']!r} is not one of {', '.join(BOOK_COSTS)}")
    sizes = doc["sizes"]
    if (not isinstance(sizes, list) or not 2 <= len(sizes) <= MAX_LAYERS + 1
            or not all(type(s) is int and s > 0 for s in sizes)
            or sizes[0] != 784 or sizes[-1] != 10):
        raise ModelFormatError(
            f"{where}: sizes must be positive whole numbers from 784 to 10, not {sizes!r}")
    for key in ("weights", "biases"):
        if not isinstance(doc[key], list) or len(doc[key]) != len(sizes) - 1:
            raise ModelFormatError(f"{where}: {key} must be a list of {len(sizes) - 1} arrays")
    layers, params = [], []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        w = _decode_array(doc["weights"][i], f"{where}: weights[{i}]")
        b = _decode_array(doc["biases"][i], f"{where}: biases[{i}]")
        if w.shape != (n_out, n_in) or b.shape not in ((n_out, 1), (n_out,)):
            raise ModelFormatError(
                f"{where}: layer {i} has weights {list(w.shape)} and biases {list(b.shape)}; "
                f"sizes say {[n_out, n_in]} and {[n_out, 1]}"
            )
        layers.append({"type": "dense", "n_in": n_in, "n_out": n_out,
                       "activation": "sigmoid", "dropout": 0.0})
        params.append({"w": np.ascontiguousarray(w.T), "b": b.reshape(n_out)})
    return [({"layers": layers, "cost": BOOK_COSTS[doc["cost"]]}, params)]
