"""Gemma 3's multimodal projector (transformers' `Gemma3MultiModalProjector`) in Flax NNX, and
its HF name table.

The tower's patches [N, P, Dv] are laid back on their grid (g x g, raster order), average-pooled
over k x k blocks (k = g / sqrt(tokens_per_image), stride k) to tokens_per_image soft tokens in
raster order, RMS-normed with Gemma's (1 + weight) in float32 (`mm_soft_emb_norm`), then
multiplied by `mm_input_projection_weight` [Dv, D_text] — stored (in, out) by HF, so loaded
as is, unlike an `nn.Linear`.

Parameter paths: `mm_soft_emb_norm/scale`, `mm_input_projection/kernel`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from rmpl_jax.models.gemma3.vision_config import SiglipVisionConfig
from rmpl_jax.models.hf.names import NameRule
from rmpl_jax.models.layers import Linear, RMSNorm

OURS = "multi_modal_projector"


def pool_size(vision_cfg: SiglipVisionConfig, tokens_per_image: int) -> int:
    """The pooling kernel (and stride) per side; raises unless the pooled grid is square and
    tiles the patch grid exactly (HF would silently drop edge patches otherwise)."""
    side = math.isqrt(tokens_per_image)
    if tokens_per_image <= 0 or side * side != tokens_per_image:
        raise ValueError(f"mm_tokens_per_image {tokens_per_image} is not a square number")
    if vision_cfg.grid % side:
        raise ValueError(
            f"mm_tokens_per_image {tokens_per_image} ({side} per side) does not divide the tower's "
            f"{vision_cfg.grid} x {vision_cfg.grid} patch grid"
        )
    return vision_cfg.grid // side


class MultiModalProjector(nnx.Module):
    """Tower output [N, patches, Dv] -> soft tokens [N, tokens_per_image, text_hidden] in `dtype`."""

    def __init__(
        self,
        vision_cfg: SiglipVisionConfig,
        text_hidden: int,
        tokens_per_image: int,
        *,
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        dv = vision_cfg.hidden_size
        self.grid = vision_cfg.grid
        self.pool_kernel = pool_size(vision_cfg, tokens_per_image)
        self.tokens_per_image = tokens_per_image
        self.dtype = dtype
        self.mm_soft_emb_norm = RMSNorm(
            dv, eps=vision_cfg.layer_norm_eps, offset=1.0, param_dtype=param_dtype, dtype=dtype
        )
        # ("vision_embed", "embed") both map to fsdp; the sharding rules give the mesh axis
        # to the first dim and leave the second whole.
        self.mm_input_projection = Linear(
            dv,
            text_hidden,
            axes=("vision_embed", "embed"),
            dtype=dtype,
            param_dtype=param_dtype,
            init_std=vision_cfg.initializer_range,
            rngs=rngs,
        )

    def pool(self, x: jax.Array) -> jax.Array:
        """[N, g*g, Dv] -> [N, tokens_per_image, Dv]: means over k x k patch blocks (in float32),
        token r * (g/k) + c averaging the patches of block row r, column c, as HF's AvgPool2d
        then flatten."""
        n, patches, dv = x.shape
        g, k = self.grid, self.pool_kernel
        if patches != g * g:
            raise ValueError(f"projector input has {patches} patches; the tower gives {g * g}")
        t = g // k
        blocks = x.astype(jnp.float32).reshape(n, t, k, t, k, dv)
        return blocks.mean(axis=(2, 4)).reshape(n, t * t, dv).astype(x.dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.mm_input_projection(self.mm_soft_emb_norm(self.pool(x))).astype(self.dtype)


def projector_name_rules(prefix: str = "multi_modal_projector.") -> list[NameRule]:
    """HF projector names under `prefix` <-> our `multi_modal_projector/...` leaves. The
    projection is stored (in, out) by HF, so there is no transpose."""
    p = prefix.replace(".", r"\.")
    return [
        NameRule(p + r"mm_input_projection_weight", f"{OURS}/mm_input_projection/kernel"),
        NameRule(p + r"mm_soft_emb_norm\.weight", f"{OURS}/mm_soft_emb_norm/scale"),
    ]
