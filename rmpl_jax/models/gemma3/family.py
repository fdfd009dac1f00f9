"""Gemma 3 as `models.family.ModelFamily` objects: `gemma3_text` (transformers'
`Gemma3ForCausalLM`, text only, the Llama family's processor and 1-D positions) and `gemma3`
(`Gemma3ForConditionalGeneration`: SigLIP tower, projector, the same language model; photos
of one fixed square size, so no static image layout)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from flax import nnx

from rmpl_jax.m2e2.boxes import BoxCodec
from rmpl_jax.models.gemma3 import params, text_params
from rmpl_jax.models.gemma3.boxes import Gemma3Boxes
from rmpl_jax.models.gemma3.config import Gemma3TextConfig
from rmpl_jax.models.gemma3.model import Gemma3
from rmpl_jax.models.gemma3.multimodal_config import Gemma3Config
from rmpl_jax.models.gemma3.processor import Gemma3Processor
from rmpl_jax.models.gemma3.text_model import Gemma3Text
from rmpl_jax.models.llama.family import LlamaFamily


class Gemma3TextFamily(LlamaFamily):
    """transformers' `Gemma3ForCausalLM` (Gemma 3 270M and 1B, and the GGUF conversions).
    Tokenizer, chat template, positions and decoding hooks are the Llama family's."""

    name = "gemma3_text"

    def config_from_hf(self, hf: Mapping[str, Any], **options) -> Gemma3TextConfig:
        return Gemma3TextConfig.from_hf(dict(hf), **options)

    def build(self, config: Gemma3TextConfig, dtype=None, rngs: nnx.Rngs | None = None, **options) -> Gemma3Text:
        return text_params.build(config, dtype, rngs, **options)

    def abstract_model(self, config: Gemma3TextConfig) -> Gemma3Text:
        return text_params.abstract_model(config)

    def load_hf(self, hf_dir, dtype=None, shardings=None, *, strict=True, report=None, **options) -> Gemma3Text:
        return text_params.load_hf(hf_dir, dtype, shardings, strict=strict, report=report, **options)

    def export_hf(self, model: Gemma3Text, out_dir, dtype=None):
        return text_params.export_hf(model, out_dir, dtype)


class Gemma3Family(Gemma3TextFamily):
    """transformers' `Gemma3ForConditionalGeneration` (Gemma 3 4B, 12B, 27B)."""

    name = "gemma3"
    image_keys = Gemma3Processor.image_keys
    batch_logical_axes = MappingProxyType({})  # pixel_values [n, C, S, S]: one photo per example

    def config_from_hf(self, hf: Mapping[str, Any], **options) -> Gemma3Config:
        return Gemma3Config.from_hf(dict(hf), **options)

    def build(self, config: Gemma3Config, dtype=None, rngs: nnx.Rngs | None = None, **options) -> Gemma3:
        return params.build(config, dtype, rngs, **options)

    def abstract_model(self, config: Gemma3Config) -> Gemma3:
        return params.abstract_model(config)

    def load_hf(self, hf_dir, dtype=None, shardings=None, *, strict=True, report=None, **options) -> Gemma3:
        return params.load_hf(hf_dir, dtype, shardings, strict=strict, report=report, **options)

    def export_hf(self, model: Gemma3, out_dir, dtype=None):
        return params.export_hf(model, out_dir, dtype)

    def processor(self, hf_dir) -> Gemma3Processor:
        return Gemma3Processor.from_dir(hf_dir)

    def has_vision(self, config: Gemma3Config) -> bool:
        return True

    def box_codec(self, config: Gemma3Config, image_side: int | None) -> BoxCodec:
        """Integers 0-1000 relative to the photo (`gemma3/boxes.py`): the processor squashes
        every photo to the tower's square, so the frame is the photo at any size."""
        return Gemma3Boxes()

    def prompt_positions(self, config: Gemma3Config, input_ids, attention_mask, images=None):
        """[B, T] positions (real tokens before each, image tokens included) and each row's length."""
        return super().prompt_positions(config, input_ids, attention_mask)

    def image_features(self, model: Gemma3, images) -> Any:
        return model.image_features(images["pixel_values"])


GEMMA3_TEXT = Gemma3TextFamily()
GEMMA3 = Gemma3Family()
