"""Static indices of the Qwen2-VL / Qwen2.5-VL vision tower, computed from `grid_thw`.

The grid (t, h, w in patches per image or video frame) decides every shape of a tower call,
so all indices — rotary (row, col) positions, the Qwen2.5-VL window permutation, attention
segments and their padded-batch packing — are host-side numpy, and the rotary tables are
built from those constants. Under `jit` the tower then sees fixed shapes and no
data-dependent ops. `vision_plan` bundles the indices of one call.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rmpl_jax.models.qwen2_vl.vision_config import VisionConfig


def check_grid_thw(grid_thw: Any, spatial_merge_size: int) -> np.ndarray:
    """Validate a static grid and return it as int64 [n_images, 3] (t, h, w in patches)."""
    try:
        grid = np.asarray(grid_thw)
    except Exception as e:  # a tracer: the grid decides shapes, so it must stay static
        raise TypeError(
            "grid_thw must be static (numpy array or tuple of tuples), not a traced value; "
            "pass it as a static jit argument"
        ) from e
    if grid.ndim != 2 or grid.shape[1] != 3 or grid.shape[0] == 0:
        raise ValueError(f"grid_thw must have shape [n_images>0, 3], got {grid.shape}")
    if not np.issubdtype(grid.dtype, np.integer):
        raise ValueError(f"grid_thw must be integer, got dtype {grid.dtype}")
    grid = grid.astype(np.int64)
    if (grid <= 0).any():
        raise ValueError(f"grid_thw entries must be positive, got {grid.tolist()}")
    bad = [i for i, (_, h, w) in enumerate(grid) if h % spatial_merge_size or w % spatial_merge_size]
    if bad:
        raise ValueError(
            f"grid_thw rows {bad} ({grid[bad].tolist()}) have h or w not divisible by "
            f"spatial_merge_size={spatial_merge_size}"
        )
    return grid


def vision_position_ids(grid_thw: np.ndarray, spatial_merge_size: int) -> np.ndarray:
    """(row, col) patch coordinates [n_patches, 2] in HF's patch order.

    The image processor emits patches merge-block by merge-block (each block of
    merge x merge neighbours is contiguous), and frames repeat the same coordinates.
    """
    m = spatial_merge_size
    out = []
    for t, h, w in grid_thw:
        rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        block = (h // m, m, w // m, m)
        rows = rows.reshape(block).transpose(0, 2, 1, 3).reshape(-1)
        cols = cols.reshape(block).transpose(0, 2, 1, 3).reshape(-1)
        out.append(np.tile(np.stack([rows, cols], axis=-1), (t, 1)))
    return np.concatenate(out, axis=0).astype(np.int64)


def frame_cu_seqlens(grid_thw: np.ndarray) -> np.ndarray:
    """Cumulative patch counts, one segment per frame (HF's `cu_seqlens`)."""
    lengths = np.repeat(grid_thw[:, 1] * grid_thw[:, 2], grid_thw[:, 0])
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def window_index(
    grid_thw: np.ndarray, spatial_merge_size: int, window_size: int, patch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Qwen2.5-VL window partition, equal to HF's `get_vision_window_index`.

    Returns (index, cu_window_seqlens): `index` [n_merged] lists merged-token ids in
    window order (windows of `window_size // merge // patch` merged tokens per side,
    the last row/column of windows cut short by the image border); `cu_window_seqlens`
    are the window boundaries in patches, with empty windows removed.
    """
    side = window_size // spatial_merge_size // patch_size
    unit = spatial_merge_size**2
    index_parts, cu, offset = [], [0], 0
    for t, h, w in grid_thw:
        gh, gw = h // spatial_merge_size, w // spatial_merge_size
        # HF pads by a full window even when the size divides evenly; those windows are
        # empty and drop out of the index and of the unique boundaries alike.
        pad_h, pad_w = side - gh % side, side - gw % side
        nh, nw = (gh + pad_h) // side, (gw + pad_w) // side
        padded = np.full((t, gh + pad_h, gw + pad_w), -1, np.int64)
        padded[:, :gh, :gw] = np.arange(t * gh * gw).reshape(t, gh, gw)
        windows = padded.reshape(t, nh, side, nw, side).transpose(0, 1, 3, 2, 4).reshape(t, nh * nw, side * side)
        seqlens = (windows >= 0).sum(-1).reshape(-1)
        flat = windows.reshape(-1)
        index_parts.append(flat[flat >= 0] + offset)
        cu.extend((np.cumsum(seqlens) * unit + cu[-1]).tolist())
        offset += t * gh * gw
    cu_arr = np.asarray(cu, np.int64)
    keep = np.concatenate([[True], cu_arr[1:] != cu_arr[:-1]])
    return np.concatenate(index_parts), cu_arr[keep]


def segment_ids(cu_seqlens: np.ndarray, n: int) -> np.ndarray:
    """Segment id of each of `n` positions given cumulative boundaries."""
    if cu_seqlens[0] != 0 or cu_seqlens[-1] != n:
        raise ValueError(f"cu_seqlens must span [0, {n}], got {cu_seqlens[0]}..{cu_seqlens[-1]}")
    return (np.searchsorted(cu_seqlens, np.arange(n), side="right") - 1).astype(np.int32)


@dataclasses.dataclass(frozen=True, eq=False)
class Packing:
    """Contiguous segments laid out as a padded batch [n_segments, max_len].

    gather [S, L]: sequence position held by each slot (padding slots repeat the segment's
    first position); valid [S, L]: real slots; scatter [N]: flat slot of each position.
    """

    gather: np.ndarray
    valid: np.ndarray
    scatter: np.ndarray


def packing(cu_seqlens: np.ndarray) -> Packing:
    """Padded-batch layout of the segments given by cumulative boundaries."""
    starts, lengths = cu_seqlens[:-1], np.diff(cu_seqlens)
    if (lengths <= 0).any():
        raise ValueError(f"empty segment in cu_seqlens {cu_seqlens.tolist()}")
    width = int(lengths.max())
    offsets = np.arange(width)[None, :]
    valid = offsets < lengths[:, None]
    gather = np.where(valid, starts[:, None] + offsets, starts[:, None])
    seg = segment_ids(cu_seqlens, int(cu_seqlens[-1]))
    scatter = seg * width + (np.arange(int(cu_seqlens[-1])) - starts[seg])
    return Packing(gather.astype(np.int32), valid, scatter.astype(np.int32))


@dataclasses.dataclass(frozen=True, eq=False)
class VisionPlan:
    """Everything the tower needs from grid_thw, as numpy arrays.

    token_order: patch permutation applied after the patch embedding (identity when the
        variant has no windows); positions: (row, col) per patch in that order;
    full_segments / window_segments: segment id per (permuted) patch for full and window
        attention, and full_packing / window_packing the same segments as padded batches
        (window ones None without windows); merged_restore: permutation that puts merged
        tokens back in image order (None for identity).
    """

    n_patches: int
    n_merged: int
    token_order: np.ndarray | None
    positions: np.ndarray
    full_segments: np.ndarray
    window_segments: np.ndarray | None
    full_packing: Packing
    window_packing: Packing | None
    merged_restore: np.ndarray | None


def vision_plan(config: VisionConfig, grid_thw: Any) -> VisionPlan:
    """Static indices for one call of the tower."""
    grid = check_grid_thw(grid_thw, config.spatial_merge_size)
    n = int((grid[:, 0] * grid[:, 1] * grid[:, 2]).sum())
    positions = vision_position_ids(grid, config.spatial_merge_size)
    cu_full = frame_cu_seqlens(grid)
    full = segment_ids(cu_full, n)
    if not config.uses_windows:
        return VisionPlan(n, n // config.merge_unit, None, positions, full, None, packing(cu_full), None, None)
    win_index, cu_win = window_index(grid, config.spatial_merge_size, config.window_size, config.patch_size)
    unit = config.merge_unit
    order = (win_index[:, None] * unit + np.arange(unit)[None, :]).reshape(-1)
    return VisionPlan(
        n_patches=n,
        n_merged=n // unit,
        token_order=order,
        positions=positions[order],
        full_segments=full,  # frames stay contiguous under the window permutation
        window_segments=segment_ids(cu_win, n),
        full_packing=packing(cu_full),
        window_packing=packing(cu_win),
        merged_restore=np.argsort(win_index, kind="stable"),
    )


def rotary_cos_sin(positions: np.ndarray, head_dim: int, theta: float) -> tuple[jax.Array, jax.Array]:
    """2-D rotary tables [n, head_dim] (float32): the first quarter of frequencies rotate
    by row, the second by column, and the half is repeated as in HF's rotate_half layout."""
    half = head_dim // 2
    inv_freq = 1.0 / (theta ** (jnp.arange(0, half, 2, dtype=jnp.float32) / half))
    pos = jnp.asarray(positions, jnp.float32)
    freqs = jnp.concatenate([pos[:, :1] * inv_freq, pos[:, 1:2] * inv_freq], axis=-1)
    freqs = jnp.concatenate([freqs, freqs], axis=-1)
    return jnp.cos(freqs), jnp.sin(freqs)
