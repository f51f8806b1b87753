"""Chooses the array module (numpy or CuPy) that a network computes with.

The network code is written once against the numpy API; CuPy provides the same API
on a CUDA device, so a job's `device` setting is the only switch between them.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from nndl.trainer.errors import DeviceUnavailableError

DEVICES = ("cpu", "gpu", "auto")


def _cupy_or_reason() -> tuple[ModuleType | None, str]:
    try:
        import cupy  # type: ignore[import-not-found]
    except ImportError:
        return None, "CuPy is not installed (pip install 'nndl[gpu]')"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None, "no CUDA device is visible"
    except Exception as e:  # CuPy raises its own runtime errors when no driver is present
        return None, f"CUDA is not usable: {e}"
    return cupy, ""


def array_module(device: str) -> tuple[ModuleType, str, str]:
    """Returns (xp, device actually used, a note for people when `auto` fell back)."""
    if device not in DEVICES:
        raise DeviceUnavailableError(f"device must be one of {', '.join(DEVICES)}, not {device!r}")
    if device == "cpu":
        return np, "cpu", ""
    cupy, reason = _cupy_or_reason()
    if cupy is not None:
        return cupy, "gpu", ""
    if device == "gpu":
        raise DeviceUnavailableError(f"the job asks for a GPU but {reason}")
    return np, "cpu", f"no GPU ({reason}); training on the CPU"


def to_numpy(array) -> np.ndarray:
    """Copies a CuPy array to the host; numpy arrays pass through."""
    return array.get() if hasattr(array, "get") else np.asarray(array)
