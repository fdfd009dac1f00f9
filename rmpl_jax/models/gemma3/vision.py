"""Gemma 3's SigLIP vision tower (transformers' `SiglipVisionModel` with `vision_use_head`
false) in Flax NNX, and its HF name table.

Patch embedding (a conv of stride p with bias, here a matmul over flattened C x p x p
patches), learned positions (one per patch, no class token), pre-LN blocks
(`models/vit.py`, GELU-tanh, eps 1e-6) stacked on a 'layers' axis and run with
`jax.lax.scan`, then `post_layernorm`. The output is HF's `last_hidden_state`.

Parameter paths: `patch_embedding/{kernel,bias}`, `position_embedding`,
`layers/{layer_norm1,layer_norm2}/{scale,bias}`, `layers/self_attn/{qkv_proj,out_proj}/{kernel,bias}`,
`layers/mlp/{fc1,fc2}/{kernel,bias}`, `post_layernorm/{scale,bias}`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from rmpl_jax.models.gemma3.vision_config import SiglipVisionConfig
from rmpl_jax.models.hf.names import NameRule
from rmpl_jax.models.layers import LayerNorm, Linear, make_param, normal_init
from rmpl_jax.models.vit import EncoderBlock, patchify, scan_blocks

OURS = "vision_tower"


class SiglipVisionTower(nnx.Module):
    """SigLIP ViT: pixel_values [N, C, S, S] -> last hidden state [N, patches, hidden] in `dtype`."""

    def __init__(
        self, cfg: SiglipVisionConfig, *, dtype=jnp.float32, param_dtype=jnp.float32, implementation=None, rngs
    ):
        d, p, c = cfg.hidden_size, cfg.patch_size, cfg.num_channels
        self.config = cfg
        self.dtype = dtype
        std = cfg.initializer_range
        self.patch_embedding = Linear(
            c * p * p,
            d,
            axes=("patch", "vision_embed"),
            use_bias=True,
            dtype=dtype,
            param_dtype=param_dtype,
            init_std=std,
            rngs=rngs,
        )
        self.position_embedding = make_param(
            normal_init(rngs, (cfg.num_patches, d), param_dtype, std), (None, "vision_embed")
        )
        self.layers = EncoderBlock(
            cfg, stack=cfg.num_layers, dtype=dtype, param_dtype=param_dtype, implementation=implementation, rngs=rngs
        )
        self.post_layernorm = LayerNorm(d, eps=cfg.layer_norm_eps, param_dtype=param_dtype)

    def embeddings(self, pixel_values: jax.Array) -> jax.Array:
        """Patches embedded plus positions: [N, patches, hidden]."""
        cfg = self.config
        _, c, h, w = pixel_values.shape
        if (c, h, w) != (cfg.num_channels, cfg.image_size, cfg.image_size):
            # HF would interpolate the positions only when asked; Gemma 3 never asks.
            raise ValueError(
                f"pixel_values {tuple(pixel_values.shape)}: the SigLIP tower takes [N, {cfg.num_channels}, "
                f"{cfg.image_size}, {cfg.image_size}] (vision_config.image_size)"
            )
        patches = self.patch_embedding(patchify(pixel_values.astype(self.dtype), cfg.patch_size))
        return patches + self.position_embedding[...].astype(patches.dtype)

    def __call__(self, pixel_values: jax.Array) -> jax.Array:
        """pixel_values [N, C, S, S] -> [N, (S/p)^2, hidden], HF's `last_hidden_state`."""
        return self.post_layernorm(scan_blocks(self.layers, self.embeddings(pixel_values)))


def vision_name_rules(cfg: SiglipVisionConfig, prefix: str = "vision_tower.") -> list[NameRule]:
    """HF SigLIP tower names under `prefix` <-> our `vision_tower/...` leaves (q/k/v into one
    fused kernel). transformers 5 saves Gemma 3's tower as `vision_tower.` (the default); the
    Hub's files say `vision_tower.vision_model.`, in memory it is `model.vision_tower.`."""
    p = prefix.replace(".", r"\.")
    L = p + r"encoder\.layers\.(?P<layer>\d+)\."
    d, c, k = cfg.hidden_size, cfg.num_channels, cfg.patch_size
    rules = [
        NameRule(p + r"embeddings\.position_embedding\.weight", f"{OURS}/position_embedding"),
        NameRule(
            p + r"embeddings\.patch_embedding\.weight",
            f"{OURS}/patch_embedding/kernel",
            flatten_to_2d=True,
            transpose=True,
            hf_shape=(d, c, k, k),
        ),
        NameRule(p + r"embeddings\.patch_embedding\.bias", f"{OURS}/patch_embedding/bias"),
        NameRule(p + r"post_layernorm\.weight", f"{OURS}/post_layernorm/scale"),
        NameRule(p + r"post_layernorm\.bias", f"{OURS}/post_layernorm/bias"),
    ]
    for norm in ("layer_norm1", "layer_norm2"):
        rules += [
            NameRule(L + rf"{norm}\.weight", f"{OURS}/layers/{norm}/scale"),
            NameRule(L + rf"{norm}\.bias", f"{OURS}/layers/{norm}/bias"),
        ]
    for i, proj in enumerate(("q_proj", "k_proj", "v_proj")):
        span = (i * d, (i + 1) * d)
        rules += [
            NameRule(
                L + rf"self_attn\.{proj}\.weight",
                f"{OURS}/layers/self_attn/qkv_proj/kernel",
                transpose=True,
                last_axis_slice=span,
            ),
            NameRule(L + rf"self_attn\.{proj}\.bias", f"{OURS}/layers/self_attn/qkv_proj/bias", last_axis_slice=span),
        ]
    for hf, ours in (("self_attn.out_proj", "self_attn/out_proj"), ("mlp.fc1", "mlp/fc1"), ("mlp.fc2", "mlp/fc2")):
        name = hf.replace(".", r"\.")
        rules += [
            NameRule(L + name + r"\.weight", f"{OURS}/layers/{ours}/kernel", transpose=True),
            NameRule(L + name + r"\.bias", f"{OURS}/layers/{ours}/bias"),
        ]
    return rules
