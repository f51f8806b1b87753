"""Wire messages to arrays and back: the only place that knows both."""

from __future__ import annotations

import numpy as np

from nndl.server.images import ImageLimits, normalize_encoded
from nndl.trainer.errors import InvalidArgumentError
from nndl.v1 import nndl_pb2 as pb

PIXELS = 784


def image_to_array(image: pb.Image, limits: ImageLimits, where: str = "image") -> np.ndarray:
    """One Image message -> (784,) float32 in 0..1, white ink on black."""
    kind = image.WhichOneof("data")
    if kind == "pixels_u8":
        if len(image.pixels_u8) != PIXELS:
            raise InvalidArgumentError(
                f"{where}.pixels_u8 has {len(image.pixels_u8)} bytes; a 28×28 image has 784"
            )
        return np.frombuffer(image.pixels_u8, dtype=np.uint8).astype(np.float32) / 255.0
    if kind == "pixels_f32":
        values = np.asarray(image.pixels_f32.values, dtype=np.float32)
        if values.size != PIXELS:
            raise InvalidArgumentError(
                f"{where}.pixels_f32 has {values.size} values; a 28×28 image has 784"
            )
        _check_unit_range(values, f"{where}.pixels_f32")
        return values
    if kind == "encoded":
        try:
            return normalize_encoded(image.encoded, limits)
        except InvalidArgumentError as e:
            raise InvalidArgumentError(f"{where}: {e}") from e
    raise InvalidArgumentError(f"{where} is empty: set pixels_u8, pixels_f32 or encoded")


def packed_to_array(packed: pb.PackedImages, max_images: int) -> np.ndarray:
    """PackedImages -> (count, 784) float32."""
    if packed.count > max_images:
        raise InvalidArgumentError(f"packed.count {packed.count} is over the {max_images} limit")
    size = {pb.PIXEL_FORMAT_U8: 1, pb.PIXEL_FORMAT_F32_LE: 4}.get(packed.format)
    if size is None:
        raise InvalidArgumentError("packed.format must be PIXEL_FORMAT_U8 or PIXEL_FORMAT_F32_LE")
    if len(packed.data) != packed.count * PIXELS * size:
        raise InvalidArgumentError(
            f"packed.data has {len(packed.data)} bytes; {packed.count} images of 784 pixels "
            f"need {packed.count * PIXELS * size}"
        )
    if size == 1:
        raw = np.frombuffer(packed.data, dtype=np.uint8).reshape(packed.count, PIXELS)
        return raw.astype(np.float32) * np.float32(1 / 255)
    x = np.frombuffer(packed.data, dtype="<f4").reshape(packed.count, PIXELS)
    _check_unit_range(x, "packed.data")
    return x.astype(np.float32, copy=False)


def _check_unit_range(x: np.ndarray, where: str) -> None:
    if not np.isfinite(x).all():
        raise InvalidArgumentError(f"{where} holds NaN or infinite values")
    if x.size and (x.min() < 0.0 or x.max() > 1.0):
        raise InvalidArgumentError(f"{where} values must lie in [0, 1]")


def prediction(probs: np.ndarray) -> pb.Prediction:
    digit = int(probs.argmax())
    return pb.Prediction(digit=digit, confidence=float(probs[digit]),
                         probabilities=probs.tolist())
