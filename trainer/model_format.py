"""The `model.json` format: versioned JSON weights with their lineage.

A document holds one or more networks (an ensemble is one version holding several),
each as the library's layer configuration plus its parameters as base64
little-endian float32 with their shapes. Loading validates everything and executes
nothing: layer, activation and cost names are looked up in fixed tables.
See docs/model-format.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nndl.trainer.errors import ModelFormatError
from nndl.trainer.nn.network import Network

FORMAT_NAME = "nndl-model"
FORMAT_VERSION = 1
MAX_DOCUMENT_BYTES = 256 * 1024 * 1024
MAX_PARAMETERS = 50_000_000
MAX_NETWORKS = 10
INPUT_CONVENTION = {
    "shape": [28, 28],
    "layout": "row-major, flattened to 784",
    "range": [0.0, 1.0],
    "ink": "white on black (0 is background)",
}


@dataclass
class ModelDocument:
    """A parsed, validated model: networks as (config, host params) pairs."""

    networks: list[tuple[dict, list[dict[str, np.ndarray]]]]
    lineage: dict = field(default_factory=dict)
    name: str = ""
    version: int = 0
    created_at: float = 0.0

    def build(self, xp=np) -> list[Network]:
        return [Network.from_config(c, p, xp=xp) for c, p in self.networks]


def _encode_array(a: np.ndarray) -> dict:
    le = np.ascontiguousarray(a, dtype="<f4")
    return {"shape": list(le.shape), "dtype": "float32",
            "data": base64.b64encode(le.tobytes()).decode("ascii")}


def params_sha256(networks: list[tuple[dict, list[dict[str, np.ndarray]]]]) -> str:
    """SHA-256 over every parameter's little-endian float32 bytes, in document order."""
    h = hashlib.sha256()
    for _, params in networks:
        for layer in params:
            for key in sorted(layer):
                h.update(np.ascontiguousarray(layer[key], dtype="<f4").tobytes())
    return h.hexdigest()


def to_document(
    networks: list[tuple[dict, list[dict[str, np.ndarray]]]],
    lineage: dict,
    name: str = "",
    version: int = 0,
    created_at: float = 0.0,
) -> dict:
    """The JSON-able document for `networks` (config, host params) pairs."""
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": version,
        "created_at": created_at,
        "input": INPUT_CONVENTION,
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


