"""Synthetic Gemma 3 inputs of given shapes for benchmarks and ahead-of-time compiles (zero or
random pixels; no processor, no photo): a photo's token run and the image inputs of n photos,
with the signatures of `qwen2_vl/synthetic.py`.

The processor squashes every photo to the tower's square (`vision.image_size`, 896 px for the
released sizes), so `image_side` changes nothing here: a photo is always `tokens_per_image`
image tokens.
"""

from __future__ import annotations

import numpy as np


def photo_side(cfg, image_side: int) -> int:
    """The side a photo really has in the model: the tower's, whatever `image_side` asks."""
    return cfg.vision.image_size


def photo_token_run(cfg, image_side: int) -> np.ndarray:
    """The token ids a photo occupies in a prompt: begin-of-image, its image tokens,
    end-of-image (the processor's "\\n\\n" on either side is ordinary text, left out)."""
    n = cfg.tokens_per_image
    return np.asarray([cfg.boi_token_id] + [cfg.image_token_id] * n + [cfg.eoi_token_id], np.int32)


def photo_inputs(cfg, n_photos: int, image_side: int, rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
    """The image inputs of `n_photos` photos as the processor lays them out: `pixel_values`
    [n, C, S, S] at the tower's square S (standard normal from `rng`, else zeros)."""
    v = cfg.vision
    shape = (n_photos, v.num_channels, v.image_size, v.image_size)
    pixels = np.zeros(shape, np.float32) if rng is None else rng.standard_normal(shape, dtype=np.float32)
    return {"pixel_values": pixels}
