"""Box codecs: how each model family writes a box as numbers, and back.

A box (records.Box) is in the original image's pixels. Each family was pre-trained with
its own convention, and we keep it so grounding transfers:
- Qwen2-VL: integers 0..1000, relative to the image (x / width * 1000).
- Qwen2.5-VL: absolute integer pixels of the image as its processor resizes it
  (`smart_resize`, multiples of 28 within a pixel budget).
- LLaVA(-1.5): decimals 0..1 with 2 places, relative to the padded square image
  (the processor pads the short side, centred, before resizing).

`image_size` is always (width, height), as PIL's `Image.size`. Both directions clamp
into the image. Quantisation: `encode` rounds half up to the codec's grid, so for any box
inside the image `decode(encode(b))` differs from `b` by at most half a grid step per
coordinate, and `encode(decode(v)) == v` for every code `v` within `code_bounds`.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Sequence

from rmpl_jax.m2e2.records import Box

ImageSize = tuple[int, int]  # (width, height)


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


def _round_half_up(v: float) -> int:
    return math.floor(v + 0.5)


def _clamp(v: float, hi: float) -> float:
    return min(max(v, 0.0), hi)


class BoxCodec(abc.ABC):
    """Maps a Box in original pixels to the family's numbers and back."""

    name: str
    decimals: int  # 0: integers
    description: str  # how prompts describe the numbers

    @abc.abstractmethod
    def encode(self, box: Box, image_size: ImageSize) -> tuple[float, ...]:
        """(x1, y1, x2, y2) in the family's convention, rounded to its grid and clamped."""

    @abc.abstractmethod
    def decode(self, values: Sequence[float], image_size: ImageSize) -> Box:
        """A Box in original pixels, clamped inside the image; ValueError on bad values."""

    def code_bounds(self, image_size: ImageSize) -> tuple[float, ...]:
        """(x_min, y_min, x_max, y_max): the codes of the image's own corners.

        Every code in these bounds is a fixed point (`encode(decode(v)) == v`); codes
        outside them decode onto the image border.
        """
        w, h = image_size
        return self.encode(Box(0.0, 0.0, float(w), float(h)), image_size)

    def format(self, values: Sequence[float]) -> str:
        """`[x1, y1, x2, y2]` as the target grammar writes it."""
        if self.decimals == 0:
            return "[" + ", ".join(str(int(v)) for v in values) + "]"
        return "[" + ", ".join(f"{v:.{self.decimals}f}" for v in values) + "]"

    def quantize(self, box: Box, image_size: ImageSize) -> Box:
        """The box as it survives a trip through the codec."""
        return self.decode(self.encode(box, image_size), image_size)


def _inside(box: Box, image_size: ImageSize) -> tuple[float, float, float, float]:
    """The box's coordinates clamped into the image (encode never writes outside it)."""
    x1, y1, x2, y2 = _check((box.x1, box.y1, box.x2, box.y2), image_size)
    w, h = image_size
    return _clamp(x1, w), _clamp(y1, h), _clamp(x2, w), _clamp(y2, h)


def _check(values: Sequence[float], image_size: ImageSize) -> tuple[float, float, float, float]:
    if len(values) != 4:
        raise ValueError(f"a box needs 4 numbers, got {len(values)}")
    out = tuple(float(v) for v in values)
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"box numbers must be finite, got {values!r}")
    w, h = image_size
    if w <= 0 or h <= 0:
        raise ValueError(f"image size must be positive (width, height), got {image_size!r}")
    return out  # type: ignore[return-value]


@dataclasses.dataclass(frozen=True)
class Qwen2VLBoxes(BoxCodec):
    """Qwen2-VL: integers in 0..scale relative to the image."""

    scale: int = 1000
    name: str = "qwen2_vl"
    decimals: int = 0
    description = "integers 0-1000 relative to the image width and height"

    def encode(self, box, image_size):
        w, h = image_size
        x1, y1, x2, y2 = _inside(box, image_size)
        return tuple(_round_half_up(v / d * self.scale) for v, d in ((x1, w), (y1, h), (x2, w), (y2, h)))

    def decode(self, values, image_size):
        x1, y1, x2, y2 = _check(values, image_size)
        w, h = image_size
        return Box(
            _clamp(x1 * w / self.scale, w),
            _clamp(y1 * h / self.scale, h),
            _clamp(x2 * w / self.scale, w),
            _clamp(y2 * h / self.scale, h),
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
        x1, y1, x2, y2 = _inside(box, image_size)
        w, h = image_size
        rw, rh = self.resized(image_size)
        return tuple(_round_half_up(v * r / d) for v, d, r in ((x1, w, rw), (y1, h, rh), (x2, w, rw), (y2, h, rh)))

    def decode(self, values, image_size):
        x1, y1, x2, y2 = _check(values, image_size)
        w, h = image_size
        rw, rh = self.resized(image_size)
        return Box(_clamp(x1 * w / rw, w), _clamp(y1 * h / rh, h), _clamp(x2 * w / rw, w), _clamp(y2 * h / rh, h))


@dataclasses.dataclass(frozen=True)
class LlavaBoxes(BoxCodec):
    """LLaVA-1.5: 0..1 with `decimals` places, relative to the padded square.

    The processor pastes the image at ((side - width) // 2, (side - height) // 2) of a
    side x side square, side = max(width, height).
    """

    decimals: int = 2
    name: str = "llava"
    description = "numbers 0-1 relative to the image padded to a square"

    def _frame(self, image_size):
        w, h = image_size
        side = max(w, h)
        return side, (side - w) // 2, (side - h) // 2

    def encode(self, box, image_size):
        x1, y1, x2, y2 = _inside(box, image_size)
        side, ox, oy = self._frame(image_size)
        grid = 10**self.decimals
        return tuple(_round_half_up((v + o) / side * grid) / grid for v, o in ((x1, ox), (y1, oy), (x2, ox), (y2, oy)))

    def decode(self, values, image_size):
        x1, y1, x2, y2 = _check(values, image_size)
        side, ox, oy = self._frame(image_size)
        w, h = image_size
        return Box(
            _clamp(x1 * side - ox, w), _clamp(y1 * side - oy, h), _clamp(x2 * side - ox, w), _clamp(y2 * side - oy, h)
        )


CODECS: dict[str, BoxCodec] = {
    "qwen2_vl": Qwen2VLBoxes(),
    "qwen2_5_vl": Qwen25VLBoxes(),
    "llava": LlavaBoxes(),
}


def codec_for(family: str) -> BoxCodec:
    """The default codec of a model family ('qwen2_vl', 'qwen2_5_vl', 'llava')."""
    if family not in CODECS:
        raise ValueError(f"no box codec for family {family!r}; known: {sorted(CODECS)}")
    return CODECS[family]


def square_frame_codec(family: str, side: int, factor: int = 28) -> BoxCodec:
    """The family's codec for photos resized to side x side before the processor (training's
    static shapes): Qwen2.5-VL's pixel budget is pinned to that square."""
    if family == "qwen2_5_vl":
        return Qwen25VLBoxes(factor=factor, min_pixels=side * side, max_pixels=side * side)
    return codec_for(family)
