"""Cross-entropy over target tokens, computed chunk by chunk along the sequence.

With a 152k vocabulary, full-sequence logits ([B, T, V] in f32) are several GiB per example
at 7B scale. Here the logits of one sequence chunk exist at a time, and the chunk body is
rematerialised in the backward pass, so peak memory is O(B * chunk * V) instead of
O(B * T * V).
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


def next_token_targets(input_ids: jax.Array, loss_mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Targets/mask aligned with hidden positions for next-token prediction.

    `loss_mask[b, t]` marks token t of the input as a target (the answer tokens). Position t
    predicts token t+1, so both are shifted left by one and the last position gets mask 0.
    Shifting the labels (not slicing the hidden states) avoids copying [B, T, D].
    """
    targets = jnp.roll(input_ids, -1, axis=1)
    mask = jnp.roll(loss_mask, -1, axis=1)
    mask = mask.at[:, -1].set(0)
    return targets, mask
