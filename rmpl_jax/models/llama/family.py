"""Llama as a `models.family.ModelFamily`: text only (no box codec, no image inputs),
plain 1-D positions."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import jax
import numpy as np
from flax import nnx

from rmpl_jax.models.decoder import DECODER_PROJECTIONS
from rmpl_jax.models.inputs import select_inputs
from rmpl_jax.models.llama.config import LlamaConfig
from rmpl_jax.models.llama.model import Llama, abstract_model, build
from rmpl_jax.models.llama.params import export_hf, load_hf
from rmpl_jax.models.llama.processor import TextProcessor


class LlamaFamily:
    """transformers' `LlamaForCausalLM` (SmolLM2, Vicuna, Llama 2/3 and GGUF conversions)."""

    name = "llama"
    default_lora_targets = DECODER_PROJECTIONS
    image_keys = TextProcessor.image_keys
    static_batch_keys = ()
    batch_logical_axes = MappingProxyType({})

    def config_from_hf(self, hf: Mapping[str, Any], **options) -> LlamaConfig:
        return LlamaConfig.from_hf(dict(hf), **options)

    def build(self, config: LlamaConfig, dtype=None, rngs: nnx.Rngs | None = None, **options) -> Llama:
        return build(config, dtype, rngs, **options)

    def abstract_model(self, config: LlamaConfig) -> Llama:
        return abstract_model(config)

    def load_hf(self, hf_dir, dtype=None, shardings=None, *, strict=True, report=None, **options) -> Llama:
        return load_hf(hf_dir, dtype, shardings, strict=strict, report=report, **options)

    def export_hf(self, model: Llama, out_dir, dtype=None):
        return export_hf(model, out_dir, dtype)

    def processor(self, hf_dir) -> TextProcessor:
        return TextProcessor.from_dir(hf_dir)

    def has_vision(self, config: LlamaConfig) -> bool:
        return False

    def box_codec(self, config: LlamaConfig, image_side: int | None) -> None:
        return None

    def model_inputs(self, batch) -> dict:
        return select_inputs(batch, self.image_keys, self.name)

    def prompt_positions(self, config: LlamaConfig, input_ids, attention_mask, images=None):
        """[B, T] positions (real tokens before each, 0 on padding) and each row's length."""
        if images:
            raise ValueError(f"a text-only {self.name} model got image inputs {sorted(images)}")
        valid = np.asarray(attention_mask).astype(np.int32)
        return (np.cumsum(valid, axis=1) - 1) * valid, valid.sum(axis=1)

    def decode_positions(self, positions: jax.Array) -> jax.Array:
        return positions[:, None]

    def image_features(self, model: Llama, images) -> jax.Array:
        raise ValueError(f"a text-only {self.name} model takes no images")


LLAMA = LlamaFamily()
