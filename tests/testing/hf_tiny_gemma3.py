"""Tiny random transformers Gemma 3 models (torch CPU, float32) saved with `save_pretrained`:
the reference for Gemma 3 parity tests. No weights are downloaded.

    hf_dir, torch_model = make_tiny_gemma3_text(tmp_path, "mqa")   # or any key of TEXT_VARIANTS
    hf_dir, torch_model = make_tiny_gemma3(tmp_path, "default")    # with the SigLIP tower
    config = random_text_config(seed)                              # sizes drawn, not picked
    hf_dir = tiny_gemma3_chat_dir(tmp_path)                        # + tokenizer, Gemma turns
"""

from __future__ import annotations

import copy
import pathlib

import numpy as np

VOCAB = 320
# The tiny tokenizer's free ids after its specials (290-303): Gemma's turn and image tokens.
SPECIALS = {
    "<start_of_turn>": 304,
    "<end_of_turn>": 305,
    "<start_of_image>": 306,
    "<end_of_image>": 307,
    "<image_soft_token>": 308,
}
TEXT = dict(
    vocab_size=VOCAB,
    hidden_size=48,
    intermediate_size=80,
    num_hidden_layers=7,  # layer 6 (index 5) is the full-attention one
    num_attention_heads=4,
    num_key_value_heads=1,
    head_dim=16,
    query_pre_attn_scalar=20,
    sliding_window=6,
    rms_norm_eps=1e-6,
    initializer_range=0.2,
    bos_token_id=2,
    eos_token_id=SPECIALS["<end_of_turn>"],
    pad_token_id=0,
    rope_parameters={
        "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e6},
        "sliding_attention": {"rope_type": "default", "rope_theta": 1e4},
    },
)
# What each text variant exercises: MQA with a linear-scaled global rotary; GQA with an
# explicit layer pattern (two full layers) and a separate LM head; MHA with attention biases.
TEXT_VARIANTS = {
    "mqa": {},
    "gqa_untied": dict(
        num_key_value_heads=2,
        tie_word_embeddings=False,
        num_hidden_layers=4,
        layer_types=["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
    ),
    "mha_bias": dict(num_key_value_heads=4, attention_bias=True, head_dim=12, hidden_size=40),
}
VISION = dict(
    hidden_size=32,
    intermediate_size=48,
    num_hidden_layers=2,
    num_attention_heads=4,
    image_size=28,
    patch_size=7,
    vision_use_head=False,
    layer_norm_eps=1e-6,
)
MULTIMODAL = dict(
    mm_tokens_per_image=4,
    boi_token_index=SPECIALS["<start_of_image>"],
    eoi_token_index=SPECIALS["<end_of_image>"],
    image_token_index=SPECIALS["<image_soft_token>"],
)


def random_text_config(seed: int) -> dict:
    """Gemma3TextConfig kwargs with sizes drawn from `seed`: heads, KV heads, head and hidden
    widths, depth, window, the query scalar and the layer pattern."""
    rng = np.random.default_rng(seed)
    kv = int(rng.choice([1, 2]))
    heads = kv * int(rng.integers(1, 4))
    layers = int(rng.integers(3, 8))
    cfg = dict(
        copy.deepcopy(TEXT),
        hidden_size=heads * int(rng.integers(3, 9)) * 2,  # transformers wants a multiple of the heads
        intermediate_size=int(rng.integers(8, 25)) * 4,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        head_dim=int(rng.integers(2, 7)) * 4,
        query_pre_attn_scalar=int(rng.integers(8, 64)),
        sliding_window=int(rng.integers(3, 9)),
    )
    cfg["sliding_window_pattern"] = int(rng.integers(2, layers + 1))
    return cfg


def _randomise(model, seed: int) -> None:
    """Norms, biases and the projector get random values too (HF inits them to zero), so a
    wrong mapping of any of them shows in the logits."""
    import torch

    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed + 1)
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name or "mm_input_projection" in name:
                p.add_(0.3 * torch.randn(p.shape, generator=gen))


def make_tiny_gemma3_text(tmp_path, variant: str = "mqa", seed: int = 0, config: dict | None = None):
    """A random tiny `Gemma3ForCausalLM` saved to `tmp_path/<variant>`: (hf_dir, torch_model)
    in eval mode, float32, eager attention. `config` replaces the variant's kwargs."""
    import torch
    import transformers

    kwargs = config if config is not None else dict(copy.deepcopy(TEXT), **copy.deepcopy(TEXT_VARIANTS[variant]))
    hf_config = transformers.Gemma3TextConfig(**kwargs)
    hf_config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = transformers.Gemma3ForCausalLM(hf_config).eval().to(torch.float32)
    _randomise(model, seed)
    hf_dir = pathlib.Path(tmp_path) / variant
    model.save_pretrained(hf_dir)
    return hf_dir, model


def make_tiny_gemma3(tmp_path, variant: str = "default", seed: int = 0, *, text: dict | None = None, **vision):
    """A random tiny `Gemma3ForConditionalGeneration` (SigLIP 28-px photos, 16 patches pooled
    to 4 image tokens) saved to `tmp_path/<variant>`: (hf_dir, torch_model)."""
    import torch
    import transformers

    text_kwargs = dict(copy.deepcopy(TEXT), **(text or {}))
    hf_config = transformers.Gemma3Config(text_config=text_kwargs, vision_config=dict(VISION, **vision), **MULTIMODAL)
    hf_config._attn_implementation = "eager"
    hf_config.text_config._attn_implementation = "eager"
    hf_config.vision_config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = transformers.Gemma3ForConditionalGeneration(hf_config).eval().to(torch.float32)
    _randomise(model, seed)
    hf_dir = pathlib.Path(tmp_path) / variant
    model.save_pretrained(hf_dir)
    return hf_dir, model


# Gemma 3's turns for text-only templates (content is one string).
TEXT_TEMPLATE = (
    "{{ bos_token or '' }}{% for m in messages %}{{ '<start_of_turn>' + ('model' if m['role'] == 'assistant' "
    "else m['role']) + '\\n' + m['content'] + '<end_of_turn>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)


def tiny_gemma3_tokenizer():
    """The offline byte-level tokenizer (tests/testing/tiny_tokenizer.py) plus Gemma's turn
    and image tokens."""
    from tests.testing.tiny_tokenizer import make_tiny_tokenizer

    tokenizer = make_tiny_tokenizer(SPECIALS)
    for token, token_id in SPECIALS.items():
        assert tokenizer.convert_tokens_to_ids(token) == token_id
    return tokenizer


def tiny_gemma3_chat_dir(tmp_path, multimodal: bool = False, variant: str | None = None):
    """A tiny Gemma 3 directory a run can use as `model.hf_dir`: weights and the tokenizer;
    text only: a Gemma-turn chat template; multimodal: none (the processor's default)."""
    if multimodal:
        hf_dir, _ = make_tiny_gemma3(tmp_path, variant or "default")
    else:
        hf_dir, _ = make_tiny_gemma3_text(tmp_path, variant or "mqa")
    tokenizer = tiny_gemma3_tokenizer()
    if not multimodal:
        tokenizer.chat_template = TEXT_TEMPLATE
    tokenizer.save_pretrained(str(hf_dir))
    return hf_dir
