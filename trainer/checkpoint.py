"""Checkpoints as bytes: a JSON tree whose arrays live beside it in one `.npz`.

Nothing is pickled, so a checkpoint read back from Redis cannot run code.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

_TREE = "__tree__"


def dumps(tree: Any) -> bytes:
    arrays: dict[str, np.ndarray] = {}

    def strip(node: Any) -> Any:
        if isinstance(node, np.ndarray):
            key = f"a{len(arrays)}"
            arrays[key] = node
            return {"__array__": key}
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items()}
        if isinstance(node, list | tuple):
            return [strip(v) for v in node]
        if isinstance(node, np.generic):
            return node.item()
        return node

    tree_json = json.dumps(strip(tree))
    buf = io.BytesIO()
    np.savez(buf, **arrays, **{_TREE: np.frombuffer(tree_json.encode(), dtype=np.uint8)})
    return buf.getvalue()


def loads(data: bytes) -> Any:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    tree = json.loads(arrays.pop(_TREE).tobytes().decode())

    def fill(node: Any) -> Any:
        if isinstance(node, dict):
            if set(node) == {"__array__"}:
                return arrays[node["__array__"]]
            return {k: fill(v) for k, v in node.items()}
        if isinstance(node, list):
            return [fill(v) for v in node]
        return node

    return fill(tree)
