"""LLaVA-1.5 as a `models.family.ModelFamily`: fixed-size square photos (no static image
layout), plain 1-D positions, boxes as 0-1 coordinates of the padded square."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import jax
import numpy as np
from flax import nnx

from rmpl_jax.m2e2.boxes import BoxCodec
from rmpl_jax.models.decoder import DECODER_PROJECTIONS
from rmpl_jax.models.inputs import select_inputs
from rmpl_jax.models.llava.boxes import LlavaBoxes
from rmpl_jax.models.llava.config import LlavaConfig
from rmpl_jax.models.llava.model import Llava, abstract_model, build
from rmpl_jax.models.llava.params import export_hf, load_hf
from rmpl_jax.models.llava.processor import LlavaProcessor


class LlavaFamily:
    """transformers' `LlavaForConditionalGeneration` (CLIP ViT + projector + Llama)."""

    name = "llava"
    default_lora_targets = DECODER_PROJECTIONS  # the LM's projections; tower and projector stay frozen
    image_keys = LlavaProcessor.image_keys
    static_batch_keys = ()
    batch_logical_axes = MappingProxyType({})  # pixel_values [n, C, S, S]: one photo per example

    def config_from_hf(self, hf: Mapping[str, Any], **options) -> LlavaConfig:
        return LlavaConfig.from_hf(dict(hf), **options)

    def build(self, config: LlavaConfig, dtype=None, rngs: nnx.Rngs | None = None, **options) -> Llava:
        return build(config, dtype, rngs, **options)

    def abstract_model(self, config: LlavaConfig) -> Llava:
        return abstract_model(config)

    def load_hf(self, hf_dir, dtype=None, shardings=None, *, strict=True, report=None, **options) -> Llava:
        return load_hf(hf_dir, dtype, shardings, strict=strict, report=report, **options)

    def export_hf(self, model: Llava, out_dir, dtype=None):
        return export_hf(model, out_dir, dtype)

    def processor(self, hf_dir) -> LlavaProcessor:
        return LlavaProcessor.from_dir(hf_dir)

    def has_vision(self, config: LlavaConfig) -> bool:
        return True

    def box_codec(self, config: LlavaConfig, image_side: int | None) -> BoxCodec:
        """0-1 with two decimals, relative to the padded square (a training square is its own)."""
        return LlavaBoxes()

    def model_inputs(self, batch) -> dict:
        return select_inputs(batch, self.image_keys, self.name)

    def prompt_positions(self, config: LlavaConfig, input_ids, attention_mask, images=None):
        """[B, T] positions (real tokens before each, 0 on padding; image tokens count as
        tokens) and each row's length."""
        valid = np.asarray(attention_mask).astype(np.int32)
        return (np.cumsum(valid, axis=1) - 1) * valid, valid.sum(axis=1)

    def decode_positions(self, positions: jax.Array) -> jax.Array:
        return positions[:, None]

    def image_features(self, model: Llava, images) -> jax.Array:
        return model.image_features(images["pixel_values"])


LLAVA = LlavaFamily()
