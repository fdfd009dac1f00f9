"""Synthetic Qwen2-VL inputs of given shapes for benchmarks and ahead-of-time compiles (random
or zero pixels; no processor, no photo): a photo's token run and the image inputs of n photos."""

from __future__ import annotations

import numpy as np

PATCH, TEMPORAL = 14, 2  # the released checkpoints' patch and temporal patch sizes


def photo_grid(cfg, image_side: int) -> tuple[int, int, int]:
    """(t, h, w) patches of one image_side^2 photo; ValueError unless the side is a multiple
    of patch x spatial merge."""
    step = PATCH * cfg.spatial_merge_size
    if image_side % step:
        raise ValueError(f"image side {image_side} must be a multiple of {step}")
    g = image_side // PATCH
    return 1, g, g


def photo_token_run(cfg, image_side: int) -> np.ndarray:
    """The token ids a photo occupies in a prompt: vision start, its image tokens, vision end."""
    _, h, w = photo_grid(cfg, image_side)
    n = h * w // cfg.spatial_merge_size**2
    return np.asarray([cfg.vision_start_token_id] + [cfg.image_token_id] * n + [cfg.vision_end_token_id], np.int32)


def photo_inputs(cfg, n_photos: int, image_side: int, rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
    """The image inputs of `n_photos` image_side^2 photos as the processor lays them out:
    `pixel_values` [n * patches, 3 * 2 * 14 * 14] (standard normal from `rng`, else zeros) and
    the static `image_grid_thw` [n, 3]."""
    t, h, w = photo_grid(cfg, image_side)
    shape = (n_photos * t * h * w, 3 * TEMPORAL * PATCH * PATCH)
    pixels = np.zeros(shape, np.float32) if rng is None else rng.standard_normal(shape, dtype=np.float32)
    return {"pixel_values": pixels, "image_grid_thw": np.asarray([[t, h, w]] * n_photos, np.int64)}
