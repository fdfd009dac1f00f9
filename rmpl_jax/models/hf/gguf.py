"""GGUF (llama.cpp) -> Hugging Face directory: config.json, safetensors, tokenizer files and
the chat template, all from the GGUF file, which transformers and `--config.model.hf_dir` load.

    report = convert_gguf("SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2-hf")

Supported: architecture `llama` (GQA, tied or separate output, q/k/v/o biases, `linear`
rotary scaling) with a byte-level BPE tokenizer (`tokenizer.ggml.model` = `gpt2`) whose
pre-tokenizer is `default`/`gpt2`, `smollm` or `llama-bpe` (Llama 3). Tensors are
dequantised by the `gguf` package (numpy; every type its `dequantize` covers — see
`supported_tensor_types()`), then llama.cpp's interleaving of the q/k rows for its rotary
layout is undone. The file is memory-mapped and read one tensor at a time. Anything else —
another architecture or tokenizer model, precomputed `rope_freqs`, an unknown quantisation —
is an error naming the file and the key. GGUF holds no pickle, and none is ever loaded.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader, TokenType
from gguf.quants import dequantize
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from rmpl_jax.models.hf.safetensors_io import save_safetensors

SUPPORTED_ARCHITECTURES = ("llama",)

# Text splits before byte-level BPE, by `tokenizer.ggml.pre` (llama.cpp's pre-tokenizer types).
_GPT2 = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
PRE_TOKENIZERS = {
    "default": lambda: _GPT2,
    "gpt2": lambda: _GPT2,
    "smollm": lambda: pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), _GPT2]),
    "llama-bpe": lambda: pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_LLAMA3_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    ),
}

# GGUF tensor names (per block `blk.N.`) -> HF LlamaForCausalLM names.
_BLOCK_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.bias": "self_attn.v_proj.bias",
    "attn_output.bias": "self_attn.o_proj.bias",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
_TOP_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}


class GGUFError(ValueError):
    """A GGUF file this converter cannot turn into an HF directory (names file and key)."""


@dataclasses.dataclass
class ConvertReport:
    """What a conversion wrote: tensors per GGUF type, the files, and the seconds it took."""

    architecture: str
    tensors: int
    tensor_types: dict[str, int]
    files: list[str]
    seconds: float


DTYPES = {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}


def supported_tensor_types() -> list[str]:
    """The GGUF tensor types the installed `gguf` package dequantises (tried on one block)."""
    out = []
    for qtype, (_, block_bytes) in GGML_QUANT_SIZES.items():
        try:
            dequantize(np.zeros((1, block_bytes), np.uint8), qtype)
        except NotImplementedError:
            continue
        out.append(GGMLQuantizationType(qtype).name)
    return out


class _Metadata:
    """Typed access to a GGUF file's key/value fields, errors naming the file and the key."""

    def __init__(self, reader: GGUFReader, path: Path):
        self.fields, self.path = reader.fields, path

    def get(self, key: str, default: Any = KeyError) -> Any:
        field = self.fields.get(key)
        if field is None:
            if default is KeyError:
                raise GGUFError(f"{self.path}: metadata key {key!r} missing")
            return default
        return field.contents()


