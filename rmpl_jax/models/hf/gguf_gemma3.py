"""GGUF architecture `gemma3` (the text model) -> HF Gemma3ForCausalLM (`gemma3_text`).

What llama.cpp's converter (`Gemma3Model` in convert_hf_to_gguf.py) does to the weights, and so
what is undone here:
- every `*norm.weight` (the four per-block norms, q/k norms, the final norm) is stored with 1.0
  added, because llama.cpp multiplies by the weight while Gemma3RMSNorm multiplies by
  (1 + weight): we subtract 1 (in float32, as transformers' GGUF loader does);
- q/k rows are NOT interleaved (only its Llama-family converter permutes them; Gemma uses
  llama.cpp's NEOX rotary, which is HF's half-split layout): they are kept as stored;
- `token_embd` is cut to the tokenizer's length, and it is the output layer too (tied).

The config comes from the `gemma3.*` keys plus what llama.cpp hard-codes for this architecture
(llama-model.cpp): every 6th layer global, local rotary base 10000, attention scale
1/sqrt(head_dim), except the 62-layer 27B's 1/sqrt(hidden/heads). A `gemma3.*` key outside
`KNOWN_KEYS` is an error, since it could change the model in a way not reproduced here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rmpl_jax.models.hf.gguf_arch import Architecture
from rmpl_jax.models.hf.gguf_metadata import GGUFError, Metadata

BLOCK_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "post_attention_norm.weight": "post_attention_layernorm.weight",
    "ffn_norm.weight": "pre_feedforward_layernorm.weight",
    "post_ffw_norm.weight": "post_feedforward_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "attn_q_norm.weight": "self_attn.q_norm.weight",
    "attn_k_norm.weight": "self_attn.k_norm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
TOP_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",  # llama.cpp allows an untied head for gemma3; Google's are tied
}

KNOWN_KEYS = (
    "context_length",
    "embedding_length",
    "block_count",
    "feed_forward_length",
    "vocab_size",
    "attention.head_count",
    "attention.head_count_kv",
    "attention.key_length",
    "attention.value_length",
    "attention.layer_norm_rms_epsilon",
    "attention.sliding_window",
    "rope.freq_base",
    "rope.freq_base_swa",
    "rope.dimension_count",
    "rope.scaling.type",
    "rope.scaling.factor",
    "final_logit_softcapping",
)

SLIDING_WINDOW_PATTERN = 6  # llama.cpp: set_swa_pattern(6); layer i is global iff (i + 1) % 6 == 0
LOCAL_ROPE_THETA = 10000.0  # llama.cpp: rope_freq_base_train_swa = 10000 for gemma3, whatever the file says
NORM_SHIFT = np.float32(1.0)  # convert_hf_to_gguf.py: Gemma3Model.norm_shift

# Gemma 3's own chat template (the instruction-tuned checkpoints' tokenizer_config.json), for files
# without `tokenizer.chat_template` such as the base models': `<start_of_turn>user\n...<end_of_turn>\n`,
# the assistant's role named `model`, a system message folded into the first user turn.
CHAT_TEMPLATE = (
    "{{ bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- if messages[0]['content'] is string -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}\n"
    "    {%- else -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}\n"
    "    {%- endif -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}\n"
    '    {%- set first_user_prefix = "" -%}\n'
    "    {%- set loop_messages = messages -%}\n"
    "{%- endif -%}\n"
    "{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    '        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}\n'
    "    {%- endif -%}\n"
    "    {%- if (message['role'] == 'assistant') -%}\n"
    '        {%- set role = "model" -%}\n'
    "    {%- else -%}\n"
    "        {%- set role = message['role'] -%}\n"
    "    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n"
    "        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n"
    "        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'image' -%}\n"
    "                {{ '<start_of_image>' }}\n"
    "            {%- elif item['type'] == 'text' -%}\n"
    "                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n"
    "        {%- endfor -%}\n"
    "    {%- else -%}\n"
    '        {{ raise_exception("Invalid content type") }}\n'
    "    {%- endif -%}\n"
    "    {{ '<end_of_turn>\n' }}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "    {{'<start_of_turn>model\n'}}\n"
    "{%- endif -%}\n"
)


def layer_types(n_layers: int) -> list[str]:
    """Gemma 3's attention per layer: five local (sliding window) layers, then one global."""
    return ["full_attention" if (i + 1) % SLIDING_WINDOW_PATTERN == 0 else "sliding_attention" for i in range(n_layers)]


