"""Packed rows inside the model: several examples share one row of a training batch.

A packed batch marks each token with its example's `segment_ids` [B, T] (1, 2, ... within a
row; 0 on the row's trailing padding). Three things then change, and only these:

- attention is block-diagonal causal: a token sees the earlier tokens of its own example;
- positions restart at every example (`restart_at_segments` on any cumulative count);
- photos sit in per-row slots: a packed row owns `n_features // B` consecutive image features
  (its photos first, then zero photos that fill the row's unused slots), so the j-th image
  token of row r takes feature r * (n_features // B) + j.

With these, every example's hidden states equal those of the same example alone in a row
(tests/train/test_packing_equality.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def segment_first(segment_ids: jax.Array) -> jax.Array:
    """[B, T] bool: the token opens a run of its segment id (padding runs included)."""
    return jnp.concatenate(
        [jnp.ones_like(segment_ids[..., :1], bool), segment_ids[..., 1:] != segment_ids[..., :-1]], axis=-1
    )


def segment_starts(segment_ids: jax.Array) -> jax.Array:
    """[B, T] index of the first token of each token's segment (padding: its own run's start)."""
    t = segment_ids.shape[-1]
    index = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), segment_ids.shape)
    return jax.lax.cummax(jnp.where(segment_first(segment_ids), index, 0), axis=segment_ids.ndim - 1)


def restart_at_segments(values: jax.Array, segment_ids: jax.Array) -> jax.Array:
    """`values` [B, T] (an exclusive running count along the row, e.g. positions) minus its
    value at the first token of each token's segment: the count restarted per example."""
    return values - jnp.take_along_axis(values, segment_starts(segment_ids), axis=-1)


def segment_positions(segment_ids: jax.Array) -> jax.Array:
    """[B, T] int32 positions 0, 1, ... within each example; 0 on padding."""
    t = segment_ids.shape[-1]
    index = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), segment_ids.shape)
    return jnp.where(segment_ids > 0, restart_at_segments(index, segment_ids), 0)


def segment_causal_mask(segment_ids: jax.Array) -> jax.Array:
    """Boolean [B, 1, T, T] mask: causal within each example, nothing across examples.
    Padding tokens (segment 0) see earlier padding only, so no row of scores is empty."""
    t = segment_ids.shape[-1]
    same = segment_ids[:, :, None] == segment_ids[:, None, :]
    causal = jnp.tril(jnp.ones((t, t), bool))
    return (same & causal[None])[:, None]


def bidirectional_blocks(block_ids: jax.Array) -> jax.Array:
    """Boolean [B, 1, T, T]: query and key lie in the same run (`block_ids` equal and >= 0;
    -1 elsewhere), e.g. one photo's image tokens, which attend to each other both ways."""
    same = block_ids[:, :, None] == block_ids[:, None, :]
    return (same & (block_ids >= 0)[:, :, None])[:, None]


def run_ids(is_run: jax.Array) -> jax.Array:
    """[B, T] int32: the index of each maximal run of True along a row (0, 1, ...), -1 where False."""
    start = is_run & ~jnp.pad(is_run, ((0, 0), (1, 0)))[:, :-1]
    return jnp.where(is_run, jnp.cumsum(start.astype(jnp.int32), axis=1) - 1, -1)


def image_feature_index(is_image: jax.Array, n_features: int, packed: bool) -> jax.Array:
    """[B, T] index of the image feature each image token takes (clipped into range, so
    non-image tokens get a valid index they ignore). Unpacked: the features are the batch's
    photos in row-major order (HF's masked_scatter). Packed: per-row slots (module docstring)."""
    b = is_image.shape[0]
    if not packed:
        k = jnp.cumsum(is_image.reshape(-1).astype(jnp.int32)).reshape(is_image.shape) - 1
    else:
        if n_features % b:
            raise ValueError(f"a packed batch of {b} rows has {n_features} image features, not a whole number per row")
        per_row = n_features // b
        within = jnp.cumsum(is_image.astype(jnp.int32), axis=1) - 1
        k = jnp.arange(b, dtype=jnp.int32)[:, None] * per_row + within
    return jnp.clip(k, 0, max(n_features - 1, 0))


def scatter_image_features(
    x: jax.Array, input_ids, attention_mask, features: jax.Array, image_token_id: int, packed: bool
) -> jax.Array:
    """Token embeddings `x` [B, T, D] with `features` [n, D] written over the image tokens
    (HF's masked_scatter order, or per-row slots when `packed`); padding is never an image."""
    if features.ndim != 2 or features.shape[1] != x.shape[-1]:
        raise ValueError(f"image_features shape {features.shape}, expected [n, {x.shape[-1]}]")
    is_img = input_ids == image_token_id
    if attention_mask is not None:
        is_img = is_img & attention_mask.astype(bool)
    k = image_feature_index(is_img, features.shape[0], packed)
    return jnp.where(is_img[..., None], jnp.take(features.astype(x.dtype), k, axis=0), x)


def check_image_token_count(input_ids, attention_mask, image_token_id: int, n_features: int, per_image: int) -> None:
    """Host-side check before an unpacked scatter: the prompts' image tokens (padding aside)
    are as many as the photos' features, else an error saying how many of each."""
    ids = np.asarray(input_ids)
    real = np.ones(ids.shape, bool) if attention_mask is None else np.asarray(attention_mask).astype(bool)
    n_tokens = int(((ids == image_token_id) & real).sum())
    if n_tokens != n_features:
        raise ValueError(
            f"the prompts hold {n_tokens} image tokens (id {image_token_id}) but the photos give "
            f"{n_features} features ({n_features // per_image} photos x {per_image}); expand each photo "
            "with the processor"
        )


def embed_photos(
    x: jax.Array,
    input_ids,
    attention_mask,
    pixel_values,
    image_features,
    packed: bool,
    *,
    encode,
    image_token_id: int,
    tokens_per_image: int,
) -> jax.Array:
    """Token embeddings `x` with the photos' features over their image tokens: `encode`
    (the model's tower + projector) turns `pixel_values` into features, or `image_features`
    come ready; neither leaves `x` as it is. Outside jit an unpacked batch's image tokens are
    counted against the features first (`check_image_token_count`)."""
    if pixel_values is not None:
        if image_features is not None:
            raise ValueError("give pixel_values or image_features, not both")
        image_features = encode(pixel_values)
        if not isinstance(input_ids, jax.core.Tracer) and not packed:
            check_image_token_count(
                input_ids, attention_mask, image_token_id, image_features.shape[0], tokens_per_image
            )
    if image_features is None:
        return x
    return scatter_image_features(x, input_ids, attention_mask, image_features, image_token_id, packed)
