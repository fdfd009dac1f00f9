"""The optimizer of every stage: AdamW with warmup and cosine decay, gradients clipped."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optax


def make_optimizer(
    learning_rate: float = 1e-4,
    *,
    warmup_steps: int = 0,
    total_steps: int | None = None,
    end_lr_ratio: float = 0.0,
    weight_decay: float = 0.0,
    grad_clip_norm: float | None = 1.0,
    b1: float = 0.9,
    b2: float = 0.999,
) -> tuple[optax.GradientTransformation, Callable[[Any], Any]]:
    """AdamW with linear warmup then cosine decay (constant when total_steps is None).

    Returns (optimizer, schedule); the schedule is for logging the learning rate.
    """
    if total_steps:
        schedule = optax.warmup_cosine_decay_schedule(
            0.0,
            learning_rate,
            max(warmup_steps, 0),
            max(total_steps, warmup_steps + 1),
            end_value=learning_rate * end_lr_ratio,
        )
    elif warmup_steps:
        schedule = optax.linear_schedule(0.0, learning_rate, warmup_steps)
    else:
        schedule = optax.constant_schedule(learning_rate)
    parts = []
    if grad_clip_norm:
        parts.append(optax.clip_by_global_norm(grad_clip_norm))
    parts.append(optax.adamw(schedule, b1=b1, b2=b2, weight_decay=weight_decay))
    return optax.chain(*parts), schedule
