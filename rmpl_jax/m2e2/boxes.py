"""Box codecs: how a model family writes a box as numbers, and back (the interface; each
family's codec lives in its folder, `models/<family>/boxes.py`, and the family hands it out
through `ModelFamily.box_codec`).

A box (records.Box) is in the original image's pixels. Each family was pre-trained with
its own convention, and we keep it so grounding transfers (Qwen2-VL: 0-1000 relative;
Qwen2.5-VL: pixels of the resized image; LLaVA-1.5: 0-1 of the padded square).

`image_size` is always (width, height), as PIL's `Image.size`. Both directions clamp
into the image. Quantisation: `encode` rounds half up to the codec's grid, so for any box
inside the image `decode(encode(b))` differs from `b` by at most half a grid step per
coordinate, and `encode(decode(v)) == v` for every code `v` within `code_bounds`.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence

from rmpl_jax.m2e2.records import Box

ImageSize = tuple[int, int]  # (width, height)


def round_half_up(v: float) -> int:
    """Rounds half up (codecs quantise this way; Python's round is half to even)."""
    return math.floor(v + 0.5)


def clamp(v: float, hi: float) -> float:
    """`v` within [0, hi]."""
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


def inside(box: Box, image_size: ImageSize) -> tuple[float, float, float, float]:
    """The box's coordinates clamped into the image (encode never writes outside it)."""
    x1, y1, x2, y2 = check_values((box.x1, box.y1, box.x2, box.y2), image_size)
    w, h = image_size
    return clamp(x1, w), clamp(y1, h), clamp(x2, w), clamp(y2, h)


def check_values(values: Sequence[float], image_size: ImageSize) -> tuple[float, float, float, float]:
    """Four finite numbers for a positive image size, else ValueError."""
    if len(values) != 4:
        raise ValueError(f"a box needs 4 numbers, got {len(values)}")
    out = tuple(float(v) for v in values)
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"box numbers must be finite, got {values!r}")
    w, h = image_size
    if w <= 0 or h <= 0:
        raise ValueError(f"image size must be positive (width, height), got {image_size!r}")
    return out  # type: ignore[return-value]
