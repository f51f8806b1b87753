"""Artificially expanded training data (book ch. 3 and 6).

`shift` is the book's `expand_mnist.py`: every image plus its four 1-pixel shifts
(up, down, left, right; the row or column moved in is blank), 50,000 -> 250,000.
`shift+rotate` adds two copies rotated by ±`rotate` degrees about the centre, with
bilinear interpolation. The originals come first, so the first n rows are the
un-expanded set (the trainer measures training cost there).
"""

from __future__ import annotations

import numpy as np

SIDE = 28
MODES = ("none", "shift", "shift+rotate")


def shifted(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """(n, 784) images moved by (dy, dx) pixels, the vacated border blank."""
    img = x.reshape(-1, SIDE, SIDE)
    out = np.zeros_like(img)
    ys, yd = (slice(0, SIDE - dy), slice(dy, SIDE)) if dy >= 0 else (slice(-dy, SIDE),
                                                                    slice(0, SIDE + dy))
    xs, xd = (slice(0, SIDE - dx), slice(dx, SIDE)) if dx >= 0 else (slice(-dx, SIDE),
                                                                    slice(0, SIDE + dx))
    out[:, yd, xd] = img[:, ys, xs]
    return out.reshape(x.shape)


def rotated(x: np.ndarray, degrees: float) -> np.ndarray:
    """(n, 784) images turned by `degrees` about the centre (bilinear, blank outside)."""
    c = (SIDE - 1) / 2.0
    t = np.deg2rad(degrees)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE].astype(np.float64) - c  # output pixel coordinates
    # Inverse mapping: where in the source each output pixel comes from.
    sy = np.cos(t) * yy - np.sin(t) * xx + c
    sx = np.sin(t) * yy + np.cos(t) * xx + c
    y0, x0 = np.floor(sy).astype(int), np.floor(sx).astype(int)
    fy, fx = sy - y0, sx - x0
    out = np.zeros_like(x)
    for oy, ox, weight in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx),
                           (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        py, px = y0 + oy, x0 + ox
        inside = ((py >= 0) & (py < SIDE) & (px >= 0) & (px < SIDE)).ravel()  # (784,)
        src = (np.clip(py, 0, SIDE - 1) * SIDE + np.clip(px, 0, SIDE - 1)).ravel()
        w = (weight.ravel() * inside).astype(x.dtype)  # (784,): 0 where outside
        out += x[:, src] * w
    return out


def expand(
    x: np.ndarray, y: np.ndarray, mode: str, rotate: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """(n, 784), (n,) -> the expanded set, originals first."""
    if mode not in MODES:
        raise ValueError(f"expand must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "none":
        return x, y
    parts = [x] + [shifted(x, dy, dx) for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))]
    if mode == "shift+rotate":
        parts += [rotated(x, rotate), rotated(x, -rotate)]
    return np.concatenate(parts), np.tile(y, len(parts))