def unpermute_rows(weight: np.ndarray, n_head: int) -> np.ndarray:
    """Undoes llama.cpp's q/k row order: per head it stores the rotary pairs interleaved
    (rows 0, hd/2, 1, hd/2+1, ...); HF keeps each head's two halves in blocks."""
    rows = weight.shape[0]
    if rows % (2 * n_head):
        raise GGUFError(f"{rows} rows do not split into {n_head} heads of rotary pairs")
    per_pair = rows // n_head // 2
    return weight.reshape(n_head, per_pair, 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def llama_config(meta: _Metadata, tensor_names: set[str], vocab_size: int) -> dict[str, Any]:
    """The HF LlamaForCausalLM config.json of a `llama` GGUF file."""
    a = "llama."
    heads = int(meta.get(a + "attention.head_count"))
    hidden = int(meta.get(a + "embedding_length"))
    head_dim = int(meta.get(a + "attention.key_length", hidden // heads))
    if int(meta.get(a + "rope.dimension_count", head_dim)) != head_dim:
        raise GGUFError(f"{meta.path}: {a}rope.dimension_count != head_dim {head_dim} (partial rotary)")
    if "rope_freqs.weight" in tensor_names:
        raise GGUFError(f"{meta.path}: tensor 'rope_freqs.weight' (per-frequency rotary factors) is not supported")
    rope: dict[str, Any] = {"rope_type": "default", "rope_theta": float(meta.get(a + "rope.freq_base", 10000.0))}
    scaling = meta.get(a + "rope.scaling.type", "none")
    if scaling == "linear":
        rope.update(rope_type="linear", factor=float(meta.get(a + "rope.scaling.factor")))
    elif scaling != "none":
        raise GGUFError(f"{meta.path}: {a}rope.scaling.type {scaling!r} is not supported (none, linear)")
    t = "tokenizer.ggml."
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": vocab_size,
        "hidden_size": hidden,
        "intermediate_size": int(meta.get(a + "feed_forward_length")),
        "num_hidden_layers": int(meta.get(a + "block_count")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(meta.get(a + "attention.head_count_kv", heads)),
        "head_dim": head_dim,
        "rms_norm_eps": float(meta.get(a + "attention.layer_norm_rms_epsilon")),
        "max_position_embeddings": int(meta.get(a + "context_length", 2048)),
        "hidden_act": "silu",
        "rope_parameters": rope,
        "attention_bias": "blk.0.attn_q.bias" in tensor_names,
        "mlp_bias": False,
        "tie_word_embeddings": "output.weight" not in tensor_names,
        "bos_token_id": meta.get(t + "bos_token_id", None),
        "eos_token_id": meta.get(t + "eos_token_id", None),
        "pad_token_id": meta.get(t + "padding_token_id", None),
    }
    return {k: v for k, v in config.items() if v is not None}


def _hf_name(name: str, path: Path) -> str:
    if name in _TOP_NAMES:
        return _TOP_NAMES[name]
    m = re.fullmatch(r"blk\.(\d+)\.(.+)", name)
    if m is None or m[2] not in _BLOCK_NAMES:
        raise GGUFError(f"{path}: tensor {name!r} has no HF name (unsupported for the llama architecture)")
    return f"model.layers.{m[1]}.{_BLOCK_NAMES[m[2]]}"


def hf_tensors(reader: GGUFReader, config: dict, path: Path, dtype=np.float32) -> Iterator[tuple[str, np.ndarray]]:
    """(HF name, tensor) one at a time: dequantised, q/k rows back in HF order, cast to dtype."""
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    for tensor in reader.tensors:
        name = _hf_name(tensor.name, path)
        try:
            value = dequantize(tensor.data, tensor.tensor_type)
        except NotImplementedError as err:
            raise GGUFError(f"{path}: tensor {tensor.name!r}: {err}") from err
        value = np.asarray(value, np.float32).reshape([int(d) for d in reversed(tensor.shape)])
        if name.endswith(("q_proj.weight", "q_proj.bias")):
            value = unpermute_rows(value, heads)
        elif name.endswith(("k_proj.weight", "k_proj.bias")):
            value = unpermute_rows(value, kv_heads)
        yield name, value.astype(dtype)


def byte_level_tokenizer(meta: _Metadata) -> PreTrainedTokenizerFast:
    """The GGUF byte-level BPE vocabulary as a transformers fast tokenizer: merges and
    pre-tokenizer as llama.cpp uses them, control tokens special, user-defined ones added,
    BOS prepended when `add_bos_token` says so, and the file's chat template."""
    t = "tokenizer.ggml."
    kind = meta.get(t + "model")
    if kind != "gpt2":
        raise GGUFError(f"{meta.path}: {t}model {kind!r} is not supported (only 'gpt2', byte-level BPE)")
    pre = meta.get(t + "pre", "default")
    if pre not in PRE_TOKENIZERS:
        raise GGUFError(f"{meta.path}: {t}pre {pre!r} is not supported ({sorted(PRE_TOKENIZERS)})")
    tokens = list(meta.get(t + "tokens"))
    types = list(meta.get(t + "token_type", [int(TokenType.NORMAL)] * len(tokens)))
    merges = [tuple(m.split(" ", 1)) for m in meta.get(t + "merges")]
    core = Tokenizer(models.BPE(vocab={tok: i for i, tok in enumerate(tokens)}, merges=merges, fuse_unk=False))
    core.pre_tokenizer = PRE_TOKENIZERS[pre]()
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens(
        [AddedToken(tok, normalized=False, special=True) for tok, k in zip(tokens, types) if k == TokenType.CONTROL]
    )
    core.add_tokens(
        [
            AddedToken(tok, normalized=False, special=False)
            for tok, k in zip(tokens, types)
            if k == TokenType.USER_DEFINED
        ]
    )

    def token(key: str) -> str | None:
        index = meta.get(t + key, None)
        return tokens[int(index)] if index is not None else None

    bos = token("bos_token_id")
    if meta.get(t + "add_bos_token", False) and bos is not None:
        core.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tokens.index(bos))]
        )
    else:
        core.post_processor = processors.ByteLevel(trim_offsets=False)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=bos,
        eos_token=token("eos_token_id"),
        unk_token=token("unknown_token_id"),
        pad_token=token("padding_token_id"),
        clean_up_tokenization_spaces=False,
    )
    template = meta.get("tokenizer.chat_template", None)
    if template is not None:
        tokenizer.chat_template = template
    return tokenizer


def convert_gguf(gguf_path: str | Path, out_dir: str | Path, *, dtype: str = "float32") -> ConvertReport:
    """Writes an HF directory for a GGUF file (see the module docstring); returns the report."""
    start = time.perf_counter()
    path = Path(gguf_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such GGUF file")
    reader = GGUFReader(str(path))
    meta = _Metadata(reader, path)
    arch = meta.get("general.architecture")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise GGUFError(f"{path}: general.architecture {arch!r} is not supported ({SUPPORTED_ARCHITECTURES})")
    tokenizer = byte_level_tokenizer(meta)
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {sorted(DTYPES)}")
    names = {t.name for t in reader.tensors}
    embed = next((t for t in reader.tensors if t.name == "token_embd.weight"), None)
    if embed is None:
        raise GGUFError(f"{path}: no tensor 'token_embd.weight'")
    config = llama_config(meta, names, vocab_size=int(embed.shape[-1]))  # GGUF shapes list the row length first
    config["torch_dtype"] = config["dtype"] = dtype
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_safetensors(hf_tensors(reader, config, path, DTYPES[dtype]), out)
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    generation = {k: config[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id") if k in config}
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    tokenizer.save_pretrained(str(out))
    counts = collections.Counter(t.tensor_type.name for t in reader.tensors)
    return ConvertReport(
        architecture=arch,
        tensors=len(reader.tensors),
        tensor_types=dict(counts),
        files=sorted(p.name for p in out.iterdir()),
        seconds=round(time.perf_counter() - start, 2),
    )