def _global_rope(meta: Metadata) -> dict[str, Any]:
    """The global layers' rotary: the file's base, with its linear scaling if any (llama.cpp
    reads a factor without a type as linear; a factor of 1 is no scaling)."""
    a = "gemma3."
    rope: dict[str, Any] = {"rope_type": "default", "rope_theta": float(meta.get(a + "rope.freq_base"))}
    kind = meta.get(a + "rope.scaling.type", "linear")
    factor = float(meta.get(a + "rope.scaling.factor", 1.0))
    if kind not in ("none", "linear"):
        raise meta.error(a + "rope.scaling.type", f"{kind!r} is not supported (none, linear)")
    if kind == "linear" and factor != 1.0:
        rope.update(rope_type="linear", factor=factor)
    return rope


def gemma3_config(meta: Metadata, tensor_names: set[str], vocab_size: int) -> dict[str, Any]:
    """The HF Gemma3ForCausalLM config.json of a `gemma3` GGUF file (see the module docstring)."""
    a = "gemma3."
    meta.check_known(a, KNOWN_KEYS)
    hidden = int(meta.get(a + "embedding_length"))
    heads = int(meta.get(a + "attention.head_count"))
    layers = int(meta.get(a + "block_count"))
    head_dim = int(meta.get(a + "attention.key_length"))
    if int(meta.get(a + "attention.value_length", head_dim)) != head_dim:
        raise meta.error(a + "attention.value_length", f"!= attention.key_length {head_dim} (HF has one head_dim)")
    if int(meta.get(a + "rope.dimension_count", head_dim)) != head_dim:
        raise meta.error(a + "rope.dimension_count", f"!= head_dim {head_dim} (partial rotary is not Gemma 3)")
    if float(meta.get(a + "rope.freq_base_swa", LOCAL_ROPE_THETA)) != LOCAL_ROPE_THETA:
        raise meta.error(a + "rope.freq_base_swa", f"is not {LOCAL_ROPE_THETA} (llama.cpp's gemma3 ignores it)")
    if int(meta.get(a + "vocab_size", vocab_size)) != vocab_size:
        raise meta.error(a + "vocab_size", f"!= the {vocab_size} rows of token_embd.weight")
    tokens = len(meta.get("tokenizer.ggml.tokens"))
    if tokens != vocab_size:  # llama.cpp cuts the embedding to the vocabulary; another file is not one of its
        raise meta.error("tokenizer.ggml.tokens", f"has {tokens} tokens, token_embd.weight {vocab_size} rows")
    window = int(meta.get(a + "attention.sliding_window"))
    if window <= 0:
        raise meta.error(a + "attention.sliding_window", f"{window}: Gemma 3 without local layers is not supported")
    if "rope_freqs.weight" in tensor_names:
        raise GGUFError(f"{meta.path}: tensor 'rope_freqs.weight' (per-frequency rotary factors) is not supported")
    # llama.cpp's attention scale: 1/sqrt(head_dim), but 1/sqrt(hidden/heads) for the 62-layer 27B.
    scalar = hidden // heads if layers == 62 else head_dim
    t = "tokenizer.ggml."
    config = {
        "architectures": ["Gemma3ForCausalLM"],
        "model_type": "gemma3_text",
        "vocab_size": vocab_size,
        "hidden_size": hidden,
        "intermediate_size": int(meta.get(a + "feed_forward_length")),
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": int(meta.get(a + "attention.head_count_kv", heads)),
        "head_dim": head_dim,
        "rms_norm_eps": float(meta.get(a + "attention.layer_norm_rms_epsilon")),
        "max_position_embeddings": int(meta.get(a + "context_length")),
        "hidden_activation": "gelu_pytorch_tanh",
        "query_pre_attn_scalar": scalar,
        "sliding_window": window,
        "layer_types": layer_types(layers),
        "rope_parameters": {
            "full_attention": _global_rope(meta),
            "sliding_attention": {"rope_type": "default", "rope_theta": LOCAL_ROPE_THETA},
        },
        "final_logit_softcapping": meta.get(a + "final_logit_softcapping", None),
        "attn_logit_softcapping": None,  # llama.cpp's converter refuses Gemma 3 checkpoints that have one
        "use_bidirectional_attention": False,
        "attention_bias": False,
        "tie_word_embeddings": "output.weight" not in tensor_names,
    }
    for key, name in (("bos_token_id", "bos"), ("eos_token_id", "eos"), ("pad_token_id", "padding")):
        value = meta.get(f"{t}{name}_token_id", None)
        if value is not None:
            config[key] = int(value)
    return config


def gemma3_transform(name: str, value: np.ndarray, config: dict[str, Any]) -> np.ndarray:
    """Norm weights back to Gemma's (1 + w) convention; nothing else changes."""
    del config
    return value - NORM_SHIFT if name.endswith("norm.weight") else value


GEMMA3 = Architecture(
    name="gemma3",
    config=gemma3_config,
    block_names=BLOCK_NAMES,
    top_names=TOP_NAMES,
    transform=gemma3_transform,
    tokenizer_models=("llama",),
    default_chat_template=CHAT_TEMPLATE,
    end_of_turn="<end_of_turn>",
)
