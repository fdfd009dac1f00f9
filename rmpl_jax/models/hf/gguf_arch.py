"""What the GGUF import needs to know about one llama.cpp architecture: its HF config, its
tensor names, and how llama.cpp changed the tensors it wrote (which the import undoes)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rmpl_jax.models.hf.gguf_metadata import GGUFError, Metadata

# (metadata, the file's tensor names, vocabulary size) -> HF config.json.
ConfigFn = Callable[[Metadata, set[str], int], dict[str, Any]]
# (HF name, dequantised float32 tensor in HF shape, HF config) -> the tensor HF expects.
TransformFn = Callable[[str, np.ndarray, dict[str, Any]], np.ndarray]


@dataclasses.dataclass(frozen=True)
class Architecture:
    """One `general.architecture`: config builder, GGUF -> HF tensor names (per block `blk.N.`
    and top level), the per-tensor fix-up, the `tokenizer.ggml.model` kinds it comes with, the
    chat template for files that carry none, and the control token that ends a chat turn (also
    a stop token for generation, as llama.cpp treats it) where the family has one."""

    name: str
    config: ConfigFn
    block_names: dict[str, str]
    top_names: dict[str, str]
    transform: TransformFn
    tokenizer_models: tuple[str, ...]
    default_chat_template: str | None = None
    end_of_turn: str | None = None

    def hf_name(self, name: str, path: Path) -> str:
        if name in self.top_names:
            return self.top_names[name]
        m = re.fullmatch(r"blk\.(\d+)\.(.+)", name)
        if m is None or m[2] not in self.block_names:
            raise GGUFError(f"{path}: tensor {name!r} has no HF name (unsupported for the {self.name} architecture)")
        return f"model.layers.{m[1]}.{self.block_names[m[2]]}"
