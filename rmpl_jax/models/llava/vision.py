"""The CLIP vision tower of LLaVA (transformers' `CLIPVisionTransformer`) in Flax NNX.

Patch embedding (a bias-free conv, here a matmul over flattened C x p x p patches), a
class token, learned absolute positions, a pre-LayerNorm, then pre-LN blocks (LayerNorm,
multi-head attention with q/k/v fused into one matmul, LayerNorm, fc1 -> activation -> fc2:
`models/vit.py`'s `EncoderBlock`) stacked on a 'layers' axis and run with `jax.lax.scan`.
Only the blocks up to the deepest feature layer run; the blocks after it and
`post_layernorm` are kept as parameters (the checkpoint has them) but LLaVA never uses them.

Parameter paths: `patch_embedding/kernel`, `class_embedding`, `position_embedding`,
`pre_layrnorm/{scale,bias}` (HF's spelling), `layers/{layer_norm1,layer_norm2}/{scale,bias}`,
`layers/self_attn/{qkv_proj,out_proj}/{kernel,bias}`, `layers/mlp/{fc1,fc2}/{kernel,bias}`,
`post_layernorm/{scale,bias}`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from rmpl_jax.models.layers import LayerNorm, Linear, constrain_batch, make_param, normal_init
from rmpl_jax.models.llava.config import ClipVisionConfig
from rmpl_jax.models.vit import EncoderBlock, patchify


class ClipVisionTower(nnx.Module):
    """CLIP ViT; `features(pixel_values, layers)` gives the hidden states LLaVA projects."""

    def __init__(self, cfg: ClipVisionConfig, *, dtype=jnp.float32, param_dtype=jnp.float32, implementation=None, rngs):
        d, p, c = cfg.hidden_size, cfg.patch_size, cfg.num_channels
        self.config = cfg
        self.dtype = dtype
        std = cfg.initializer_range
        self.patch_embedding = Linear(
            c * p * p, d, axes=("patch", "vision_embed"), dtype=dtype, param_dtype=param_dtype, init_std=std, rngs=rngs
        )
        self.class_embedding = make_param(normal_init(rngs, (d,), param_dtype, std), ("vision_embed",))
        self.position_embedding = make_param(
            normal_init(rngs, (cfg.num_patches + 1, d), param_dtype, std), (None, "vision_embed")
        )
        self.pre_layrnorm = LayerNorm(d, eps=cfg.layer_norm_eps, param_dtype=param_dtype)
        self.layers = EncoderBlock(
            cfg, stack=cfg.num_layers, dtype=dtype, param_dtype=param_dtype, implementation=implementation, rngs=rngs
        )
        self.post_layernorm = LayerNorm(d, eps=cfg.layer_norm_eps, param_dtype=param_dtype)

    def patchify(self, pixel_values: jax.Array) -> jax.Array:
        """[N, C, H, W] -> [N, patches, C*p*p] in raster order, each patch flattened (C, y, x)
        as the conv kernel is."""
        cfg = self.config
        _, c, h, w = pixel_values.shape
        if (c, h, w) != (cfg.num_channels, cfg.image_size, cfg.image_size):
            raise ValueError(
                f"pixel_values {tuple(pixel_values.shape)}: the CLIP tower takes [N, {cfg.num_channels}, "
                f"{cfg.image_size}, {cfg.image_size}] (vision_config.image_size)"
            )
        return patchify(pixel_values, cfg.patch_size)

    def embeddings(self, pixel_values: jax.Array) -> jax.Array:
        """Hidden state 0: [class; patches] + positions, after the pre-LayerNorm. [N, 1+P, D]."""
        patches = self.patch_embedding(self.patchify(pixel_values.astype(self.dtype)))
        n = patches.shape[0]
        cls = jnp.broadcast_to(self.class_embedding[...].astype(patches.dtype), (n, 1, patches.shape[-1]))
        x = jnp.concatenate([cls, patches], axis=1) + self.position_embedding[...].astype(patches.dtype)
        return self.pre_layrnorm(x)

    def features(self, pixel_values: jax.Array, layers: tuple[int, ...]) -> jax.Array:
        """Hidden states number `layers` (0: embeddings, i: after block i), concatenated on the
        feature axis: [N, 1+P, D * len(layers)]. Blocks past the deepest one do not run."""
        x = self.embeddings(pixel_values)
        depth = max(layers)
        if depth == 0:
            return jnp.concatenate([x] * len(layers), axis=-1)
        graphdef, state = nnx.split(self.layers)
        if depth < self.config.num_layers:
            state = jax.tree.map(lambda a: a[:depth], state)
        keep = len(layers) > 1 or layers[0] != depth

        def body(h, layer_state):
            h = constrain_batch(nnx.merge(graphdef, layer_state)(constrain_batch(h)))  # photos split over the mesh
            return h, (h if keep else None)

        last, every = jax.lax.scan(body, x, state)
        if not keep:
            return last
        states = [x if i == 0 else every[i - 1] for i in layers]
        return jnp.concatenate(states, axis=-1)
