"""Tiny GGUF files written the way llama.cpp's converter writes them. No downloads; torch only
to make the random reference models.

- `write_tiny_gguf`: a Llama — llama.* metadata, q/k rows interleaved for its rotary layout,
  some tensors quantised (Q8_0, Q4_1), a byte-level BPE tokenizer (the offline tiny Qwen2
  tokenizer) with a ChatML template;
- `write_tiny_gemma3_gguf`: a Gemma 3 text model — gemma3.* metadata (7 layers so the 6th is
  global, sliding window 8), norm weights stored plus one, q/k rows as HF has them, Q8_0 / Q5_0 /
  F16 / F32 tensors, and a Gemma-style SentencePiece-BPE vocabulary (control, user-defined and
  `<0xNN>` byte pieces, whitespace runs spelled with real spaces, scores falling with the
  position) trained on a few sentences, with no chat template (as Gemma 3 270M's file).

    gguf_path, torch_model = write_tiny_gguf(tmp_path)
    gguf_path, torch_model = write_tiny_gemma3_gguf(tmp_path)
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import numpy as np

# GGUF block-tensor names of the HF Llama projections, and their GGUF type in the tiny file.
_BLOCK = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def llama_cpp_permute(weight: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's q/k row order: each head's two rotary halves interleaved row by row."""
    return (
        weight.reshape(n_head, 2, weight.shape[0] // n_head // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def gguf_name(hf_name: str) -> str:
    if hf_name == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf_name == "model.norm.weight":
        return "output_norm.weight"
    if hf_name == "lm_head.weight":
        return "output.weight"
    _, _, layer, rest = hf_name.split(".", 3)
    return f"blk.{layer}.{_BLOCK[rest]}"


def write_tiny_gguf(tmp_path, *, tied: bool = False, seed: int = 0):
    """(path of the .gguf, the torch LlamaForCausalLM it holds before quantisation)."""
    import gguf
    import torch
    import transformers
    from gguf.quants import quantize

    from tests.testing.hf_tiny_llama import CHATML, tiny_llama_config
    from tests.testing.tiny_tokenizer import make_tiny_tokenizer

    tok = make_tiny_tokenizer()
    vocab = tok.get_vocab()
    tokens = [None] * (max(vocab.values()) + 1)
    for piece, i in vocab.items():
        tokens[i] = piece
    tokens = [t if t is not None else f"[PAD{i}]" for i, t in enumerate(tokens)]  # ids without a piece
    # Row lengths multiple of 32: the Q8_0 and Q4_1 block size.
    cfg = tiny_llama_config("gqa", vocab_size=len(tokens), tie_word_embeddings=tied, intermediate_size=128)
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**cfg)).eval()
    heads, kv_heads = cfg["num_attention_heads"], cfg["num_key_value_heads"]

    path = pathlib.Path(tmp_path) / f"tiny-{'tied' if tied else 'untied'}.gguf"
    path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_context_length(256)
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_rope_dimension_count(cfg["hidden_size"] // heads)
    w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    special = set(tok.all_special_ids) | {i for i, t in enumerate(tokens) if t.startswith("<|")}
    w.add_token_types([gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL for i in range(len(tokens))])
    w.add_token_merges([" ".join(m) for m in _merges(tok)])
    w.add_bos_token_id(vocab["<|endoftext|>"])
    w.add_eos_token_id(vocab["<|im_end|>"])
    w.add_pad_token_id(vocab["<|endoftext|>"])
    w.add_add_bos_token(False)
    w.add_chat_template(CHATML)
    for name, param in model.state_dict().items():
        if tied and name == "lm_head.weight":
            continue
        value = param.detach().numpy().astype(np.float32)
        if name.endswith("q_proj.weight"):
            value = llama_cpp_permute(value, heads)
        elif name.endswith("k_proj.weight"):
            value = llama_cpp_permute(value, kv_heads)
        if value.ndim == 2 and name.endswith(("q_proj.weight", "gate_proj.weight", "up_proj.weight")):
            qtype = gguf.GGMLQuantizationType.Q4_1
        elif value.ndim == 2 and name != "model.embed_tokens.weight":
            qtype = gguf.GGMLQuantizationType.Q8_0
        else:
            qtype = gguf.GGMLQuantizationType.F32
        data = value if qtype == gguf.GGMLQuantizationType.F32 else quantize(value, qtype)
        w.add_tensor(gguf_name(name), data, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path, model


def _merges(tokenizer) -> list[tuple[str, str]]:
    model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    return [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]


# HF Gemma3ForCausalLM names -> GGUF block names (llama.cpp's tensor map for gemma3).
_GEMMA3_BLOCK = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "post_attention_norm.weight",
    "pre_feedforward_layernorm.weight": "ffn_norm.weight",
    "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_norm.weight": "attn_q_norm.weight",
    "self_attn.k_norm.weight": "attn_k_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}

# Text the tiny Gemma vocabulary is trained on (its merges), and the chat words.
GEMMA_CORPUS = [
    "Police arrested the protesters near the parliament building on Monday.",
    "Troops fired at the convoy, killing 12 people in 2024.",
    "The minister met the envoy in the capital and they discussed the attack.",
    "Rescue workers searched the rubble after the earthquake struck the town.",
    "Who met whom? The president met the prime minister at the summit.",
    "user model system assistant question answer event argument",
]
# Ids as in Gemma's vocabulary where it has them (pad 0, eos 1, bos 2, unk 3, mask 4).
_GEMMA_LEAD = [
    ("<pad>", "CONTROL"),
    ("<eos>", "CONTROL"),
    ("<bos>", "CONTROL"),
    ("<unk>", "CONTROL"),
    ("<mask>", "CONTROL"),
    ("[multimodal]", "USER_DEFINED"),
    ("<start_of_turn>", "CONTROL"),
    ("<end_of_turn>", "CONTROL"),
    ("\n", "USER_DEFINED"),
    ("\n\n", "USER_DEFINED"),
    ("<start_of_image>", "USER_DEFINED"),
    ("  ", "NORMAL"),  # whitespace runs: real spaces in Gemma's GGUF files
    ("   ", "NORMAL"),
]
TINY_GEMMA3 = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=7,
    num_attention_heads=2,
    num_key_value_heads=1,
    head_dim=32,
    sliding_window=8,
    query_pre_attn_scalar=32,  # what llama.cpp uses: head_dim
    max_position_embeddings=256,
    rms_norm_eps=1e-6,
    initializer_range=0.1,
)


def tiny_gemma_vocab() -> tuple[list[str], list[float], list[str]]:
    """(tokens, scores, GGUF token types) of a Gemma-style SentencePiece-BPE vocabulary: the
    special pieces, the 256 byte pieces, BPE pieces in merge order, then single characters."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    trainer = trainers.BpeTrainer(vocab_size=360, min_frequency=1, show_progress=False)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="never")
    bpe.train_from_iterator(GEMMA_CORPUS, trainer)
    model = json.loads(bpe.to_str())["model"]
    merged = ["".join(m) if isinstance(m, list) else m.replace(" ", "") for m in model["merges"]]
    chars = sorted((t for t in model["vocab"] if len(t) == 1), key=model["vocab"].get)
    tokens = [t for t, _ in _GEMMA_LEAD] + [f"<0x{b:02X}>" for b in range(256)]
    types = [k for _, k in _GEMMA_LEAD] + ["BYTE"] * 256
    scores = [-1000.0] * len(_GEMMA_LEAD) + [0.0] * 256
    for i, piece in enumerate(dict.fromkeys(t for t in merged + chars if t not in tokens)):
        tokens.append(piece)
        types.append("NORMAL")
        scores.append(-float(i))
    return tokens, scores, types


def write_tiny_gemma3_gguf(
    tmp_path,
    *,
    seed: int = 0,
    name: str = "tiny-gemma3.gguf",
    add_space_prefix: bool = False,
    rope_scaling_factor: float | None = None,
    extra: dict[str, Any] | None = None,
    raw_types: dict[str, Any] | None = None,
):
    """(path of the .gguf, the torch Gemma3ForCausalLM it holds before quantisation). Norms
    are random (not Gemma's zeros) so a missing or doubled +1 shows; `extra` adds metadata;
    `raw_types` ({GGUF name: GGMLQuantizationType}) stores those tensors as zero blocks of
    that type instead."""
    import gguf
    import torch
    import transformers
    from gguf.quants import quantize

    tokens, scores, types = tiny_gemma_vocab()
    config = transformers.Gemma3TextConfig(vocab_size=len(tokens), **TINY_GEMMA3)
    torch.manual_seed(seed)
    model = transformers.Gemma3ForCausalLM(config).eval()
    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed + 1)
        for param_name, p in model.named_parameters():
            if "norm" in param_name:
                p.add_(0.3 * torch.randn(p.shape, generator=gen))

    path = pathlib.Path(tmp_path) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(path), arch="gemma3")
    w.add_context_length(config.max_position_embeddings)
    w.add_embedding_length(config.hidden_size)
    w.add_block_count(config.num_hidden_layers)
    w.add_feed_forward_length(config.intermediate_size)
    w.add_head_count(config.num_attention_heads)
    w.add_head_count_kv(config.num_key_value_heads)
    w.add_layer_norm_rms_eps(config.rms_norm_eps)
    w.add_key_length(config.head_dim)
    w.add_value_length(config.head_dim)
    w.add_rope_freq_base(config.rope_parameters["full_attention"]["rope_theta"])
    w.add_sliding_window(config.sliding_window)
    if rope_scaling_factor is not None:
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(rope_scaling_factor)
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types([gguf.TokenType[k] for k in types])
    w.add_bos_token_id(2)
    w.add_eos_token_id(1)
    w.add_unk_token_id(3)
    w.add_pad_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(add_space_prefix)
    for key, value in (extra or {}).items():
        {bool: w.add_bool, int: w.add_uint32, float: w.add_float32, str: w.add_string}[type(value)](key, value)
    for hf_name, param in model.state_dict().items():
        if hf_name == "lm_head.weight":  # tied: llama.cpp writes no output tensor
            continue
        value = param.detach().numpy().astype(np.float32)
        if hf_name.endswith("norm.weight"):
            value = value + np.float32(1.0)  # llama.cpp's Gemma3Model.norm_shift
        if value.ndim == 1:
            qtype = gguf.GGMLQuantizationType.F32
        elif hf_name.endswith(("q_proj.weight", "k_proj.weight", "gate_proj.weight", "up_proj.weight")):
            qtype = gguf.GGMLQuantizationType.Q5_0
        elif hf_name.endswith("o_proj.weight"):
            qtype = gguf.GGMLQuantizationType.F16
        else:  # embedding, v_proj, down_proj
            qtype = gguf.GGMLQuantizationType.Q8_0
        data = value if qtype == gguf.GGMLQuantizationType.F32 else quantize(value, qtype)
        gguf_name = gemma3_gguf_name(hf_name)
        if gguf_name in (raw_types or {}):
            qtype = raw_types[gguf_name]
            data = np.zeros(gguf.quant_shape_to_byte_shape(value.shape, qtype), np.uint8)
        w.add_tensor(gguf_name, data, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path, model


def gemma3_gguf_name(hf_name: str) -> str:
    if hf_name == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf_name == "model.norm.weight":
        return "output_norm.weight"
    _, _, layer, rest = hf_name.split(".", 3)
    return f"blk.{layer}.{_GEMMA3_BLOCK[rest]}"
