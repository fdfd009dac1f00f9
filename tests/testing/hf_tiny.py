"""Tiny random transformers Qwen2-VL / Qwen2.5-VL models (torch CPU, float32) saved with
`save_pretrained`, the reference for parity tests. No weights are downloaded.

    from tests.testing.hf_tiny import make_tiny_qwen, image_patches, tokens_with_images
    hf_dir, torch_model = make_tiny_qwen(tmp_path, variant="qwen2_5_vl")
"""

from __future__ import annotations

import copy
import pathlib

import numpy as np

VOCAB = 320
IMAGE_TOKEN, VIDEO_TOKEN, VISION_START, VISION_END = 300, 301, 302, 303


def tiny_config_dict(variant: str = "qwen2_5_vl", **overrides) -> dict:
    """Config kwargs for a tiny model: hidden 64, 2 layers, 4 heads / 2 kv heads, vocab 320.

    overrides: top-level keys replace config keys; `text` / `vision` dicts update the
    text_config / vision_config.
    """
    text = dict(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=112,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        rms_norm_eps=1e-6,
        initializer_range=0.1,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
    )
    if variant == "qwen2_5_vl":
        vision = dict(
            depth=2,
            hidden_size=32,
            intermediate_size=48,
            num_heads=2,
            out_hidden_size=64,
            patch_size=14,
            temporal_patch_size=2,
            spatial_merge_size=2,
            in_channels=3,
            window_size=56,
            fullatt_block_indexes=[1],
            hidden_act="silu",
        )
    elif variant == "qwen2_vl":
        vision = dict(
            depth=2,
            embed_dim=32,
            hidden_size=64,
            mlp_ratio=2,
            num_heads=2,
            patch_size=14,
            temporal_patch_size=2,
            spatial_merge_size=2,
            in_channels=3,
            hidden_act="quick_gelu",
        )
    else:
        raise ValueError(f"unknown variant {variant!r}")
    overrides = copy.deepcopy(overrides)
    text.update(overrides.pop("text", {}))
    vision.update(overrides.pop("vision", {}))
    cfg = dict(
        text_config=text,
        vision_config=vision,
        image_token_id=IMAGE_TOKEN,
        video_token_id=VIDEO_TOKEN,
        vision_start_token_id=VISION_START,
        vision_end_token_id=VISION_END,
        tie_word_embeddings=False,
    )
    cfg.update(overrides)
    return cfg


def make_tiny_qwen(tmp_path, variant: str = "qwen2_5_vl", seed: int = 0, save: bool = True, **overrides):
    """Builds a random tiny model, saves it to `tmp_path/<variant>` and returns
    (hf_dir, torch_model) with the model in eval mode, float32, eager attention."""
    import torch
    import transformers

    cfg_dict = tiny_config_dict(variant, **overrides)
    if variant == "qwen2_5_vl":
        config = transformers.Qwen2_5_VLConfig(**cfg_dict)
        cls = transformers.Qwen2_5_VLForConditionalGeneration
    else:
        config = transformers.Qwen2VLConfig(**cfg_dict)
        cls = transformers.Qwen2VLForConditionalGeneration
    torch.manual_seed(seed)
    model = cls(config).eval().to(torch.float32)
    # Random norms and biases too, so a wrong mapping of them shows up in the logits.
    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed + 1)
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name or "ln_q" in name:
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
    hf_dir = pathlib.Path(tmp_path) / variant
    if save:
        model.save_pretrained(hf_dir)
    return hf_dir, model


def image_patches(grid_thw, model, seed: int = 0) -> np.ndarray:
    """Random pixel_values [n_patches, C*t*p*p] float32 for the given (t, h, w) grids."""
    vc = model.config.vision_config
    dim = vc.in_channels * vc.temporal_patch_size * vc.patch_size**2
    n = int(sum(t * h * w for t, h, w in grid_thw))
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def tokens_with_images(text_lens, grid_thw, merge: int = 2, seed: int = 0) -> np.ndarray:
    """A prompt: text, then for each image <start> image-tokens <end> text. `text_lens` has
    len(grid_thw) + 1 entries (text before, between and after the images)."""
    rng = np.random.default_rng(seed)
    pieces = [rng.integers(3, 290, size=text_lens[0])]
    for (t, h, w), n_after in zip(grid_thw, text_lens[1:]):
        n = t * (h // merge) * (w // merge)
        pieces += [[VISION_START], [IMAGE_TOKEN] * n, [VISION_END], rng.integers(3, 290, size=n_after)]
    return np.concatenate([np.asarray(p, np.int64) for p in pieces])
