"""The pre-LayerNorm ViT encoder block shared by vision towers (e.g. CLIP, SigLIP) in Flax NNX.

One block: x + attn(ln1(x)); x + fc2(act(fc1(ln2(x)))), with biases everywhere and q/k/v fused
into one matmul whose LoRA segments stand for HF's separate q_proj/k_proj/v_proj. Built with
`stack=depth`, every parameter has a leading 'layers' axis and `scan_blocks` runs the stack
with `jax.lax.scan`. Towers differ only by their embeddings, activation and LayerNorm eps,
which the config gives.

Parameter paths (under the block's attribute, e.g. `layers/`): `layer_norm1/{scale,bias}`,
`self_attn/{qkv_proj,out_proj}/{kernel,bias}`, `layer_norm2/{scale,bias}`,
`mlp/{fc1,fc2}/{kernel,bias}` — HF's module names, so name tables stay plain.
"""

from __future__ import annotations

from typing import Protocol

import jax
from flax import nnx

from rmpl_jax.models.layers import ACTIVATIONS, LayerNorm, Linear, constrain_batch


class ViTDims(Protocol):
    """What a block reads from a tower's config."""

    hidden_size: int
    intermediate_size: int
    num_heads: int
    layer_norm_eps: float
    hidden_act: str
    initializer_range: float

    @property
    def head_dim(self) -> int: ...


class Attention(nnx.Module):
    """Bidirectional multi-head attention; q|k|v fused (segments keep LoRA per projection)."""

    def __init__(self, cfg: ViTDims, *, stack: int | None, dtype, param_dtype, implementation, rngs):
        d = cfg.hidden_size
        kw = dict(use_bias=True, stack=stack, dtype=dtype, param_dtype=param_dtype, init_std=cfg.initializer_range)
        self.num_heads, self.head_dim = cfg.num_heads, cfg.head_dim
        self.impl = implementation
        self.qkv_proj = Linear(
            d,
            3 * d,
            axes=("vision_embed", "vision_heads"),
            segments=(("q_proj", d), ("k_proj", d), ("v_proj", d)),
            rngs=rngs,
            **kw,
        )
        self.out_proj = Linear(d, d, axes=("vision_heads", "vision_embed"), rngs=rngs, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        n, t, _ = x.shape
        qkv = self.qkv_proj(x).reshape(n, t, 3, self.num_heads, self.head_dim)
        out = jax.nn.dot_product_attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], implementation=self.impl)
        return self.out_proj(out.reshape(n, t, -1))


class Mlp(nnx.Module):
    """fc2(act(fc1(x))) with the config's `hidden_act`."""

    def __init__(self, cfg: ViTDims, *, rngs, **kw):
        d, f = cfg.hidden_size, cfg.intermediate_size
        self.fc1 = Linear(d, f, axes=("vision_embed", "vision_mlp"), rngs=rngs, **kw)
        self.fc2 = Linear(f, d, axes=("vision_mlp", "vision_embed"), rngs=rngs, **kw)
        self.act = ACTIVATIONS[cfg.hidden_act]

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fc2(self.act(self.fc1(x)))


class EncoderBlock(nnx.Module):
    """x + attn(ln1(x)); x + mlp(ln2(x)); built stacked (`stack=depth`)."""

    def __init__(self, cfg: ViTDims, *, stack: int | None, dtype, param_dtype, implementation, rngs):
        d = cfg.hidden_size
        norm = dict(eps=cfg.layer_norm_eps, stack=stack, param_dtype=param_dtype)
        kw = dict(use_bias=True, stack=stack, dtype=dtype, param_dtype=param_dtype, init_std=cfg.initializer_range)
        self.layer_norm1 = LayerNorm(d, **norm)
        self.self_attn = Attention(
            cfg, stack=stack, dtype=dtype, param_dtype=param_dtype, implementation=implementation, rngs=rngs
        )
        self.layer_norm2 = LayerNorm(d, **norm)
        self.mlp = Mlp(cfg, **kw, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


def scan_blocks(blocks: EncoderBlock, x: jax.Array) -> jax.Array:
    """Runs every layer of a stacked block over x [N, T, D] with `jax.lax.scan` (one
    compiled layer whatever the depth); returns the last layer's output."""
    graphdef, state = nnx.split(blocks)

    def body(h, layer_state):
        # Photos stay split over the batch's mesh axes: left free, the partitioner may follow
        # the fsdp-sharded weights and run every photo on every chip (1 GiB of scores per
        # photo at 4,096 patches).
        return constrain_batch(nnx.merge(graphdef, layer_state)(constrain_batch(h))), None

    out, _ = jax.lax.scan(body, x, state)
    return out


def patchify(pixel_values: jax.Array, patch_size: int) -> jax.Array:
    """[N, C, H, W] -> [N, (H/p)*(W/p), C*p*p]: patches in raster order, each flattened
    (C, y, x) as a conv kernel of stride p is, so a matmul with the flattened kernel is the
    conv."""
    n, c, h, w = pixel_values.shape
    p = patch_size
    x = pixel_values.reshape(n, c, h // p, p, w // p, p).transpose(0, 2, 4, 1, 3, 5)
    return x.reshape(n, (h // p) * (w // p), c * p * p)
