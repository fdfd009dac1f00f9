"""GGUF architecture `llama` -> HF LlamaForCausalLM: GQA, tied or separate output, q/k/v/o
biases, `linear` rotary scaling. llama.cpp's converter interleaves the q/k rows of each head for
its rotary layout; `unpermute_rows` puts them back in HF's order."""

from __future__ import annotations

from typing import Any

import numpy as np

from rmpl_jax.models.hf.gguf_arch import Architecture
from rmpl_jax.models.hf.gguf_metadata import GGUFError, Metadata

# GGUF tensor names (per block `blk.N.`) -> HF LlamaForCausalLM names.
BLOCK_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.bias": "self_attn.v_proj.bias",
    "attn_output.bias": "self_attn.o_proj.bias",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
TOP_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}


def unpermute_rows(weight: np.ndarray, n_head: int) -> np.ndarray:
    """Undoes llama.cpp's q/k row order: per head it stores the rotary pairs interleaved
    (rows 0, hd/2, 1, hd/2+1, ...); HF keeps each head's two halves in blocks."""
    rows = weight.shape[0]
    if rows % (2 * n_head):
        raise GGUFError(f"{rows} rows do not split into {n_head} heads of rotary pairs")
    per_pair = rows // n_head // 2
    return weight.reshape(n_head, per_pair, 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def llama_config(meta: Metadata, tensor_names: set[str], vocab_size: int) -> dict[str, Any]:
    """The HF LlamaForCausalLM config.json of a `llama` GGUF file."""
    a = "llama."
    heads = int(meta.get(a + "attention.head_count"))
    hidden = int(meta.get(a + "embedding_length"))
    head_dim = int(meta.get(a + "attention.key_length", hidden // heads))
    if int(meta.get(a + "rope.dimension_count", head_dim)) != head_dim:
        raise GGUFError(f"{meta.path}: {a}rope.dimension_count != head_dim {head_dim} (partial rotary)")
    if "rope_freqs.weight" in tensor_names:
        raise GGUFError(f"{meta.path}: tensor 'rope_freqs.weight' (per-frequency rotary factors) is not supported")
    rope: dict[str, Any] = {"rope_type": "default", "rope_theta": float(meta.get(a + "rope.freq_base", 10000.0))}
    scaling = meta.get(a + "rope.scaling.type", "none")
    if scaling == "linear":
        rope.update(rope_type="linear", factor=float(meta.get(a + "rope.scaling.factor")))
    elif scaling != "none":
        raise GGUFError(f"{meta.path}: {a}rope.scaling.type {scaling!r} is not supported (none, linear)")
    t = "tokenizer.ggml."
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": vocab_size,
        "hidden_size": hidden,
        "intermediate_size": int(meta.get(a + "feed_forward_length")),
        "num_hidden_layers": int(meta.get(a + "block_count")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(meta.get(a + "attention.head_count_kv", heads)),
        "head_dim": head_dim,
        "rms_norm_eps": float(meta.get(a + "attention.layer_norm_rms_epsilon")),
        "max_position_embeddings": int(meta.get(a + "context_length", 2048)),
        "hidden_act": "silu",
        "rope_parameters": rope,
        "attention_bias": "blk.0.attn_q.bias" in tensor_names,
        "mlp_bias": False,
        "tie_word_embeddings": "output.weight" not in tensor_names,
        "bos_token_id": meta.get(t + "bos_token_id", None),
        "eos_token_id": meta.get(t + "eos_token_id", None),
        "pad_token_id": meta.get(t + "padding_token_id", None),
    }
    return {k: v for k, v in config.items() if v is not None}


def llama_transform(name: str, value: np.ndarray, config: dict[str, Any]) -> np.ndarray:
    """q/k rows (weights and biases) back in HF's per-head order; everything else as stored."""
    if name.endswith(("q_proj.weight", "q_proj.bias")):
        return unpermute_rows(value, config["num_attention_heads"])
    if name.endswith(("k_proj.weight", "k_proj.bias")):
        return unpermute_rows(value, config["num_key_value_heads"])
    return value


LLAMA = Architecture(
    name="llama",
    config=llama_config,
    block_names=BLOCK_NAMES,
    top_names=TOP_NAMES,
    transform=llama_transform,
    tokenizer_models=("gpt2",),
)
