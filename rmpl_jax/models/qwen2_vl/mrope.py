"""M-RoPE position ids of Qwen2-VL / Qwen2.5-VL for text and images.

The rule (HF `get_rope_index`, images only): text tokens advance one position and use the
same position on all three axes; an image of merged grid (t, h, w) placed at position p gives
its tokens (p + ti, p + hi, p + wi), row-major over (t, h, w), and the next token continues
at p + max(h, w). Padding (attention_mask == 0) is skipped and gets position 0.

Written once against a numpy-like module `xp`, so the same code runs on the host (numpy,
data pipeline) and inside jit (jax.numpy) with static shapes: no loop over tokens or images.
Video tokens (and Qwen2.5-VL's seconds-per-grid temporal spacing, which applies to video only)
are not supported.
"""

from __future__ import annotations

import numpy as np

from rmpl_jax.models.segments import image_feature_index, restart_at_segments


def merged_grid(image_grid_thw, spatial_merge_size: int) -> np.ndarray:
    """Static [n_images, 3] grid of LLM tokens per image: (t, h // m, w // m)."""
    grid = np.asarray(image_grid_thw if image_grid_thw is not None else np.zeros((0, 3)), np.int64)
    grid = grid.reshape(-1, 3)
    if np.any(grid[:, 1:] % spatial_merge_size):
        raise ValueError(f"image_grid_thw {grid.tolist()} not divisible by spatial_merge_size {spatial_merge_size}")
    return np.stack([grid[:, 0], grid[:, 1] // spatial_merge_size, grid[:, 2] // spatial_merge_size], axis=1)


def check_image_tokens(
    input_ids, attention_mask, image_grid_thw, *, image_token_id: int, spatial_merge_size: int
) -> None:
    """Host-side check that each image's placeholder tokens exist, in one row, contiguous.

    Raises ValueError naming the image and the counts; cheap enough to call per batch.
    """
    ids = np.asarray(input_ids)
    valid = np.ones(ids.shape, bool) if attention_mask is None else np.asarray(attention_mask).astype(bool)
    is_img = (ids == image_token_id) & valid
    grid = merged_grid(image_grid_thw, spatial_merge_size)
    counts = grid.prod(axis=1)
    found = int(is_img.sum())
    if found != int(counts.sum()):
        raise ValueError(
            f"{found} image tokens (id {image_token_id}) in input_ids but image_grid_thw "
            f"{grid.tolist()} (merged) needs {int(counts.sum())}"
        )
    rows, cols = np.nonzero(is_img)  # row-major = the order images are consumed
    start = 0
    for i, n in enumerate(counts):
        r, c = rows[start : start + n], cols[start : start + n]
        if n and (np.any(r != r[0]) or np.any(np.diff(c) != 1)):
            raise ValueError(f"image {i}: its {n} placeholder tokens are not one contiguous run in one row")
        start += n


def mrope_position_ids(
    input_ids,
    attention_mask,
    image_grid_thw,
    *,
    image_token_id: int,
    spatial_merge_size: int,
    xp=np,
    segment_ids=None,
):
    """Position ids [3, B, T] and rope deltas [B, 1] (max position + 1 - valid length).

    input_ids [B, T]; attention_mask [B, T] or None; image_grid_thw a static [n, 3] array of
    pre-merge patch grids (images in order of appearance, row-major over the batch).
    Assumes `check_image_tokens` holds (call it on the host; inside jit it cannot raise).
    `segment_ids` [B, T] (jax.numpy only): a packed batch, positions restart at every
    example and photos sit in per-row slots (`models/segments.py`); the deltas are then
    meaningless (packed batches only train).
    """
    packed = segment_ids is not None
    if packed and xp is np:
        raise ValueError("packed M-RoPE positions are computed in jit (xp=jax.numpy)")
    ids = xp.asarray(input_ids)
    B, T = ids.shape
    valid = xp.ones((B, T), bool) if attention_mask is None else xp.asarray(attention_mask).astype(bool)
    grid = merged_grid(image_grid_thw, spatial_merge_size)
    zero = xp.zeros((B, T), dtype=xp.int32)
    if len(grid) == 0:
        is_img = xp.zeros((B, T), bool)
        t_i = h_i = w_i = advance_img = zero
    else:
        is_img = (ids == image_token_id) & valid
        _lt, lh, lw = (xp.asarray(grid[:, i].astype(np.int32)) for i in range(3))
        counts_np = grid.prod(axis=1).astype(np.int32)
        ends = xp.asarray(np.cumsum(counts_np).astype(np.int32))
        counts = xp.asarray(counts_np)
        # k: global index of each image token; which image it belongs to; offset inside it.
        if packed:
            k = image_feature_index(is_img, int(counts_np.sum()), packed=True)
        else:
            k = (xp.cumsum(is_img.reshape(-1).astype(xp.int32)) - 1).reshape(B, T)
        img = xp.clip(xp.searchsorted(ends, k, side="right"), 0, len(grid) - 1)
        within = k - (ends[img] - counts[img])
        hw = lh[img] * lw[img]
        t_i = xp.where(is_img, within // hw, 0)
        h_i = xp.where(is_img, (within % hw) // lw[img], 0)
        w_i = xp.where(is_img, within % lw[img], 0)
        last = is_img & (within == counts[img] - 1)
        advance_img = xp.where(last, xp.maximum(lh[img], lw[img]), 0)
    text = valid & ~is_img
    advance = text.astype(xp.int32) + advance_img.astype(xp.int32)
    start = xp.cumsum(advance, axis=1) - advance  # exclusive cumsum: position of each token
    if packed:
        start = restart_at_segments(start, segment_ids)
    pos = xp.stack([start + t_i, start + h_i, start + w_i])
    pos = xp.where(valid[None], pos, 0).astype(xp.int32)
    length = valid.sum(axis=1).astype(xp.int32)
    top = xp.where(valid[None], pos, -1).max(axis=(0, 2))
    deltas = xp.where(length > 0, top + 1 - length, 0)[:, None]
    return pos, deltas


def text_position_ids(attention_mask, batch: int, length: int, xp=np):
    """[3, B, T] positions for text-only input: count of valid tokens before each, 0 on padding."""
    if attention_mask is None:
        pos = xp.broadcast_to(xp.arange(length, dtype=xp.int32)[None], (batch, length))
    else:
        valid = xp.asarray(attention_mask).astype(xp.int32)
        pos = (xp.cumsum(valid, axis=1) - 1) * valid
    return xp.broadcast_to(pos[None], (3, batch, length)).astype(xp.int32)
