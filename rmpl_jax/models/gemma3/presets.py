"""Published Gemma 3 configs (HF config.json dicts, no weights), for shape tests, parameter
counts and `tools/aot_memory.py`:

    cfg = get_family("gemma3").config_from_hf(preset("gemma-3-4b"), dtype="bfloat16")

`preset()` returns a deep copy: callers may edit it.
"""

from __future__ import annotations

import copy
from typing import Any


def _text(**sizes) -> dict[str, Any]:
    """A Gemma 3 text config: what every size shares, then `sizes`."""
    return {
        "model_type": "gemma3_text",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "attn_logit_softcapping": None,
        "final_logit_softcapping": None,
        "head_dim": 256,
        "hidden_activation": "gelu_pytorch_tanh",
        "initializer_range": 0.02,
        "query_pre_attn_scalar": 256,
        "rms_norm_eps": 1e-06,
        "rope_local_base_freq": 10000.0,
        "rope_theta": 1000000.0,
        "sliding_window_pattern": 6,
        "bos_token_id": 2,
        "eos_token_id": 1,
        "pad_token_id": 0,
        **sizes,
    }


# google/gemma-3-270m: 18 layers (every 6th full attention), MQA, a 512-token window.
GEMMA3_270M: dict[str, Any] = {
    "architectures": ["Gemma3ForCausalLM"],
    **_text(
        hidden_size=640,
        intermediate_size=2048,
        num_hidden_layers=18,
        num_attention_heads=4,
        num_key_value_heads=1,
        sliding_window=512,
        max_position_embeddings=32768,
        rope_scaling=None,
        vocab_size=262144,
        torch_dtype="bfloat16",
    ),
}

# google/gemma-3-1b-it: text only, 26 layers.
GEMMA3_1B: dict[str, Any] = {
    "architectures": ["Gemma3ForCausalLM"],
    **_text(
        hidden_size=1152,
        intermediate_size=6912,
        num_hidden_layers=26,
        num_attention_heads=4,
        num_key_value_heads=1,
        sliding_window=512,
        max_position_embeddings=32768,
        rope_scaling=None,
        vocab_size=262144,
        torch_dtype="bfloat16",
    ),
}

# The SigLIP-So400m tower of the multimodal sizes: 896-px photos, 14-px patches (4,096 patches,
# average-pooled to 256 image tokens).
_SIGLIP_896: dict[str, Any] = {
    "model_type": "siglip_vision_model",
    "hidden_size": 1152,
    "image_size": 896,
    "intermediate_size": 4304,
    "num_attention_heads": 16,
    "num_hidden_layers": 27,
    "patch_size": 14,
    "num_channels": 3,
    "hidden_act": "gelu_pytorch_tanh",
    "layer_norm_eps": 1e-06,
    "attention_dropout": 0.0,
    "vision_use_head": False,
}


def _multimodal(**text_sizes) -> dict[str, Any]:
    return {
        "architectures": ["Gemma3ForConditionalGeneration"],
        "model_type": "gemma3",
        "boi_token_index": 255999,
        "eoi_token_index": 256000,
        "image_token_index": 262144,
        "eos_token_id": [1, 106],
        "initializer_range": 0.02,
        "mm_tokens_per_image": 256,
        "torch_dtype": "bfloat16",
        "text_config": _text(
            sliding_window=1024,
            max_position_embeddings=131072,
            rope_scaling={"factor": 8.0, "rope_type": "linear"},
            vocab_size=262208,
            **text_sizes,
        ),
        "vision_config": copy.deepcopy(_SIGLIP_896),
    }


# google/gemma-3-4b-it: 34 layers, GQA 8/4.
GEMMA3_4B = _multimodal(
    hidden_size=2560, intermediate_size=10240, num_hidden_layers=34, num_attention_heads=8, num_key_value_heads=4
)
# google/gemma-3-12b-it: 48 layers, GQA 16/8.
GEMMA3_12B = _multimodal(
    hidden_size=3840, intermediate_size=15360, num_hidden_layers=48, num_attention_heads=16, num_key_value_heads=8
)

# A Gemma 3 with vision small enough for CPU smoke runs (`tools/aot_memory.py`'s test): the
# released vocabulary and token ids, a 56-px tower of 16 patches pooled to 4 image tokens.
GEMMA3_TINY = {
    **_multimodal(
        hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
    ),
    "mm_tokens_per_image": 4,
}
GEMMA3_TINY["text_config"].update(head_dim=32, query_pre_attn_scalar=32)
GEMMA3_TINY["vision_config"].update(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, image_size=56
)

PRESETS: dict[str, dict[str, Any]] = {
    "gemma-3-270m": GEMMA3_270M,
    "gemma-3-1b": GEMMA3_1B,
    "gemma-3-4b": GEMMA3_4B,
    "gemma-3-12b": GEMMA3_12B,
    "gemma-3-tiny": GEMMA3_TINY,
}


def preset(name: str) -> dict[str, Any]:
    """A deep copy of the named HF config dict."""
    try:
        return copy.deepcopy(PRESETS[name])
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; known: {sorted(PRESETS)}") from None
