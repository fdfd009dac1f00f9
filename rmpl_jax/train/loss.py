"""Cross-entropy over target tokens, computed chunk by chunk along the sequence.

With a 152k vocabulary, full-sequence logits ([B, T, V] in f32) are several GiB per example
at 7B scale. Here the logits of one sequence chunk exist at a time, and the chunk body is
rematerialised in the backward pass, so peak memory is O(B * chunk * V) instead of
O(B * T * V).

Only answer tokens count, so `gather_targets` first picks the (at most `k`) target positions
of each row: the vocabulary projection then runs over [B, k] positions instead of [B, T]
(prompt and image tokens never reach the LM head).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def chunked_cross_entropy(
    hidden: jax.Array,
    logits_fn: Callable[[jax.Array], jax.Array],
    targets: jax.Array,
    loss_mask: jax.Array,
    chunk_size: int = 512,
) -> tuple[jax.Array, jax.Array]:
    """Summed token cross-entropy and the number of counted tokens.

    Args:
      hidden: [B, T, D] final hidden states; position t predicts `targets[:, t]`.
      logits_fn: maps a [B, c, D] chunk to [B, c, V] logits (e.g. `model.logits_from_hidden`).
      targets: [B, T] integer token ids (any value where the mask is 0).
      loss_mask: [B, T], nonzero where the token counts (the answer tokens only).
      chunk_size: sequence positions per chunk; T is padded up to a multiple of it.

    Returns:
      (loss_sum, token_count), both f32 scalars. Divide by `token_count` (after summing over
      microbatches) for the mean; keeping sums makes accumulation exact.
    """
    if hidden.ndim != 3:
        raise ValueError(f"chunked_cross_entropy: hidden must be [B, T, D], got {hidden.shape}")
    b, t, d = hidden.shape
    if targets.shape != (b, t) or loss_mask.shape != (b, t):
        raise ValueError(
            f"chunked_cross_entropy: targets {targets.shape} and loss_mask {loss_mask.shape} "
            f"must both be {(b, t)} to match hidden {hidden.shape}"
        )
    if chunk_size <= 0:
        raise ValueError(f"chunked_cross_entropy: chunk_size must be positive, got {chunk_size}")
    c = min(chunk_size, t)
    n = -(-t // c)
    pad = n * c - t
    mask = loss_mask.astype(jnp.float32)
    targets = targets.astype(jnp.int32)
    if pad:
        # Padded positions carry mask 0, so they add nothing to the sum or the count.
        hidden = jnp.pad(hidden, ((0, 0), (0, pad), (0, 0)))
        targets = jnp.pad(targets, ((0, 0), (0, pad)))
        mask = jnp.pad(mask, ((0, 0), (0, pad)))
    # Chunk axis first for scan: [n, B, c, ...].
    hs = hidden.reshape(b, n, c, d).swapaxes(0, 1)
    ts = targets.reshape(b, n, c).swapaxes(0, 1)
    ms = mask.reshape(b, n, c).swapaxes(0, 1)

    @jax.checkpoint
    def chunk_loss(h, tgt, m):
        logits = logits_fn(h).astype(jnp.float32)
        if logits.shape[:2] != (b, c):
            raise ValueError(f"chunked_cross_entropy: logits_fn returned {logits.shape} for a chunk {h.shape}")
        lse = jax.nn.logsumexp(logits, axis=-1)
        picked = jnp.take_along_axis(logits, tgt[..., None], axis=-1)[..., 0]
        return jnp.sum((lse - picked) * m)

    def body(total, xs):
        return total + chunk_loss(*xs), None

    loss_sum, _ = jax.lax.scan(body, jnp.zeros((), jnp.float32), (hs, ts, ms))
    return loss_sum, jnp.sum(mask)


def next_token_targets(
    input_ids: jax.Array, loss_mask: jax.Array, segment_ids: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
    """Targets/mask aligned with hidden positions for next-token prediction.

    `loss_mask[b, t]` marks token t of the input as a target (the answer tokens). Position t
    predicts token t+1, so both are shifted left by one and the last position gets mask 0.
    Shifting the labels (not slicing the hidden states) avoids copying [B, T, D]. In a packed
    row (`segment_ids`) no position predicts the next example's first token.
    """
    targets = jnp.roll(input_ids, -1, axis=1)
    mask = jnp.roll(loss_mask, -1, axis=1)
    if segment_ids is not None:
        mask = jnp.where(jnp.roll(segment_ids, -1, axis=1) == segment_ids, mask, 0)
    mask = mask.at[:, -1].set(0)
    return targets, mask


def gather_targets(
    hidden: jax.Array, targets: jax.Array, loss_mask: jax.Array, k: int
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """The first `k` counted positions of each row, gathered before the vocabulary projection.

    Args:
      hidden: [B, T, D]; targets, loss_mask: [B, T] as `next_token_targets` returns them.
      k: static number of positions kept per row (at least the longest answer of the data).

    Returns:
      (hidden [B, k, D], targets [B, k], mask [B, k], dropped) where rows with fewer than `k`
      counted positions are padded with mask 0, and `dropped` (an int32 scalar) counts the
      counted positions beyond `k` (0 when `k` covers every answer; they are left out of the
      loss, so the step reports it).
    """
    t = hidden.shape[1]
    if k <= 0:
        raise ValueError(f"gather_targets: k must be positive, got {k}")
    k = min(int(k), t)
    keep = loss_mask != 0
    # Stable positions of the counted tokens first, in order; padding rows point at position 0.
    index = jax.vmap(lambda row: jnp.nonzero(row, size=k, fill_value=0)[0])(keep)
    valid = jnp.arange(k)[None, :] < jnp.sum(keep, axis=1, keepdims=True)
    picked_hidden = jnp.take_along_axis(hidden, index[..., None], axis=1)
    picked_targets = jnp.take_along_axis(targets, index, axis=1)
    picked_mask = jnp.where(valid, jnp.take_along_axis(loss_mask, index, axis=1), 0)
    dropped = jnp.sum(keep).astype(jnp.int32) - jnp.sum(valid).astype(jnp.int32)
    return picked_hidden, picked_targets, picked_mask, dropped


def target_budget(longest_answer: int, multiple: int = 64) -> int:
    """`max_targets` for answers of at most `longest_answer` tokens: rounded up to a multiple,
    so small changes in the data do not change the compiled step's shapes."""
    if longest_answer < 1:
        raise ValueError(f"target_budget: longest_answer must be >= 1, got {longest_answer}")
    return -(-int(longest_answer) // multiple) * multiple
