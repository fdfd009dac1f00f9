"""Tiny random transformers `LlavaForConditionalGeneration` models (torch CPU, float32) saved
with `save_pretrained`: the reference for LLaVA parity tests. No weights are downloaded.

    hf_dir, torch_model = make_tiny_llava(tmp_path, "default")   # or any key of VARIANTS
    hf_dir = tiny_llava_chat_dir(tmp_path)                       # + byte-level tokenizer with <image>
"""

from __future__ import annotations

import copy
import pathlib

IMAGE_TOKEN_ID = 304  # the tiny tokenizer's next free id after its specials (300-303)

VISION = dict(
    hidden_size=32,
    intermediate_size=48,
    num_hidden_layers=3,
    num_attention_heads=4,
    image_size=28,
    patch_size=7,
    projection_dim=16,
    hidden_act="quick_gelu",
    initializer_range=0.1,
)
TEXT = dict(
    model_type="llama",
    vocab_size=320,
    hidden_size=64,
    intermediate_size=112,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    rms_norm_eps=1e-5,
    initializer_range=0.1,
    bos_token_id=1,
    eos_token_id=290,
    pad_token_id=0,
)

# What each variant exercises: LLaVA-1.5's own choices (QuickGELU, layer -2, class token
# dropped); exact GELU with the class token kept and two feature layers concatenated, a tied
# LM head with MHA; no projector bias with the tower's last layer.
VARIANTS = {
    "default": {},
    "full_two_layers": dict(
        vision=dict(hidden_act="gelu"), vision_feature_layer=[-3, 1], vision_feature_select_strategy="full"
    ),
    "tied_no_bias": dict(
        text=dict(num_key_value_heads=4, tie_word_embeddings=True),
        multimodal_projector_bias=False,
        vision_feature_layer=-1,
    ),
}


def tiny_llava_config(variant: str = "default", *, vision=None, text=None, **overrides) -> dict:
    """LlavaConfig kwargs of a variant; `vision`/`text` update the sub-configs."""
    spec = copy.deepcopy(VARIANTS[variant])
    vc = dict(VISION, **spec.pop("vision", {}), **(vision or {}))
    tc = dict(TEXT, **spec.pop("text", {}), **(text or {}))
    cfg = dict(
        vision_config=vc,
        text_config=tc,
        image_token_index=IMAGE_TOKEN_ID,
        tie_word_embeddings=tc.get("tie_word_embeddings", False),
        **spec,
    )
    cfg.update(overrides)
    return cfg


def make_tiny_llava(tmp_path, variant: str = "default", seed: int = 0, name: str | None = None, **overrides):
    """Builds a random tiny LLaVA, saves it to `tmp_path/<name or variant>` and returns
    (hf_dir, torch_model) in eval mode, float32, eager attention. Norms, biases and the class
    token are random too, so a wrong mapping of them shows in the logits."""
    import torch
    import transformers

    config = transformers.LlavaConfig(**tiny_llava_config(variant, **overrides))
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = transformers.LlavaForConditionalGeneration(config).eval().to(torch.float32)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed + 1)
        for pname, p in model.named_parameters():
            if pname.endswith("bias") or "norm" in pname or "class_embedding" in pname:
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
    hf_dir = pathlib.Path(tmp_path) / (name or variant)
    model.save_pretrained(hf_dir)
    return hf_dir, model


def tiny_llava_tokenizer():
    """The offline byte-level tokenizer (tests/testing/tiny_tokenizer.py) plus `<image>`."""
    from tests.testing.tiny_tokenizer import make_tiny_tokenizer

    tokenizer = make_tiny_tokenizer({"<image>": IMAGE_TOKEN_ID})
    assert tokenizer.convert_tokens_to_ids("<image>") == IMAGE_TOKEN_ID
    return tokenizer


def tiny_llava_chat_dir(tmp_path, variant: str = "default", **overrides):
    """A tiny LLaVA directory a run can use as `model.hf_dir`: weights and the tokenizer
    (no chat template: the processor's LLaVA-1.5 default applies)."""
    hf_dir, _ = make_tiny_llava(tmp_path, variant, **overrides)
    tiny_llava_tokenizer().save_pretrained(str(hf_dir))
    return hf_dir
