"""A tiny GGUF file written the way llama.cpp's converter writes a Llama: llama.* metadata,
q/k rows interleaved for its rotary layout, GGUF tensor names, some tensors quantised (Q8_0,
Q4_1), and a byte-level BPE tokenizer (the offline tiny Qwen2 tokenizer) with a ChatML
template. No downloads; torch only to make the random reference model.

    gguf_path, torch_model = write_tiny_gguf(tmp_path)
"""

from __future__ import annotations

import json
import pathlib

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
