"""Llama (transformers' `LlamaForCausalLM`) in Flax NNX: the shared `models.decoder.DecoderLM`
with 1-D rotary positions. Text only; GQA, optional attention / MLP biases, tied or separate
LM head, explicit `head_dim`.

Forward inputs: input_ids [B, T]; attention_mask [B, T] (1 = token; left or right padding);
position_ids [B, T] (optional: the count of real tokens before each, 0 on padding — HF's
generate rule, equal to `arange` for right padding). A family wrapping this LM (LLaVA) passes
`inputs_embeds` instead of ids.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from rmpl_jax.models.decoder import DecoderDims, DecoderLM
from rmpl_jax.models.layers import KVCache, rope_cos_sin
from rmpl_jax.models.llama.config import LlamaConfig
from rmpl_jax.models.segments import segment_positions


def decoder_dims(cfg: LlamaConfig) -> DecoderDims:
    """The Llama stack as `DecoderDims` (`attention_bias` covers q, k, v and o)."""
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
        mlp_bias=cfg.mlp_bias,
        initializer_range=cfg.initializer_range,
        dtype=cfg.compute_dtype,
        param_dtype=cfg.weight_dtype,
        fuse_qkv=cfg.fuse_qkv,
        fuse_gate_up=cfg.fuse_gate_up,
        attention_impl=cfg.attention_impl,
        remat_policy=cfg.remat_policy,
    )


def text_positions(attention_mask, batch: int, length: int, segment_ids=None) -> jax.Array:
    """[B, T] positions: count of real tokens before each (0 on padding); arange without a
    mask; restarting at every example of a packed row when `segment_ids` are given."""
    if segment_ids is not None:
        return segment_positions(segment_ids)
    if attention_mask is None:
        return jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32)[None], (batch, length))
    valid = jnp.asarray(attention_mask).astype(jnp.int32)
    return (jnp.cumsum(valid, axis=1) - 1) * valid


class Llama(DecoderLM):
    """Llama causal LM; see the module docstring."""

    def __init__(self, config: LlamaConfig, *, rngs: nnx.Rngs):
        self.config = config
        self.init_decoder(decoder_dims(config), config.vocab_size, config.tie_word_embeddings, rngs)

    def cos_sin(self, position_ids):
        """Rotary tables of position ids [B, T]."""
        return rope_cos_sin(position_ids, self.config.inv_freq())

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

    def prefill(
        self, input_ids, *, attention_mask, position_ids, cache: KVCache, image_features=None, inputs_embeds=None
    ):
        """Runs a left-padded prompt batch [B, P], fills cache slots 0..P-1 and returns
        (float32 logits [B, V] of the last position, cache); position_ids [B, P]."""
        if image_features is not None:
            raise ValueError(f"a text-only {self.config.model_type} model takes no image features")
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        return self.prefill_embeds(x, attention_mask=attention_mask, position_ids=position_ids, cache=cache)

    def __call__(self, input_ids, *, attention_mask=None, position_ids=None) -> jax.Array:
        """Logits [B, T, V] in float32."""
        h = self.hidden_states(input_ids, attention_mask=attention_mask, position_ids=position_ids)
        return self.logits_from_hidden(h)


def with_dtype(cfg: LlamaConfig, dtype: str | None, options: dict) -> LlamaConfig:
    """`cfg` with `dtype` as compute and parameter dtype and `options` as other fields."""
    changes = dict(options)
    if dtype is not None:
        changes.setdefault("dtype", dtype)
        changes.setdefault("param_dtype", dtype)
    return cfg.replace(**changes) if changes else cfg


def build(config: LlamaConfig, dtype: str | None = None, rngs: nnx.Rngs | None = None, **options) -> Llama:
    """A randomly initialised model (`options`: remat_policy, attention_impl, fusion flags)."""
    return Llama(with_dtype(config, dtype, options), rngs=rngs if rngs is not None else nnx.Rngs(0))


def abstract_model(config: LlamaConfig) -> Llama:
    """The model with ShapeDtypeStructs instead of arrays (no memory, no compute)."""
    return nnx.eval_shape(lambda: Llama(config, rngs=nnx.Rngs(0)))
