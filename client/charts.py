"""PNG charts drawn with Pillow alone: learning curves like the book's, and digit grids."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from nndl.v1 import nndl_pb2 as pb

Colour = tuple[int, int, int]
TRAINING: Colour = (31, 119, 180)  # blue
VALIDATION: Colour = (255, 127, 14)  # orange
AXIS: Colour = (60, 60, 60)
GRID: Colour = (225, 225, 225)
WHITE: Colour = (255, 255, 255)
MISTAKE: Colour = (200, 30, 30)


@dataclass(frozen=True)
class Series:
    label: str
    colour: Colour
    lines: list[list[tuple[float, float]]]  # one line per network of an ensemble


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (ImportError, AttributeError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def nice_ticks(lo: float, hi: float, count: int = 5, whole: bool = False) -> list[float]:
    """Round tick values (steps of 1, 2 or 5 × 10^k, whole numbers if `whole`) covering
    lo..hi."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    if whole:
        step = max(1.0, step)
    first = math.floor(lo / step) * step
    return [first + i * step for i in range(int(math.ceil((hi - first) / step)) + 1)]


def _series(members: list[list[pb.EpochProgress]], field: str, scale: float) -> list[list]:
    """Points of one measured field (0 means not measured) for each network."""
    lines = [[(float(p.epoch), scale * getattr(p, field)) for p in m if getattr(p, field)]
             for m in members]
    return [line for line in lines if line]


def _panel(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], title: str,
           series: list[Series], y_label: str) -> None:
    left, top, right, bottom = box
    font, small = _font(16), _font(12)
    draw.text(((left + right) / 2, top - 28), title, fill=AXIS, font=font, anchor="mm")
    points = [pt for s in series for line in s.lines for pt in line]
    if not points:
        draw.text(((left + right) / 2, (top + bottom) / 2), "not measured", fill=AXIS,
                  font=font, anchor="mm")
        return
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_ticks = nice_ticks(min(1.0, min(xs)), max(xs), 8, whole=True)  # epochs
    y_ticks = nice_ticks(min(ys), max(ys), 6)
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]

    def at(x: float, y: float) -> tuple[float, float]:
        return (left + (x - x0) / (x1 - x0) * (right - left),
                bottom - (y - y0) / (y1 - y0) * (bottom - top))

    for y in y_ticks:
        _, py = at(x0, y)
        draw.line([(left, py), (right, py)], fill=GRID)
        draw.text((left - 6, py), f"{y:g}", fill=AXIS, font=small, anchor="rm")
    for x in x_ticks:
        px, _ = at(x, y0)
        draw.line([(px, bottom), (px, bottom + 4)], fill=AXIS)
        draw.text((px, bottom + 8), f"{x:g}", fill=AXIS, font=small, anchor="mt")
    draw.rectangle(box, outline=AXIS)
    draw.text(((left + right) / 2, bottom + 28), "epoch", fill=AXIS, font=small, anchor="mt")
    draw.text((left - 50, top - 10), y_label, fill=AXIS, font=small, anchor="ls")
    for s in series:
        for line in s.lines:
            xy = [at(x, y) for x, y in line]
            if len(xy) > 1:
                draw.line(xy, fill=s.colour, width=3, joint="curve")
            for px, py in xy:
                draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=s.colour)
    legend_y = top + 12
    for s in series:
        if s.lines:
            draw.line([(right - 150, legend_y), (right - 125, legend_y)], fill=s.colour, width=3)
            draw.text((right - 118, legend_y), s.label, fill=AXIS, font=small, anchor="lm")
            legend_y += 18


def learning_curves(members: list[list[pb.EpochProgress]], title: str,
                    size: tuple[int, int] = (1200, 520)) -> Image.Image:
    """Accuracy and cost per epoch, training against validation, side by side."""
    width, height = size
    image = Image.new("RGB", size, WHITE)
    draw = ImageDraw.Draw(image)
    draw.text((width / 2, 22), title, fill=AXIS, font=_font(20), anchor="mm")
    panel_w = (width - 3 * 90) // 2
    boxes = [(90, 100, 90 + panel_w, height - 70),
             (2 * 90 + panel_w, 100, 2 * 90 + 2 * panel_w, height - 70)]
    _panel(draw, boxes[0], "Accuracy", [
        Series("training", TRAINING, _series(members, "training_accuracy", 100)),
        Series("validation", VALIDATION, _series(members, "validation_accuracy", 100)),
    ], "%")
    _panel(draw, boxes[1], "Cost", [
        Series("training", TRAINING, _series(members, "training_cost", 1)),
        Series("validation", VALIDATION, _series(members, "validation_cost", 1)),
    ], "")
    return image


def digit_grid(images: np.ndarray, captions: Sequence[str], columns: int = 8,
               scale: int = 3) -> Image.Image:
    """(N, 784) MNIST images in 0..1 as a captioned grid, black ink on white like paper."""
    tile, caption_h, pad = 28 * scale, 18, 8
    rows = max(1, math.ceil(len(images) / columns))
    cols = min(columns, max(1, len(images)))
    grid = Image.new("RGB", (cols * (tile + pad) + pad, rows * (tile + caption_h + pad) + pad),
                     WHITE)
    draw, font = ImageDraw.Draw(grid), _font(12)
    for i, (pixels, caption) in enumerate(zip(images, captions, strict=True)):
        r, c = divmod(i, columns)
        x, y = pad + c * (tile + pad), pad + r * (tile + caption_h + pad)
        grey = (255 - np.clip(pixels, 0, 1) * 255).round().astype(np.uint8).reshape(28, 28)
        grid.paste(Image.fromarray(grey, "L").resize((tile, tile), Image.NEAREST), (x, y))
        draw.text((x + tile / 2, y + tile + 2), caption, fill=MISTAKE, font=font, anchor="mt")
    return grid
