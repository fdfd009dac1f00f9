"""Gemma 3's box codec: integers 0..1000 relative to the photo, `[x1, y1, x2, y2]`.

Why this convention: Gemma 3's processor squashes every photo to one square (no padding, no
crop), so a coordinate relative to the photo is exactly one relative to what the model sees,
whatever the photo's size or the run's `image_side`. Gemma 3 was published without a box
format for text answers (PaliGemma's `<locNNNN>` tokens are not in its instruction tuning),
so we keep the prompts' x-first order and the 0-1000 grid Gemini-family models and Qwen2-VL
use; in Gemma's tokenizer every digit is one token, so a number costs at most four.
"""

from __future__ import annotations

import dataclasses

from rmpl_jax.models.qwen2_vl.boxes import Qwen2VLBoxes


@dataclasses.dataclass(frozen=True)
class Gemma3Boxes(Qwen2VLBoxes):
    """Integers in 0..scale relative to the photo (the arithmetic of Qwen2-VL's codec)."""

    name: str = "gemma3"
