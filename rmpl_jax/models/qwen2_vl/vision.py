"""Qwen2-VL / Qwen2.5-VL vision tower in Flax NNX.

One module serves both families; `VisionConfig.variant` picks the differences:

  qwen2_vl    LayerNorm, QuickGELU MLP (fc1/fc2), full attention in every block.
  qwen2_5_vl  RMSNorm, SwiGLU MLP (gate/up fused, down), window attention except in
              `fullatt_block_indexes`; tokens are permuted into window order before the
              blocks and the merged outputs are permuted back afterwards.

Attention never crosses an image (or video frame) or, in window blocks, a window: HF
runs one attention call per `cu_seqlens` segment. We either gather the segments into a
padded batch (`attention='packed'`, default: memory per segment, not per call) or run one
call over all patches with a segment mask (`attention='mask'`). Every index (rotary
positions, window permutation, segments, packing) is computed in numpy from the static
`grid_thw` (`qwen2_vl_vision_index`), so under `jit` the tower sees fixed shapes and no
data-dependent ops. Blocks are one module stacked on a leading 'layers' axis
(`common.Linear(stack=depth)`) and run with `jax.lax.scan`; the per-layer choice between
full and window attention is a scanned boolean (`lax.cond` between the two packed layouts,
or a select between the two segment-id vectors for the mask).

Projections are `common.Linear`, so LoRA can target the tower by regex over projection
paths, e.g. `apply_lora(model, r, alpha, r"^visual/blocks/attn/(qkv|proj)$")`; the fused
Qwen2.5-VL gate/up offers `visual/blocks/mlp/gate_proj` and `.../up_proj` separately.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rmpl_jax.models.layers import LayerNorm, Linear, RMSNorm, constrain_batch
from rmpl_jax.models.qwen2_vl.vision_config import ACTIVATIONS, VisionConfig
from rmpl_jax.models.qwen2_vl.vision_index import (
    Packing,
    VisionPlan,
    rotary_cos_sin,
    vision_plan,
)

# ------------------------------------------------------------------------------ layers


def _norm(config: VisionConfig, *, stack: int | None, dtype, param_dtype) -> nnx.Module:
    """The variant's norm: LayerNorm (Qwen2-VL) or RMSNorm (Qwen2.5-VL)."""
    if config.norm_kind == "layer":
        return LayerNorm(config.width, eps=config.norm_eps, stack=stack, param_dtype=param_dtype)
    return RMSNorm(config.width, eps=config.norm_eps, stack=stack, param_dtype=param_dtype, dtype=dtype)


def _rotate_half(x):
    x1, x2 = jnp.split(x, 2, axis=-1)
    return jnp.concatenate([-x2, x1], axis=-1)


def masked_attention(q, k, v, segments, implementation=None):
    """Attention of [n, heads, head_dim] inputs within equal `segments` ids, as one [n, n]
    masked call (memory grows with the square of all patches of the call)."""
    mask = (segments[:, None] == segments[None, :])[None, None]
    return jax.nn.dot_product_attention(q[None], k[None], v[None], mask=mask, implementation=implementation)[0]


def packed_attention(q, k, v, pack: Packing, implementation=None):
    """The same result as masked_attention, with the segments gathered into a padded batch
    [S, L] first (memory grows with S * L^2, e.g. per image or per window). Padding is
    expressed as key lengths, which both the XLA and the cuDNN backends take."""
    s, width = pack.gather.shape
    flat = pack.gather.reshape(-1)
    # Segments (images, windows) split over the data devices like the examples they come from.
    qp, kp, vp = (constrain_batch(t[flat].reshape(s, width, *t.shape[1:])) for t in (q, k, v))
    lengths = jnp.asarray(pack.valid.sum(1), jnp.int32)
    out = jax.nn.dot_product_attention(qp, kp, vp, key_value_seq_lengths=lengths, implementation=implementation)
    return out.reshape(s * width, *out.shape[2:])[pack.scatter]


def _apply_rotary(x, cos, sin):
    """x [n, heads, head_dim]; rotation in float32, result back in x's dtype."""
    xf = x.astype(jnp.float32)
    cos, sin = cos[:, None, :], sin[:, None, :]
    return (xf * cos + _rotate_half(xf) * sin).astype(x.dtype)


