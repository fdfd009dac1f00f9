"""GGUF (llama.cpp) -> Hugging Face directory: config.json, safetensors, tokenizer files and
the chat template, all from the GGUF file, which transformers (and, for Llama,
`--config.model.hf_dir`) load.

    report = convert_gguf("SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2-hf")
    report = convert_gguf("gemma-3-270m-q4_k_m.gguf", "gemma3-270m-hf")

Supported architectures (one module each, see `ARCHITECTURES`):
- `llama` (`gguf_llama.py`) -> LlamaForCausalLM, with a byte-level BPE tokenizer
  (`tokenizer.ggml.model` = `gpt2`, pre-tokenizer `default`/`gpt2`, `smollm` or `llama-bpe`);
- `gemma3` (`gguf_gemma3.py`) -> Gemma3ForCausalLM (`gemma3_text`), with Gemma's
  SentencePiece-BPE tokenizer (`tokenizer.ggml.model` = `llama`) and Gemma's chat template when
  the file has none.
Tensors are dequantised by the `gguf` package (numpy; every type its `dequantize` covers — see
`supported_tensor_types()`), then what llama.cpp's converter changed is undone per architecture
(Llama: q/k rows interleaved; Gemma 3: norm weights stored plus one). The file is memory-mapped
and read one tensor at a time. Anything else — another architecture or tokenizer model, a key
or tensor the architecture's module does not know, an unknown quantisation — is an error naming
the file and the key. GGUF holds no pickle, and none is ever loaded.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path

import ml_dtypes
import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader
from gguf.quants import dequantize

from rmpl_jax.models.hf.gguf_arch import Architecture
from rmpl_jax.models.hf.gguf_gemma3 import GEMMA3
from rmpl_jax.models.hf.gguf_llama import LLAMA, llama_config, unpermute_rows
from rmpl_jax.models.hf.gguf_metadata import GGUFError, Metadata
from rmpl_jax.models.hf.gguf_tokenizer import PRE_TOKENIZERS, build_tokenizer, byte_level_tokenizer
from rmpl_jax.models.hf.safetensors_io import save_safetensors

__all__ = [
    "ARCHITECTURES",
    "DTYPES",
    "PRE_TOKENIZERS",
    "SUPPORTED_ARCHITECTURES",
    "ConvertReport",
    "GGUFError",
    "byte_level_tokenizer",
    "convert_gguf",
    "hf_tensors",
    "llama_config",
    "supported_tensor_types",
    "unpermute_rows",
]

ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (LLAMA, GEMMA3)}
SUPPORTED_ARCHITECTURES = tuple(ARCHITECTURES)


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


def hf_tensors(
    reader: GGUFReader, arch: Architecture, config: dict, path: Path, dtype=np.float32
) -> Iterator[tuple[str, np.ndarray]]:
    """(HF name, tensor) one at a time: dequantised to float32, in HF's shape, what llama.cpp
    changed undone (`arch.transform`), then cast to dtype."""
    for tensor in reader.tensors:
        name = arch.hf_name(tensor.name, path)
        try:
            value = dequantize(tensor.data, tensor.tensor_type)
        except NotImplementedError as err:
            raise GGUFError(f"{path}: tensor {tensor.name!r}: {err}") from err
        value = np.asarray(value, np.float32).reshape([int(d) for d in reversed(tensor.shape)])
        yield name, arch.transform(name, value, config).astype(dtype)


def _generation_config(config: dict, arch: Architecture, tokenizer) -> dict:
    generation = {k: config[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id") if k in config}
    turn_end = tokenizer.convert_tokens_to_ids(arch.end_of_turn) if arch.end_of_turn else None
    if turn_end is not None and turn_end != tokenizer.unk_token_id and "eos_token_id" in generation:
        # A chat reply ends with the end-of-turn token: stop there too (llama.cpp's end-of-generation set).
        generation["eos_token_id"] = list(dict.fromkeys([generation["eos_token_id"], turn_end]))
    return generation


def convert_gguf(gguf_path: str | Path, out_dir: str | Path, *, dtype: str = "float32") -> ConvertReport:
    """Writes an HF directory for a GGUF file (see the module docstring); returns the report."""
    start = time.perf_counter()
    path = Path(gguf_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such GGUF file")
    reader = GGUFReader(str(path))
    meta = Metadata(reader, path)
    name = meta.get("general.architecture")
    if name not in ARCHITECTURES:
        raise GGUFError(f"{path}: general.architecture {name!r} is not supported ({SUPPORTED_ARCHITECTURES})")
    arch = ARCHITECTURES[name]
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {sorted(DTYPES)}")
    names = {t.name for t in reader.tensors}
    embed = next((t for t in reader.tensors if t.name == "token_embd.weight"), None)
    if embed is None:
        raise GGUFError(f"{path}: no tensor 'token_embd.weight'")
    config = arch.config(meta, names, int(embed.shape[-1]))  # GGUF shapes list the row length first
    tokenizer = build_tokenizer(meta, arch.tokenizer_models, arch.default_chat_template)
    dequantisable = set(supported_tensor_types())
    for tensor in reader.tensors:  # every tensor named and readable before anything is written
        arch.hf_name(tensor.name, path)
        if tensor.tensor_type.name not in dequantisable:
            raise GGUFError(
                f"{path}: tensor {tensor.name!r} is {tensor.tensor_type.name}, which the gguf package "
                f"cannot dequantise (supported: {', '.join(sorted(dequantisable))})"
            )
    config["torch_dtype"] = config["dtype"] = dtype
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_safetensors(hf_tensors(reader, arch, config, path, DTYPES[dtype]), out)
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    generation = _generation_config(config, arch, tokenizer)
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    tokenizer.save_pretrained(str(out))
    counts = collections.Counter(t.tensor_type.name for t in reader.tensors)
    return ConvertReport(
        architecture=name,
        tensors=len(reader.tensors),
        tensor_types=dict(counts),
        files=sorted(p.name for p in out.iterdir()),
        seconds=round(time.perf_counter() - start, 2),
    )
