"""LLaVA-1.5's box codec: decimals 0..1 with 2 places, relative to the padded square image
(the processor pads the short side, centred, before resizing)."""

from __future__ import annotations

import dataclasses

from rmpl_jax.m2e2.boxes import BoxCodec, check_values, clamp, inside, round_half_up
from rmpl_jax.m2e2.records import Box


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
        x1, y1, x2, y2 = inside(box, image_size)
        side, ox, oy = self._frame(image_size)
        grid = 10**self.decimals
        return tuple(round_half_up((v + o) / side * grid) / grid for v, o in ((x1, ox), (y1, oy), (x2, ox), (y2, oy)))

    def decode(self, values, image_size):
        x1, y1, x2, y2 = check_values(values, image_size)
        side, ox, oy = self._frame(image_size)
        w, h = image_size
        return Box(
            clamp(x1 * side - ox, w), clamp(y1 * side - oy, h), clamp(x2 * side - ox, w), clamp(y2 * side - oy, h)
        )
