"""Published LLaVA-1.5 configs (HF config.json dicts as llava-hf ships them, no weights), for
shape tests and parameter counts:

    cfg = get_family("llava").config_from_hf(preset("llava-1.5-7b"), dtype="bfloat16")

They leave keys to transformers' defaults (the 7B text config names no sizes), as the Hub
files do. `preset()` returns a deep copy: callers may edit it.
"""

from __future__ import annotations

import copy
from typing import Any

# CLIP ViT-L/14 at 336 px (openai/clip-vit-large-patch14-336), the tower of both sizes.
_CLIP_L14_336: dict[str, Any] = {
    "hidden_size": 1024,
    "image_size": 336,
    "intermediate_size": 4096,
    "model_type": "clip_vision_model",
    "num_attention_heads": 16,
    "num_hidden_layers": 24,
    "patch_size": 14,
    "projection_dim": 768,
    "vocab_size": 32000,
}

# llava-hf/llava-1.5-7b-hf: Vicuna-7B v1.5 (vocabulary padded to 32064), 576 image tokens.
LLAVA15_7B: dict[str, Any] = {
    "architectures": ["LlavaForConditionalGeneration"],
    "ignore_index": -100,
    "image_token_index": 32000,
    "model_type": "llava",
    "pad_token_id": 32001,
    "projector_hidden_act": "gelu",
    "text_config": {
        "_name_or_path": "lmsys/vicuna-7b-v1.5",
        "architectures": ["LlamaForCausalLM"],
        "max_position_embeddings": 4096,
        "model_type": "llama",
        "rms_norm_eps": 1e-05,
        "torch_dtype": "float16",
        "vocab_size": 32064,
    },
    "tie_word_embeddings": False,
    "torch_dtype": "float16",
    "vision_config": _CLIP_L14_336,
    "vision_feature_layer": -2,
    "vision_feature_select_strategy": "default",
    "vocab_size": 32064,
}

# llava-hf/llava-1.5-13b-hf: Vicuna-13B v1.5.
LLAVA15_13B: dict[str, Any] = dict(
    LLAVA15_7B,
    text_config={
        "_name_or_path": "lmsys/vicuna-13b-v1.5",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": 5120,
        "intermediate_size": 13824,
        "max_position_embeddings": 4096,
        "model_type": "llama",
        "num_attention_heads": 40,
        "num_hidden_layers": 40,
        "num_key_value_heads": 40,
        "rms_norm_eps": 1e-05,
        "torch_dtype": "float16",
        "vocab_size": 32064,
    },
)

PRESETS: dict[str, dict[str, Any]] = {"llava-1.5-7b": LLAVA15_7B, "llava-1.5-13b": LLAVA15_13B}


def preset(name: str) -> dict[str, Any]:
    """A deep copy of the named HF config dict."""
    try:
        return copy.deepcopy(PRESETS[name])
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; known: {sorted(PRESETS)}") from None