def parse(data: bytes, where: str = "model.json") -> ModelDocument:
    """Validates a document's bytes; every failure says what is wrong and where."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise ModelFormatError(f"{where}: {len(data)} bytes is over the {MAX_DOCUMENT_BYTES} limit")
    try:
        doc = json.loads(data, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelFormatError(f"{where}: not valid JSON ({e})") from e
    if not isinstance(doc, dict):
        raise ModelFormatError(f"{where}: the top level must be a JSON object")
    if doc.get("format") != FORMAT_NAME:
        raise ModelFormatError(f"{where}: format is {doc.get('format')!r}, not {FORMAT_NAME!r}")
    fv = doc.get("format_version")
    if not isinstance(fv, int) or not 1 <= fv <= FORMAT_VERSION:
        raise ModelFormatError(
            f"{where}: format_version {fv!r} is not one this code reads (1..{FORMAT_VERSION})"
        )
    nets = doc.get("networks")
    if not isinstance(nets, list) or not 1 <= len(nets) <= MAX_NETWORKS:
        raise ModelFormatError(f"{where}: networks must be a list of 1 to {MAX_NETWORKS}")
    networks = [_parse_network(n, f"{where}: networks[{i}]") for i, n in enumerate(nets)]
    total = sum(a.size for _, ps in networks for layer in ps for a in layer.values())
    if total > MAX_PARAMETERS:
        raise ModelFormatError(f"{where}: {total} parameters is over the {MAX_PARAMETERS} limit")
    if doc.get("params_sha256") != params_sha256(networks):
        raise ModelFormatError(f"{where}: params_sha256 does not match the parameters")
    lineage = doc.get("lineage", {})
    if not isinstance(lineage, dict):
        raise ModelFormatError(f"{where}: lineage must be an object")
    return ModelDocument(
        networks=networks, lineage=lineage, name=str(doc.get("name", "")),
        version=int(doc.get("version", 0) or 0), created_at=float(doc.get("created_at", 0) or 0),
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _parse_network(net: Any, where: str) -> tuple[dict, list[dict[str, np.ndarray]]]:
    if not isinstance(net, dict) or not isinstance(net.get("config"), dict):
        raise ModelFormatError(f"{where}: must be an object with a config")
    config, raw_params = net["config"], net.get("params")
    if not isinstance(raw_params, list):
        raise ModelFormatError(f"{where}.params: must be a list")
    params = []
    for i, layer in enumerate(raw_params):
        if not isinstance(layer, dict):
            raise ModelFormatError(f"{where}.params[{i}]: must be an object")
        params.append({k: _decode_array(v, f"{where}.params[{i}].{k}") for k, v in layer.items()})
    try:
        built = Network.from_config(config, params)
    except (ValueError, TypeError, KeyError) as e:
        raise ModelFormatError(f"{where}: {e}") from e
    _check_shapes(built, params, where)
    return config, params


def _check_shapes(net: Network, params: list[dict[str, np.ndarray]], where: str) -> None:
    """Rebuilds fresh parameters from the config and compares every shape."""
    fresh = Network.from_config(net.config(), params)
    fresh.init_params(seed=0)
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
    out = fresh.feedforward(np.zeros((1, 784), dtype=np.float32))
    if out.shape != (1, 10):
        raise ModelFormatError(f"{where}: the network gives {out.shape[1]} outputs, not 10")


def _decode_array(spec: Any, where: str) -> np.ndarray:
    if isinstance(spec, list):  # nested lists are accepted as well as base64
        try:
            a = np.asarray(spec, dtype=np.float32)
        except (ValueError, TypeError) as e:
            raise ModelFormatError(f"{where}: not a rectangular list of numbers") from e
    elif isinstance(spec, dict):
        shape = spec.get("shape")
        if spec.get("dtype") != "float32":
            raise ModelFormatError(f"{where}: dtype must be float32")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and 0 < d <= MAX_PARAMETERS for d in shape
        ):
            raise ModelFormatError(f"{where}: shape must be a list of positive integers")
        count = math.prod(shape)
        if count > MAX_PARAMETERS:
            raise ModelFormatError(f"{where}: shape {shape} is over the parameter limit")
        try:
            raw = base64.b64decode(spec.get("data", ""), validate=True)
        except (binascii.Error, TypeError, ValueError) as e:
            raise ModelFormatError(f"{where}: data is not valid base64") from e
        if len(raw) != 4 * count:
            raise ModelFormatError(
                f"{where}: data holds {len(raw)} bytes; shape {shape} needs {4 * count}"
            )
        a = np.frombuffer(raw, dtype="<f4").reshape(shape).astype(np.float32)
    else:
        raise ModelFormatError(f"{where}: must be base64 with shape, or nested lists")
    if not np.isfinite(a).all():
        raise ModelFormatError(f"{where}: holds NaN or infinite values")
    return a


def from_book_json(data: bytes, where: str = "book JSON") -> list[tuple[dict, list[dict]]]:
    """Converts network2.py's saved JSON (sizes, weights, biases, cost) to our networks.

    The book stores w as (n_out, n_in) and b as (n_out, 1) column vectors; we keep
    batch-major (n_in, n_out) and (n_out,), so weights are transposed.
    """
    try:
        doc = json.loads(data, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelFormatError(f"{where}: not valid JSON ({e})") from e
    if not isinstance(doc, dict) or not {"sizes", "weights", "biases", "cost"} <= set(doc):
        raise ModelFormatError(f"{where}: needs the keys sizes, weights, biases and cost")
    costs = {"CrossEntropyCost": "cross_entropy", "QuadraticCost": "quadratic"}
    if doc["cost"] not in costs:
        raise ModelFormatError(f"{where}: cost {doc['cost']!r} is not one of {', '.join(costs)}")
    sizes = doc["sizes"]
    if not isinstance(sizes, list) or len(sizes) < 2 or sizes[0] != 784 or sizes[-1] != 10:
        raise ModelFormatError(f"{where}: sizes must run from 784 to 10, not {sizes!r}")
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
    return [({"layers": layers, "cost": costs[doc["cost"]]}, params)]
