"""LLaVA-1.5 (transformers' `LlavaForConditionalGeneration`) in Flax NNX: the CLIP tower
(`llava/vision.py`), the 2-layer projector, and the Llama language model — the shared
`models.decoder.DecoderLM` with Llama's dimensions and 1-D rotary tables.

Forward inputs: input_ids [B, T] in which every photo is a run of `tokens_per_image` image
tokens (`LlavaProcessor` expands them); attention_mask [B, T] (left or right padding);
position_ids [B, T] (optional: the count of real tokens before each, HF generate's rule);
pixel_values [n_images, C, S, S] (the photos in the order their runs appear, row-major over
the batch) or image_features [>= n_image_tokens, D] already projected. Image features are
written over the image tokens in that order, as HF's masked_scatter.

Parameter paths: the decoder's (`embed_tokens`, `layers/...`, `norm`, `lm_head`), then
`vision_tower/...` and `multi_modal_projector/{linear_1,linear_2}/{kernel,bias}`; the
decoder's default LoRA targets never match the tower or the projector.
"""

from __future__ import annotations

import jax
from flax import nnx

from rmpl_jax.models.decoder import DecoderLM
from rmpl_jax.models.layers import ACTIVATIONS, KVCache, Linear, rope_cos_sin
from rmpl_jax.models.llama.model import decoder_dims, text_positions
from rmpl_jax.models.llava.config import LlavaConfig
from rmpl_jax.models.llava.vision import ClipVisionTower
from rmpl_jax.models.segments import embed_photos


class Projector(nnx.Module):
    """linear_2(act(linear_1(features))): tower width(s) -> LM width."""

    def __init__(self, config: LlavaConfig, *, dtype, param_dtype, rngs: nnx.Rngs):
        d = config.text.hidden_size
        kw = dict(
            use_bias=config.projector_bias,
            dtype=dtype,
            param_dtype=param_dtype,
            init_std=config.text.initializer_range,
            rngs=rngs,
        )
        self.linear_1 = Linear(config.feature_width, d, axes=("vision_embed", "mlp"), **kw)
        self.linear_2 = Linear(d, d, axes=("mlp", "embed"), **kw)
        self.act = ACTIVATIONS[config.projector_hidden_act]

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.linear_2(self.act(self.linear_1(x)))


class Llava(DecoderLM):
    """LLaVA for conditional generation (CLIP tower + projector + Llama LM)."""

    def __init__(self, config: LlavaConfig, *, rngs: nnx.Rngs):
        self.config = config
        text = config.text
        self.init_decoder(decoder_dims(text), text.vocab_size, text.tie_word_embeddings, rngs)
        kw = dict(dtype=text.compute_dtype, param_dtype=text.weight_dtype)
        self.vision_tower = ClipVisionTower(config.vision, implementation=text.attention_impl, rngs=rngs, **kw)
        self.multi_modal_projector = Projector(config, rngs=rngs, **kw)

    def cos_sin(self, position_ids):
        """Rotary tables of position ids [B, T] (the Llama LM's rotary type)."""
        return rope_cos_sin(position_ids, self.config.text.inv_freq())

    # -- images ---------------------------------------------------------------------------------
    def image_features(self, pixel_values) -> jax.Array:
        """Projected tower features [n_images * tokens_per_image, D], photos in order."""
        feats = self.vision_tower.features(pixel_values, self.config.feature_layers)
        if self.config.select_strategy == "default":
            feats = feats[:, 1:]  # drop the class token
        out = self.multi_modal_projector(feats)
        return out.reshape(-1, out.shape[-1])

    def embed(
        self, input_ids, *, pixel_values=None, image_features=None, attention_mask=None, packed=False
    ) -> jax.Array:
        """Token embeddings [B, T, D] with image features over the image tokens (row-major;
        per-row slots when `packed`, `models/segments.py`)."""
        x = self.embed_tokens(input_ids)
        return embed_photos(
            x,
            input_ids,
            attention_mask,
            pixel_values,
            image_features,
            packed,
            encode=self.image_features,
            image_token_id=self.config.image_token_id,
            tokens_per_image=self.config.tokens_per_image,
        )

    # -- trunk ----------------------------------------------------------------------------------
    def hidden_states(
        self,
        input_ids,
        *,
        attention_mask=None,
        position_ids=None,
        pixel_values=None,
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
                image_features=image_features,
                attention_mask=attention_mask,
                packed=segment_ids is not None,
            )
        if position_ids is None:
            b, t = inputs_embeds.shape[:2]
            position_ids = text_positions(attention_mask, b, t, segment_ids)
        return self.hidden_from_embeds(
            inputs_embeds,
            position_ids=position_ids,
            attention_mask=attention_mask,
            right_padded=right_padded,
            segment_ids=segment_ids,
        )

    def prefill(self, input_ids, *, attention_mask, position_ids, cache: KVCache, image_features=None):
        """Runs a left-padded prompt batch [B, P], fills cache slots 0..P-1 and returns
        (float32 logits [B, V] of the last position, cache); position_ids [B, P]."""
        x = self.embed(input_ids, image_features=image_features, attention_mask=attention_mask)
        return self.prefill_embeds(x, attention_mask=attention_mask, position_ids=position_ids, cache=cache)

    def __call__(self, input_ids, *, attention_mask=None, position_ids=None, pixel_values=None) -> jax.Array:
        """Logits [B, T, V] in float32."""
        h = self.hidden_states(
            input_ids, attention_mask=attention_mask, position_ids=position_ids, pixel_values=pixel_values
        )
        return self.logits_from_hidden(h)


def with_dtype(cfg: LlavaConfig, dtype: str | None, options: dict) -> LlavaConfig:
    """`cfg` with `dtype` as compute and parameter dtype and `options` as run-time fields."""
    changes = dict(options)
    if dtype is not None:
        changes.setdefault("dtype", dtype)
        changes.setdefault("param_dtype", dtype)
    return cfg.replace(**changes) if changes else cfg


def build(config: LlavaConfig, dtype: str | None = None, rngs: nnx.Rngs | None = None, **options) -> Llava:
    """A randomly initialised model (`options`: remat_policy, attention_impl, fusion flags)."""
    return Llava(with_dtype(config, dtype, options), rngs=rngs if rngs is not None else nnx.Rngs(0))


def abstract_model(config: LlavaConfig) -> Llava:
    """The model with ShapeDtypeStructs instead of arrays (no memory, no compute)."""
    return nnx.eval_shape(lambda: Llava(config, rngs=nnx.Rngs(0)))
