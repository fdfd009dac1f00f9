"""The Gemma 3 language model (transformers' `Gemma3ForCausalLM`) in Flax NNX: the shared
`models.decoder.DecoderLM` with Gemma's settings — norms times (1 + scale), QK-norm, sandwich
norms, tanh-GELU gates, scores scaled by query_pre_attn_scalar ** -0.5, embeddings times
sqrt(hidden), sliding-window layers with their own rotary base — and 1-D positions.

Forward inputs as Llama's (`llama/model.py`): input_ids [B, T], attention_mask [B, T] (left or
right padding), position_ids [B, T] (optional; real tokens before each, HF generate's rule).
"""

from __future__ import annotations

from flax import nnx

from rmpl_jax.models.decoder import DecoderDims
from rmpl_jax.models.gemma3.config import Gemma3TextConfig
from rmpl_jax.models.layers import rope_cos_sin
from rmpl_jax.models.llama.model import Llama


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


class Gemma3Text(Gemma3RotaryMixin, Llama):
    """Gemma 3 causal LM (text only): Llama's text path (positions, prefill, logits) on the
    Gemma 3 stack and rotary tables; see the module docstring."""

    def __init__(self, config: Gemma3TextConfig, *, rngs: nnx.Rngs):
        self.config = config
        self.init_decoder(decoder_dims(config), config.vocab_size, config.tie_word_embeddings, rngs)

    @property
    def text_config(self) -> Gemma3TextConfig:
        return self.config
