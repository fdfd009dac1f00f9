"""Qwen2-VL / Qwen2.5-VL box codecs and the image processor's `smart_resize`.

- Qwen2-VL: integers 0..1000, relative to the image (x / width * 1000).
- Qwen2.5-VL: absolute integer pixels of the image as its processor resizes it
  (`smart_resize`, multiples of 28 within a pixel budget).
"""

from __future__ import annotations

import dataclasses
import math

from rmpl_jax.m2e2.boxes import BoxCodec, ImageSize, check_values, clamp, inside, round_half_up
from rmpl_jax.m2e2.records import Box


def smart_resize(
    height: int, width: int, factor: int = 28, min_pixels: int = 56 * 56, max_pixels: int = 14 * 14 * 4 * 1280
) -> tuple[int, int]:
    """(height, width) the Qwen2-VL/2.5-VL image processor resizes an image to.

    Both sides become multiples of `factor`, the pixel count lands in
    [min_pixels, max_pixels], and the aspect ratio is kept as well as that allows.
    Same arithmetic as transformers' `smart_resize` (Python's round: half to even).
    """
    if min(height, width) <= 0:
        raise ValueError(f"image sides must be positive, got {height}x{width}")
    if max(height, width) / min(height, width) > 200:
        raise ValueError(
            f"absolute aspect ratio must be smaller than 200, got {max(height, width) / min(height, width)}"
        )
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


@dataclasses.dataclass(frozen=True)
class Qwen2VLBoxes(BoxCodec):
    """Qwen2-VL: integers in 0..scale relative to the image."""

    scale: int = 1000
    name: str = "qwen2_vl"
    decimals: int = 0
    description = "integers 0-1000 relative to the image width and height"

    def encode(self, box, image_size):
        w, h = image_size
        x1, y1, x2, y2 = inside(box, image_size)
        return tuple(round_half_up(v / d * self.scale) for v, d in ((x1, w), (y1, h), (x2, w), (y2, h)))

    def decode(self, values, image_size):
        x1, y1, x2, y2 = check_values(values, image_size)
        w, h = image_size
        return Box(
            clamp(x1 * w / self.scale, w),
            clamp(y1 * h / self.scale, h),
            clamp(x2 * w / self.scale, w),
            clamp(y2 * h / self.scale, h),
        )


@dataclasses.dataclass(frozen=True)
class Qwen25VLBoxes(BoxCodec):
    """Qwen2.5-VL: integer pixels of the smart_resize'd image (set the processor's budget)."""

    factor: int = 28
    min_pixels: int = 56 * 56
    max_pixels: int = 14 * 14 * 4 * 1280
    name: str = "qwen2_5_vl"
    decimals: int = 0
    description = "integer pixels of the image"

    def resized(self, image_size: ImageSize) -> tuple[int, int]:
        """(width, height) of the image as the processor feeds it to the model."""
        w, h = image_size
        rh, rw = smart_resize(h, w, self.factor, self.min_pixels, self.max_pixels)
        return rw, rh

    def encode(self, box, image_size):
        x1, y1, x2, y2 = inside(box, image_size)
        w, h = image_size
        rw, rh = self.resized(image_size)
        return tuple(round_half_up(v * r / d) for v, d, r in ((x1, w, rw), (y1, h, rh), (x2, w, rw), (y2, h, rh)))

    def decode(self, values, image_size):
        x1, y1, x2, y2 = check_values(values, image_size)
        w, h = image_size
        rw, rh = self.resized(image_size)
        return Box(clamp(x1 * w / rw, w), clamp(y1 * h / rh, h), clamp(x2 * w / rw, w), clamp(y2 * h / rh, h))


def square_frame_codec(model_type: str, side: int, factor: int = 28) -> BoxCodec:
    """The codec of photos resized to side x side before the processor (training's static
    shapes): Qwen2.5-VL's pixel budget is pinned to that square; Qwen2-VL's is relative."""
    if model_type == "qwen2_5_vl":
        return Qwen25VLBoxes(factor=factor, min_pixels=side * side, max_pixels=side * side)
    return Qwen2VLBoxes()


def default_codec(model_type: str) -> BoxCodec:
    """The codec of photos at their own size (the processor's default pixel budget)."""
    return Qwen25VLBoxes() if model_type == "qwen2_5_vl" else Qwen2VLBoxes()
