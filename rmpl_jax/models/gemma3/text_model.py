"""The Gemma 3 language model (transformers' `Gemma3ForCausalLM`) in Flax NNX: the shared
`models.decoder.DecoderLM` with Gemma's settings — norms times (1 + scale), QK-norm, sandwich
norms, tanh-GELU gates, scores scaled by query_pre_attn_scalar ** -0.5, embeddings times
sqrt(hidden), sliding-window layers with their own rotary base — and 1-D positions.

Forward inputs as Llama's (`llama/model.py`): input_ids [B, T], attention_mask [B, T] (left or
right padding), position_ids [B, T] (optional; real tokens before each, HF generate's rule).
"""

from __future__ import annotations

import jax
from flax import nnx

from rmpl_jax.models.decoder import DecoderDims, DecoderLM
from rmpl_jax.models.gemma3.config import Gemma3TextConfig
from rmpl_jax.models.layers import KVCache, rope_cos_sin
from rmpl_jax.models.llama.model import text_positions


def decoder_dims(cfg: Gemma3TextConfig) -> DecoderDims:
    """The Gemma 3 stack as `DecoderDims` (`attention_bias` covers q, k, v and o)."""
    return DecoderDims(
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_layers=cfg.num_layers,
        num_heads=cfg.num_heads,
        num_kv_heads=cfg.num_kv_heads,
        head_dim=cfg.head_dim,
        rms_norm_eps=cfg.rms_norm_eps,
        qkv_bias=cfg.attention_bias,
        o_bias=cfg.attention_bias,
        mlp_bias=False,
        initializer_range=cfg.initializer_range,
        dtype=cfg.compute_dtype,
        param_dtype=cfg.weight_dtype,
        fuse_qkv=cfg.fuse_qkv,
        fuse_gate_up=cfg.fuse_gate_up,
        attention_impl=cfg.attention_impl,
        remat_policy=cfg.remat_policy,
        norm_offset=1.0,
        qk_norm=True,
        sandwich_norms=True,
        mlp_activation=cfg.hidden_activation,
        attention_scale=cfg.query_pre_attn_scalar**-0.5,
        embed_scale=cfg.embed_scale,
        sliding_window=cfg.sliding_window,
        layer_sliding=cfg.layer_sliding,
    )


class Gemma3RotaryMixin:
    """The two rotary tables of a Gemma 3 language model (`text_config` names its config)."""

    def cos_sin(self, position_ids):
        cfg = self.text_config
        return rope_cos_sin(position_ids, cfg.rope_full.inv_freq(cfg.head_dim))

    def sliding_cos_sin(self, position_ids):
        cfg = self.text_config
        return rope_cos_sin(position_ids, cfg.rope_sliding.inv_freq(cfg.head_dim))


class Gemma3Text(Gemma3RotaryMixin, DecoderLM):
    """Gemma 3 causal LM (text only); see the module docstring."""

    def __init__(self, config: Gemma3TextConfig, *, rngs: nnx.Rngs):
        self.config = config
        self.init_decoder(decoder_dims(config), config.vocab_size, config.tie_word_embeddings, rngs)

    @property
    def text_config(self) -> Gemma3TextConfig:
        return self.config

    def hidden_states(
        self,
        input_ids,
        *,
        attention_mask=None,
        position_ids=None,
        inputs_embeds=None,
        right_padded=False,
        segment_ids=None,
    ) -> jax.Array:
        """Final-norm hidden states [B, T, D]; `right_padded` and `segment_ids` (packed rows)
        as `DecoderLM.hidden_from_embeds`."""
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
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
        if image_features is not None:
            raise ValueError("a text-only gemma3_text model takes no image features")
        x = self.embed_tokens(input_ids)
        return self.prefill_embeds(x, attention_mask=attention_mask, position_ids=position_ids, cache=cache)

    def __call__(self, input_ids, *, attention_mask=None, position_ids=None) -> jax.Array:
        """Logits [B, T, V] in float32."""
        h = self.hidden_states(input_ids, attention_mask=attention_mask, position_ids=position_ids)
        return self.logits_from_hidden(h)


def with_options(cfg, dtype: str | None, options: dict):
    """`cfg` with `dtype` as compute and parameter dtype and `options` as run-time fields."""
    changes = dict(options)
    if dtype is not None:
        changes.setdefault("dtype", dtype)
        changes.setdefault("param_dtype", dtype)
    return cfg.replace(**changes) if changes else cfg
