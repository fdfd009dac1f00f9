"""Published Qwen2-VL / Qwen2.5-VL architectures as HF config dicts (no weights).

Each preset is what the Hub's config.json holds (flat, pre-transformers-5 layout), so it
goes through the same parser as a real checkpoint:

    cfg = get_family("qwen2_5_vl").config_from_hf(preset("qwen2.5-vl-7b"), dtype="bfloat16")

Used by the full-size shape tests (`nnx.eval_shape`, no memory) and by `tools/bench.py`.
`preset()` returns a deep copy: callers may edit it.
"""

from __future__ import annotations

import copy
from typing import Any

# Qwen/Qwen2.5-VL-7B-Instruct config.json.
QWEN25_VL_7B: dict[str, Any] = {
    "architectures": ["Qwen2_5_VLForConditionalGeneration"],
    "model_type": "qwen2_5_vl",
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "vision_start_token_id": 151652,
    "vision_end_token_id": 151653,
    "vision_token_id": 151654,
    "image_token_id": 151655,
    "video_token_id": 151656,
    "hidden_act": "silu",
    "hidden_size": 3584,
    "initializer_range": 0.02,
    "intermediate_size": 18944,
    "max_position_embeddings": 128000,
    "max_window_layers": 28,
    "num_attention_heads": 28,
    "num_hidden_layers": 28,
    "num_key_value_heads": 4,
    "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0,
    "sliding_window": 32768,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "use_sliding_window": False,
    "vocab_size": 152064,
    "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
    "vision_config": {
        "depth": 32,
        "hidden_act": "silu",
        "hidden_size": 1280,
        "intermediate_size": 3420,
        "num_heads": 16,
        "in_chans": 3,
        "out_hidden_size": 3584,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "spatial_patch_size": 14,
        "window_size": 112,
        "fullatt_block_indexes": [7, 15, 23, 31],
        "tokens_per_second": 2,
        "temporal_patch_size": 2,
    },
}

# Qwen/Qwen2.5-VL-3B-Instruct: smaller LM, tied embeddings, same vision tower.
QWEN25_VL_3B: dict[str, Any] = {
    **QWEN25_VL_7B,
    "hidden_size": 2048,
    "intermediate_size": 11008,
    "num_hidden_layers": 36,
    "max_window_layers": 70,
    "num_attention_heads": 16,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "tie_word_embeddings": True,
    "vision_config": {**QWEN25_VL_7B["vision_config"], "out_hidden_size": 2048},
}

# Qwen/Qwen2-VL-7B-Instruct.
QWEN2_VL_7B: dict[str, Any] = {
    **{k: v for k, v in QWEN25_VL_7B.items() if k != "vision_config"},
    "model_type": "qwen2_vl",
    "architectures": ["Qwen2VLForConditionalGeneration"],
    "max_position_embeddings": 32768,
    "vision_config": {
        "depth": 32,
        "embed_dim": 1280,
        "mlp_ratio": 4,
        "num_heads": 16,
        "in_chans": 3,
        "hidden_size": 3584,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "hidden_act": "quick_gelu",
    },
}

# A Qwen2.5-VL small enough for CPU smoke runs: the shapes of the "tiny" size of the shared
# HF reference benchmark (full vocabulary, so real token ids stay valid; head_dim 32). Its
# last vision block uses full attention (the reference keeps the 7B's block indexes, which
# a depth-2 tower never reaches; the parameters are the same either way).
QWEN25_VL_TINY: dict[str, Any] = {
    **QWEN25_VL_7B,
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "max_window_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "rope_scaling": {"type": "mrope", "mrope_section": [4, 6, 6]},
    "vision_config": {
        **QWEN25_VL_7B["vision_config"],
        "depth": 2,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_heads": 2,
        "out_hidden_size": 128,
        "fullatt_block_indexes": [1],
    },
}

PRESETS: dict[str, dict[str, Any]] = {
    "qwen2.5-vl-7b": QWEN25_VL_7B,
    "qwen2.5-vl-3b": QWEN25_VL_3B,
    "qwen2-vl-7b": QWEN2_VL_7B,
    "qwen2.5-vl-tiny": QWEN25_VL_TINY,
}


def preset(name: str) -> dict[str, Any]:
    """A deep copy of the named HF config dict."""
    try:
        return copy.deepcopy(PRESETS[name])
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; known: {sorted(PRESETS)}") from None