class _Attention(nnx.Module):
    def __init__(self, config: VisionConfig, *, stack: int | None, dtype, param_dtype, rngs):
        w = config.width
        kw = dict(use_bias=True, stack=stack, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.num_heads, self.head_dim = config.num_heads, config.head_dim
        # Fused q|k|v as in the checkpoint (one HF tensor, so one LoRA segment);
        # 'vision_heads' names the heads*head_dim axis.
        self.qkv = Linear(w, 3 * w, axes=("vision_embed", "vision_heads"), **kw)
        self.proj = Linear(w, w, axes=("vision_heads", "vision_embed"), **kw)

    def __call__(self, x, cos, sin, attend):
        """attend(q, k, v) -> out, all [n, heads, head_dim]: the segment structure."""
        n = x.shape[0]
        qkv = self.qkv(x).reshape(n, 3, self.num_heads, self.head_dim)
        q = _apply_rotary(qkv[:, 0], cos, sin)
        k = _apply_rotary(qkv[:, 1], cos, sin)
        out = attend(q, k, qkv[:, 2])
        return self.proj(out.reshape(n, self.num_heads * self.head_dim))


class _Mlp(nnx.Module):
    """QuickGELU-style fc1/fc2 MLP (Qwen2-VL) or SwiGLU gate_up/down MLP (Qwen2.5-VL)."""

    def __init__(self, config: VisionConfig, *, stack: int | None, dtype, param_dtype, rngs):
        w, f = config.width, config.mlp_dim
        kw = dict(use_bias=True, stack=stack, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.act = ACTIVATIONS[config.hidden_act]
        self.gated = config.variant == "qwen2_5_vl"
        if self.gated:
            # HF's gate_proj and up_proj fused; segments keep their LoRA adapters separate.
            self.gate_up = Linear(
                w, 2 * f, axes=("vision_embed", "vision_mlp"), segments=(("gate_proj", f), ("up_proj", f)), **kw
            )
            self.down = Linear(f, w, axes=("vision_mlp", "vision_embed"), **kw)
        else:
            self.fc1 = Linear(w, f, axes=("vision_embed", "vision_mlp"), **kw)
            self.fc2 = Linear(f, w, axes=("vision_mlp", "vision_embed"), **kw)

    def __call__(self, x):
        if self.gated:
            gate, up = jnp.split(self.gate_up(x), 2, axis=-1)
            return self.down(self.act(gate) * up)
        return self.fc2(self.act(self.fc1(x)))


class _Block(nnx.Module):
    """Pre-norm block; built with `stack=depth`, every parameter has a leading 'layers' axis
    and the tower scans over it."""

    def __init__(self, config: VisionConfig, *, stack: int | None, dtype, param_dtype, rngs):
        kw = dict(stack=stack, dtype=dtype, param_dtype=param_dtype)
        self.norm1 = _norm(config, **kw)
        self.attn = _Attention(config, rngs=rngs, **kw)
        self.norm2 = _norm(config, **kw)
        self.mlp = _Mlp(config, rngs=rngs, **kw)

    def __call__(self, x, cos, sin, attend):
        x = x + self.attn(self.norm1(x), cos, sin, attend)
        return x + self.mlp(self.norm2(x))


class _Merger(nnx.Module):
    """Norm, then concatenate each merge x merge block of patches and apply a 2-layer GELU MLP."""

    def __init__(self, config: VisionConfig, *, dtype, param_dtype, rngs):
        kw = dict(use_bias=True, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        d = config.width * config.merge_unit
        self.d = d
        self.norm = _norm(config, stack=None, dtype=dtype, param_dtype=param_dtype)
        self.fc1 = Linear(d, d, axes=(None, "vision_mlp"), **kw)
        self.fc2 = Linear(d, config.out_dim, axes=("vision_mlp", "embed"), **kw)

    def __call__(self, x):
        x = self.norm(x).reshape(-1, self.d)
        return self.fc2(jax.nn.gelu(self.fc1(x), approximate=False))


class VisionTower(nnx.Module):
    """Patch embedding, stacked transformer blocks (scanned) and patch merger.

    __call__(pixel_values [n_patches, C*T*P*P], grid_thw numpy int [n_images, 3]) returns
    [n_merged_tokens, out_dim]: one row per merge x merge block, images in order, rows of
    each image in raster order of merged blocks (what the LM's image-pad tokens receive).

    attention: 'packed' (default) gathers each image/frame (full blocks) or window
    (windowed blocks) into a padded batch, so memory grows with the largest segment, not
    with all patches of the call; 'mask' runs one [n, n] segment-masked attention (simple,
    but quadratic in the patches of all images together). Both give the same numbers.
    implementation: passed to jax.nn.dot_product_attention (None = XLA, 'cudnn' on GPU).
    """

    def __init__(
        self,
        config: VisionConfig | Mapping[str, Any],
        *,
        model_type: str | None = None,
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        attention: str = "packed",
        implementation: str | None = None,
        rngs: nnx.Rngs,
    ):
        if not isinstance(config, VisionConfig):  # an HF vision_config dict
            config = VisionConfig.from_hf(config, model_type)
        if attention not in ("packed", "mask"):
            raise ValueError(f"attention must be 'packed' or 'mask', got {attention!r}")
        dtype, param_dtype = jnp.dtype(dtype), jnp.dtype(param_dtype)
        self.config = config
        self.dtype = dtype
        self.attention = attention
        self.implementation = implementation
        self.patch_embed = Linear(
            config.patch_dim,
            config.width,
            axes=("patch", "vision_embed"),
            dtype=dtype,
            param_dtype=param_dtype,
            rngs=rngs,
        )
        # One module whose parameters carry a leading 'layers' axis (scanned in __call__).
        self.blocks = _Block(config, stack=config.depth, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.merger = _Merger(config, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, pixel_values: jax.Array, grid_thw: np.ndarray) -> jax.Array:
        cfg = self.config
        plan = vision_plan(cfg, grid_thw)
        if pixel_values.ndim != 2 or pixel_values.shape != (plan.n_patches, cfg.patch_dim):
            raise ValueError(
                f"pixel_values has shape {tuple(pixel_values.shape)}; grid_thw {np.asarray(grid_thw).tolist()} "
                f"needs ({plan.n_patches}, {cfg.patch_dim}) = (sum t*h*w, C*T*P*P)"
            )
        x = self.patch_embed(pixel_values)
        if plan.token_order is not None:
            x = x[plan.token_order]
        cos, sin = rotary_cos_sin(plan.positions, cfg.head_dim, cfg.rope_theta)
        attend_for = self._attention_selector(plan)
        flags = jnp.asarray(cfg.full_attention_layers())

        graphdef, params = nnx.split(self.blocks)

        def body(h, xs):
            layer_params, is_full = xs
            block = nnx.merge(graphdef, layer_params)
            return constrain_batch(block(constrain_batch(h), cos, sin, attend_for(is_full))), None

        x, _ = jax.lax.scan(body, x, (params, flags))
        merged = self.merger(x)
        if plan.merged_restore is not None:
            merged = merged[plan.merged_restore]
        return merged

    def _attention_selector(self, plan: VisionPlan):
        """is_full (scanned bool) -> attend(q, k, v) for that layer."""
        impl = self.implementation
        if self.attention == "mask":
            full_seg = jnp.asarray(plan.full_segments)
            if plan.window_segments is None:
                return lambda is_full: functools.partial(masked_attention, segments=full_seg, implementation=impl)
            win_seg = jnp.asarray(plan.window_segments)
            return lambda is_full: functools.partial(
                masked_attention, segments=jnp.where(is_full, full_seg, win_seg), implementation=impl
            )
        full = functools.partial(packed_attention, pack=plan.full_packing, implementation=impl)
        if plan.window_packing is None:
            return lambda is_full: full
        window = functools.partial(packed_attention, pack=plan.window_packing, implementation=impl)
        # Both layouts are compiled once; cond runs only the one this layer needs.
        return lambda is_full: lambda q, k, v: jax.lax.cond(is_full, full, window, q, k, v)
