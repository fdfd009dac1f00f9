"""Qwen2-VL / Qwen2.5-VL in Flax NNX: Qwen2 language model with M-RoPE, image features
scattered into the image-placeholder positions, and the HF name table.

The language model is the shared `models.decoder.DecoderLM` (stacked layers run with
`jax.lax.scan`, fused Q/K/V and gate/up, LoRA per HF projection) with M-RoPE rotary tables.

Forward inputs (all static shapes):
  input_ids [B, T] int; attention_mask [B, T] (1 = token, 0 = padding; left or right).
    Right-padded batches may pass attention_mask=None: valid tokens never attend to later
    padding, so their logits are the same and attention runs with is_causal, no mask;
  position_ids [3, B, T] (optional: computed from input_ids and the grid with the HF rule);
  pixel_values [n_patches, C*t*p*p] with image_grid_thw a static numpy [n_images, 3]
  (run through the vision tower), or image_features [n_image_tokens, hidden] precomputed.

Decoding (rmpl_jax/decode.py): `init_cache`, `prefill` (a left-padded prompt batch fills KV
cache slots 0..P-1, returns the last position's logits) and `decode_step` (new tokens in the
next slots attend over the cache). The cache [layers, B, kv_heads, S, head_dim] rides in the
carry of the layer scan, so each layer's write is an in-place dynamic_update_slice.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rmpl_jax.models.decoder import DecoderDims, DecoderLM
from rmpl_jax.models.layers import KVCache, mrope_cos_sin, rope_inv_freq
from rmpl_jax.models.qwen2_vl.config import Qwen2VLConfig
from rmpl_jax.models.qwen2_vl.mrope import (
    check_image_tokens,
    mrope_position_ids,
    text_position_ids,
)
from rmpl_jax.models.qwen2_vl.vision import VisionTower
from rmpl_jax.models.segments import scatter_image_features, segment_positions

VISION_ATTR = "visual"


def decoder_dims(cfg: Qwen2VLConfig) -> DecoderDims:
    """The Qwen2 language model as a `DecoderDims` (biases on q/k/v only)."""
    return DecoderDims(
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_layers=cfg.num_layers,
        num_heads=cfg.num_heads,
        num_kv_heads=cfg.num_kv_heads,
        head_dim=cfg.head_dim,
        rms_norm_eps=cfg.rms_norm_eps,
        qkv_bias=True,
        o_bias=False,
        mlp_bias=False,
        initializer_range=cfg.initializer_range,
        dtype=cfg.compute_dtype,
        param_dtype=cfg.weight_dtype,
        fuse_qkv=cfg.fuse_qkv,
        fuse_gate_up=cfg.fuse_gate_up,
        attention_impl=cfg.attention_impl,
        remat_policy=cfg.remat_policy,
    )


class Qwen2VL(DecoderLM):
    """Qwen2-VL / Qwen2.5-VL for conditional generation (vision tower + causal LM)."""

    def __init__(self, config: Qwen2VLConfig, *, rngs: nnx.Rngs):
        cfg = config
        self.config = cfg
        self.init_decoder(decoder_dims(cfg), cfg.vocab_size, cfg.tie_word_embeddings, rngs)
        if cfg.with_vision:
            if cfg.vision_config is None:
                raise ValueError("with_vision=True but the config has no vision_config")

            # The tower uses the LM's attention backend too (cuDNN on GPU when asked).
            tower = VisionTower(
                cfg.vision_config,
                model_type=cfg.model_type,
                dtype=cfg.compute_dtype,
                param_dtype=cfg.weight_dtype,
                implementation=cfg.attention_impl,
                rngs=rngs,
            )
            setattr(self, VISION_ATTR, tower)
        else:
            setattr(self, VISION_ATTR, None)

    # -- inputs ---------------------------------------------------------------------------------
    def position_ids(self, input_ids, attention_mask=None, image_grid_thw=None, segment_ids=None) -> jax.Array:
        """M-RoPE position ids [3, B, T] (HF `get_rope_index` rule); works inside jit.
        `segment_ids`: a packed batch (positions restart per example)."""
        b, t = input_ids.shape
        if image_grid_thw is None or len(np.asarray(image_grid_thw).reshape(-1, 3)) == 0:
            if segment_ids is not None:
                return jnp.broadcast_to(segment_positions(segment_ids)[None], (3, b, t))
            return text_position_ids(attention_mask, b, t, xp=jnp)
        pos, _ = mrope_position_ids(
            input_ids,
            attention_mask,
            image_grid_thw,
            image_token_id=self.config.image_token_id,
            spatial_merge_size=self.config.spatial_merge_size,
            xp=jnp,
            segment_ids=segment_ids,
        )
        return pos

    def image_features(self, pixel_values, image_grid_thw) -> jax.Array:
        """Vision tower output [n_image_tokens, hidden] for all images of the batch."""
        tower = getattr(self, VISION_ATTR)
        if tower is None:
            raise ValueError(
                "pixel_values given but the model was built with with_vision=False; pass image_features instead"
            )
        if image_grid_thw is None:
            raise ValueError("pixel_values given without image_grid_thw")
        return tower(pixel_values, np.asarray(image_grid_thw).reshape(-1, 3))

    def embed(
        self,
        input_ids,
        *,
        pixel_values=None,
        image_grid_thw=None,
        image_features=None,
        attention_mask=None,
        packed=False,
    ) -> jax.Array:
        """Token embeddings [B, T, D] with image features written over the image tokens
        (row-major order over the batch, as HF's masked_scatter; per-row slots when
        `packed`, `models/segments.py`)."""
        x = self.embed_tokens(input_ids)
        if pixel_values is not None:
            if image_features is not None:
                raise ValueError("give pixel_values or image_features, not both")
            image_features = self.image_features(pixel_values, image_grid_thw)
        if image_features is None:
            return x
        if not isinstance(input_ids, jax.core.Tracer) and image_grid_thw is not None and not packed:
            check_image_tokens(
                input_ids,
                attention_mask,
                image_grid_thw,
                image_token_id=self.config.image_token_id,
                spatial_merge_size=self.config.spatial_merge_size,
            )
        return scatter_image_features(x, input_ids, attention_mask, image_features, self.config.image_token_id, packed)

    # -- trunk ----------------------------------------------------------------------------------
    def hidden_states(
        self,
        input_ids,
        *,
        attention_mask=None,
        position_ids=None,
        pixel_values=None,
        image_grid_thw=None,
        image_features=None,
        inputs_embeds=None,
        right_padded=False,
        segment_ids=None,
    ) -> jax.Array:
        """Final-norm hidden states [B, T, D]; `right_padded` and `segment_ids` (packed rows,
        photos in per-row slots) as `DecoderLM.hidden_from_embeds`."""
        if inputs_embeds is None:
            inputs_embeds = self.embed(
                input_ids,
                pixel_values=pixel_values,
                image_grid_thw=image_grid_thw,
                image_features=image_features,
                attention_mask=attention_mask,
                packed=segment_ids is not None,
            )
        if position_ids is None:
            if input_ids is None:
                raise ValueError("position_ids are required when input_ids is None")
            has_images = pixel_values is not None or image_features is not None
            if has_images and image_grid_thw is None:
                raise ValueError("image inputs need image_grid_thw (or explicit position_ids)")
            grid = image_grid_thw if has_images else None
            position_ids = self.position_ids(input_ids, attention_mask, grid, segment_ids)
        return self.hidden_from_embeds(
            inputs_embeds,
            position_ids=position_ids,
            attention_mask=attention_mask,
            right_padded=right_padded,
            segment_ids=segment_ids,
        )

    # -- KV-cache decoding ----------------------------------------------------------------------
    def cos_sin(self, position_ids):
        """M-RoPE tables of position ids [3, B, T]."""
        inv_freq = rope_inv_freq(self.config.head_dim, self.config.rope_theta)
        return mrope_cos_sin(position_ids, inv_freq, self.config.mrope_section)

    def prefill(
        self,
        input_ids,
        *,
        attention_mask,
        position_ids,
        cache: KVCache,
        image_features=None,
        pixel_values=None,
        image_grid_thw=None,
    ):
        """Runs a left-padded prompt batch [B, P], fills cache slots 0..P-1 and returns
        (float32 logits [B, V] of the last position, cache). position_ids [3, B, P] as
        `position_ids()` gives them (callers compute them on the host for static shapes)."""
        x = self.embed(
            input_ids,
            pixel_values=pixel_values,
            image_grid_thw=image_grid_thw,
            image_features=image_features,
            attention_mask=attention_mask,
        )
        return self.prefill_embeds(x, attention_mask=attention_mask, position_ids=position_ids, cache=cache)

    def __call__(
        self,
        input_ids,
        *,
        attention_mask=None,
        position_ids=None,
        pixel_values=None,
        image_grid_thw=None,
        image_features=None,
    ) -> jax.Array:
        """Logits [B, T, V] in float32."""
        h = self.hidden_states(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            pixel_values=pixel_values,
            image_grid_thw=image_grid_thw,
            image_features=image_features,
        )
        return self.logits_from_hidden(h)


# -- family: build / load / export ------------------------------------------------------------
def with_dtype(cfg: Qwen2VLConfig, dtype: str | None, options: dict) -> Qwen2VLConfig:
    changes = dict(options)
    if dtype is not None:
        changes.setdefault("dtype", dtype)
        changes.setdefault("param_dtype", dtype)
    return cfg.replace(**changes) if changes else cfg


def build(config: Qwen2VLConfig, dtype: str | None = None, rngs: nnx.Rngs | None = None, **options) -> Qwen2VL:
    """A randomly initialised model; `dtype` sets compute and parameter dtype, `options` any
    other config field (remat_policy, attention_impl, ...)."""
    return Qwen2VL(with_dtype(config, dtype, options), rngs=rngs if rngs is not None else nnx.Rngs(0))


def abstract_model(config: Qwen2VLConfig) -> Qwen2VL:
    """The model with ShapeDtypeStructs instead of arrays (no memory, no compute)."""
    return nnx.eval_shape(lambda: Qwen2VL(config, rngs=nnx.Rngs(0)))
