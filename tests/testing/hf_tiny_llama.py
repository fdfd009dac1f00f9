"""Tiny random transformers `LlamaForCausalLM` models (torch CPU, float32) saved with
`save_pretrained`: the reference for Llama parity tests. No weights are downloaded.

    hf_dir, torch_model = make_tiny_llama(tmp_path, "gqa")   # or any key of VARIANTS
    hf_dir = tiny_llama_chat_dir(tmp_path)                   # + byte-level tokenizer, ChatML
"""

from __future__ import annotations

import copy
import pathlib

VOCAB = 320

BASE = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    intermediate_size=112,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    rms_norm_eps=1e-5,
    initializer_range=0.1,
    rope_theta=10000.0,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
    tie_word_embeddings=False,
)

# What each variant exercises: GQA, tied embeddings, attention and MLP biases, a head_dim that
# is not hidden/heads, and the two scaled rotary types.
VARIANTS = {
    "gqa": {},
    "tied_mha": dict(num_key_value_heads=4, tie_word_embeddings=True),
    "bias": dict(attention_bias=True, mlp_bias=True),
    "head_dim": dict(head_dim=32, num_key_value_heads=1),  # MQA, head_dim 32 != 64 / 4
    "llama3_rope": dict(
        rope_parameters=dict(
            rope_type="llama3",
            rope_theta=500000.0,
            factor=8.0,
            low_freq_factor=1.0,
            high_freq_factor=4.0,
            original_max_position_embeddings=16,
        )
    ),
    "linear_rope": dict(rope_parameters=dict(rope_type="linear", rope_theta=10000.0, factor=2.0)),
}


def tiny_llama_config(variant: str = "gqa", **overrides) -> dict:
    """LlamaConfig kwargs of a variant (hidden 64, 2 layers, vocab 320); overrides replace keys."""
    cfg = dict(copy.deepcopy(BASE), **copy.deepcopy(VARIANTS[variant]))
    cfg.update(overrides)
    if "rope_parameters" in cfg:
        cfg.pop("rope_theta")
    return cfg


def make_tiny_llama(tmp_path, variant: str = "gqa", seed: int = 0, **overrides):
    """Builds a random tiny Llama, saves it to `tmp_path/<variant>` and returns (hf_dir,
    torch_model) in eval mode, float32, eager attention. Norms and biases are random too, so
    a wrong mapping of them shows in the logits."""
    import torch
    import transformers

    config = transformers.LlamaConfig(**tiny_llama_config(variant, **overrides))
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(config).eval().to(torch.float32)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed + 1)
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
    hf_dir = pathlib.Path(tmp_path) / variant
    model.save_pretrained(hf_dir)
    return hf_dir, model


CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def tiny_llama_chat_dir(tmp_path, variant: str = "gqa"):
    """A tiny Llama directory a run can use as `model.hf_dir`: weights, the offline byte-level
    tokenizer (tests/testing/tiny_tokenizer.py) and a ChatML chat template in its config."""
    from tests.testing.tiny_tokenizer import make_tiny_tokenizer

    hf_dir, _ = make_tiny_llama(tmp_path, variant)
    tokenizer = make_tiny_tokenizer()
    tokenizer.chat_template = CHATML
    tokenizer.save_pretrained(str(hf_dir))
    return hf_dir
