"""Encoded images (PNG, JPEG, BMP, GIF) made into MNIST inputs the way MNIST was made.

MNIST's digits were bilevel scans, cropped, scaled into a 20×20 box keeping the aspect
ratio (the anti-aliasing made the grey levels) and placed in 28×28 so that the centre of
mass sits at the centre. A network trained on them only recognises digits prepared
the same way, so a photo or a drawing goes through the same steps: grey, ink white on
black with a background of exactly 0, cropped, scaled, centred.

Input comes from clients, so sizes are checked before any pixel is decoded and every
failure is an `InvalidArgumentError` whose message says what is wrong.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from nndl.trainer.errors import InvalidArgumentError

FORMATS = ("PNG", "JPEG", "BMP", "GIF")
SIDE = 28  # MNIST's frame
BOX = 20  # the digit's longer side inside the frame
CENTRE = 14.0  # where MNIST's centres of mass lie (row and column, 13.5..14.5 over the test set)
MIN_CONTRAST = 0.1  # ink must differ from the background by this much of the full range
NOISE_FLOOR = 0.1  # after stretching, fainter "ink" is compression noise, not strokes
# The digit's extent is where the ink is this strong: fainter fringes (blur, anti-aliasing,
# JPEG ringing) would make the box larger and the digit smaller than MNIST's.
STROKE_LEVEL = 0.3


@dataclass(frozen=True)
class ImageLimits:
    """What one encoded image may cost: bytes received and pixels decoded."""

    max_bytes: int = 4 * 1024 * 1024
    max_pixels: int = 16_000_000


DEFAULT_LIMITS = ImageLimits()


def normalize_encoded(data: bytes, limits: ImageLimits = DEFAULT_LIMITS) -> np.ndarray:
    """An encoded image as a float32 (784,) MNIST input in 0..1, white ink on black.

    >>> from PIL import Image, ImageDraw
    >>> im = Image.new("L", (60, 90), 255)
    >>> ImageDraw.Draw(im).line([(30, 10), (30, 80)], fill=0, width=6)
    >>> buf = io.BytesIO(); im.save(buf, "PNG")
    >>> x = normalize_encoded(buf.getvalue())
    >>> x.shape, x.dtype, float(x.max())
    ((784,), dtype('float32'), 1.0)
    """
    grey = _decode(data, limits)  # (H, W)
    ink = _ink(grey)  # (H, W)
    return _frame(ink).reshape(SIDE * SIDE)


def _decode(data: bytes, limits: ImageLimits) -> np.ndarray:
    """(H, W) float32 grey in 0..1 of the first frame, transparency composited."""
    if len(data) > limits.max_bytes:
        raise InvalidArgumentError(
            f"the image is {_amount(len(data))}; the limit is {_amount(limits.max_bytes)}"
        )
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as im:
            width, height = im.size  # from the header; no pixel is decoded yet
            if width * height > limits.max_pixels:
                raise InvalidArgumentError(
                    f"the image is {width}×{height} pixels; "
                    f"the limit is {limits.max_pixels} pixels"
                )
            im.load()  # the first frame only: an animated GIF is not advanced
            grey, alpha = _grey_alpha(ImageOps.exif_transpose(im))
    except InvalidArgumentError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        # Pillow's own guard, in `Image.open` before `im.size` can be read or in a GIF
        # frame; its warning arrives as an exception where warnings are errors (pytest).
        raise InvalidArgumentError(
            f"the image has more pixels than can be decoded safely; "
            f"the limit is {limits.max_pixels} pixels"
        ) from e
    except Exception as e:  # Pillow's decoders raise an open set of types, not one base
        raise InvalidArgumentError(
            "the data is not an image Pillow can decode (PNG, JPEG, BMP, GIF)"
        ) from e
    return grey if alpha is None else _composite(grey, alpha)


def _grey_alpha(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """(H, W) grey and (H, W) alpha (None when opaque), both float32 in 0..1."""
    if im.mode.startswith("I"):  # 16-bit grey PNGs: `convert` would clip them to 8 bits
        raw = np.asarray(im)
        grey = np.clip(raw.astype(np.float32) / 65535.0, 0.0, 1.0)
        key = im.info.get("transparency")
        alpha = (raw != key).astype(np.float32) if isinstance(key, int) else None
        return grey, alpha
    has_alpha = "A" in im.mode or "transparency" in im.info
    # Via RGBA so that palette and colour-key transparency become alpha.
    la = np.asarray(im.convert("RGBA").convert("LA"), dtype=np.float32) / 255.0  # (H, W, 2)
    return la[..., 0], (la[..., 1] if has_alpha else None)


def _composite(grey: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Transparent pixels made background: (H, W) grey and alpha -> (H, W) grey.

    The colour stored under a transparent pixel means nothing (a drawing exported from a
    canvas is black strokes on transparent black), so the background is chosen instead.
    When the opaque pixels are all one colour they are the strokes and the background is
    the opposite of them; otherwise they hold paper and ink, and the paper (their
    median) fills the transparent parts.
    """
    opaque = grey[alpha > 0.5]  # (K,)
    if opaque.size == 0:
        return grey * alpha  # nothing visible: `_ink` reports the image as empty
    low, median, high = np.percentile(opaque, [5, 50, 95])
    strokes_only = high - low < MIN_CONTRAST
    background = float(median < 0.5) if strokes_only else float(median)
    return alpha * grey + (1.0 - alpha) * background


