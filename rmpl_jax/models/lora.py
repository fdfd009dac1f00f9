"""Functional LoRA: y = x W + (alpha / r) (x A) B on chosen `common.Linear` layers.

A is random (PEFT's kaiming-uniform bound 1/sqrt(in)), B is zero, so a freshly adapted model
equals the base model. Adapters are `nnx.LoRAParam`s: `nnx.split(model, nnx.LoRAParam, ...)` gives
the trainable part. Targets are chosen by a regex over *projection paths*: a Linear's path
in the model, except that a fused Linear offers one path per HF projection it holds
(`layers/self_attn/qkv_proj` -> `layers/self_attn/q_proj`, `.../k_proj`, `.../v_proj`), each
with its own A and B — exactly PEFT's separate q/k/v adapters. Which projections a family
adapts by default is its `ModelFamily.default_lora_targets`.
"""

from __future__ import annotations

import re

import jax.numpy as jnp
from flax import nnx

from rmpl_jax.models.layers import Linear, modules_by_path


def projection_paths(model: nnx.Module) -> dict[str, tuple[str, str | None]]:
    """Every adaptable projection path -> (Linear path, segment name or None)."""
    out = {}
    for path, linear in modules_by_path(model, Linear).items():
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        for seg, _ in linear.segments:
            name = path if seg is None else (f"{parent}/{seg}" if parent else seg)
            out[name] = (path, seg)
    return out


def apply_lora(
    model: nnx.Module,
    rank: int,
    alpha: float,
    targets_regex: str,
    rngs: nnx.Rngs | None = None,
    param_dtype=jnp.float32,
) -> list[str]:
    """Attaches adapters (in place) to every projection whose path matches `targets_regex`
    (`re.search`); returns the adapted projection paths. Raises if nothing matches or a
    projection already has an adapter."""
    if not targets_regex:
        raise ValueError("empty LoRA target regex (use the model family's default_lora_targets)")
    rngs = rngs if rngs is not None else nnx.Rngs(0)
    pattern = re.compile(targets_regex)
    linears = modules_by_path(model, Linear)
    chosen = sorted(p for p in projection_paths(model) if pattern.search(p))
    if not chosen:
        raise ValueError(
            f"LoRA target regex {targets_regex!r} matches no projection; "
            f"some paths: {sorted(projection_paths(model))[:8]}"
        )
    for name in chosen:
        path, seg = projection_paths(model)[name]
        if seg in linears[path].lora_segments:
            raise ValueError(f"{name} already has a LoRA adapter")
        linears[path].add_lora(seg, rank, alpha, rngs, param_dtype)
    return chosen


def merge_lora(model: nnx.Module) -> nnx.Module:
    """Folds every adapter into its base kernel (in float32, cast back) and removes the
    adapters; returns the same model. Export does this on the fly without changing the model."""
    for linear in modules_by_path(model, Linear).values():
        linear.merge_lora()
    return model


def has_lora(model: nnx.Module) -> bool:
    return any(linear.lora_segments for linear in modules_by_path(model, Linear).values())


def lora_state(model: nnx.Module) -> nnx.State:
    """The adapter weights only (what stage training updates and checkpoints)."""
    return nnx.state(model, nnx.LoRAParam)