def _ink(grey: np.ndarray) -> np.ndarray:
    """(H, W) grey -> (H, W) ink: background exactly 0, the strongest ink 1.

    The background level is the median of the border; the ink is whichever side of it
    reaches further, so dark ink on light paper is inverted and white ink on black is not.
    """
    border = np.concatenate([grey[0], grey[-1], grey[1:-1, 0], grey[1:-1, -1]])
    background = float(np.median(border))
    darker, lighter = background - float(grey.min()), float(grey.max()) - background
    ink = background - grey if darker > lighter else grey - background  # (H, W)
    contrast = max(darker, lighter)
    if contrast < MIN_CONTRAST:
        raise InvalidArgumentError("the image is empty: no ink found")
    ink = np.clip(ink / contrast, 0.0, 1.0)
    ink[ink < NOISE_FLOOR] = 0.0
    return ink


def _frame(ink: np.ndarray) -> np.ndarray:
    """(H, W) ink -> (28, 28): cropped, scaled into 20×20, centred by centre of mass."""
    strokes = ink >= STROKE_LEVEL  # (H, W)
    rows = np.flatnonzero(strokes.any(axis=1))
    cols = np.flatnonzero(strokes.any(axis=0))
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]  # (h, w)
    h, w = crop.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # Pillow's (width, height)
    # LANCZOS on the float image anti-aliases as it shrinks, as MNIST's normalisation did.
    resized = Image.fromarray(crop.astype(np.float32)).resize(size, Image.Resampling.LANCZOS)
    patch = np.clip(np.asarray(resized), 0.0, 1.0)  # (h', w'), LANCZOS overshoots a little
    peak = float(patch.max())
    if peak <= 0.0:
        raise InvalidArgumentError("the image is empty: no ink found")
    # A thin pen on a large canvas comes out faint; MNIST's bilevel strokes reached 1.
    patch = patch / peak
    total = patch.sum()
    com_row = float((patch.sum(axis=1) * np.arange(patch.shape[0])).sum() / total)
    com_col = float((patch.sum(axis=0) * np.arange(patch.shape[1])).sum() / total)
    # Integer shifts as MNIST's; kept inside the frame so that no ink is cut off.
    top = int(np.clip(round(CENTRE - com_row), 0, SIDE - patch.shape[0]))
    left = int(np.clip(round(CENTRE - com_col), 0, SIDE - patch.shape[1]))
    frame = np.zeros((SIDE, SIDE), dtype=np.float32)
    frame[top : top + patch.shape[0], left : left + patch.shape[1]] = patch
    return frame


def _amount(n: int) -> str:
    """Bytes for people: '9 MB', '512 kB', '300 bytes' (binary multiples)."""
    for unit, size in (("MB", 1024 * 1024), ("kB", 1024)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"
