"""Qwen2-VL / Qwen2.5-VL as a `models.family.ModelFamily`: photos as patches with a static
`image_grid_thw` layout, M-RoPE positions, boxes by `boxes.py`."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rmpl_jax.m2e2.boxes import BoxCodec
from rmpl_jax.models.decoder import DECODER_PROJECTIONS
from rmpl_jax.models.inputs import select_inputs
from rmpl_jax.models.qwen2_vl.boxes import default_codec, square_frame_codec
from rmpl_jax.models.qwen2_vl.config import Qwen2VLConfig
from rmpl_jax.models.qwen2_vl.model import Qwen2VL, abstract_model, build
from rmpl_jax.models.qwen2_vl.mrope import check_image_tokens, mrope_position_ids, text_position_ids
from rmpl_jax.models.qwen2_vl.params import export_hf, load_hf
from rmpl_jax.models.qwen2_vl.processor import QwenProcessor


class QwenFamily:
    """Vision tower + Qwen2 LM with M-RoPE. Images enter as patches of the whole batch
    (`pixel_values` [n_patches, dim], no batch axis) with a static `image_grid_thw`."""

    name = "qwen2_vl"
    default_lora_targets = DECODER_PROJECTIONS  # the LM's projections; the vision tower stays frozen
    image_keys = QwenProcessor.image_keys
    static_batch_keys = ("image_grid_thw",)
    # pixel_values: the patches of the batch's images, in example order (no per-example axis)
    batch_logical_axes = MappingProxyType({"pixel_values": ("batch", None)})

    def config_from_hf(self, hf: Mapping[str, Any], **options) -> Qwen2VLConfig:
        return Qwen2VLConfig.from_hf(dict(hf), **options)

    def build(self, config: Qwen2VLConfig, dtype=None, rngs: nnx.Rngs | None = None, **options) -> Qwen2VL:
        return build(config, dtype, rngs, **options)

    def abstract_model(self, config: Qwen2VLConfig) -> Qwen2VL:
        return abstract_model(config)

    def load_hf(self, hf_dir, dtype=None, shardings=None, *, strict=True, report=None, **options) -> Qwen2VL:
        return load_hf(hf_dir, dtype, shardings, strict=strict, report=report, **options)

    def export_hf(self, model: Qwen2VL, out_dir, dtype=None):
        return export_hf(model, out_dir, dtype)

    def processor(self, hf_dir) -> QwenProcessor:
        return QwenProcessor.from_dir(hf_dir)

    def has_vision(self, config: Qwen2VLConfig) -> bool:
        return config.with_vision and config.vision_config is not None

    def box_codec(self, config: Qwen2VLConfig, image_side: int | None) -> BoxCodec:
        """Qwen2-VL: 0-1000 relative; Qwen2.5-VL: pixels of the resized image, whose budget is
        pinned to the training square."""
        if not image_side:
            return default_codec(config.model_type)
        patch = int((config.vision_config or {}).get("patch_size", 14))
        return square_frame_codec(config.model_type, image_side, patch * config.spatial_merge_size)

    def model_inputs(self, batch) -> dict:
        return select_inputs(batch, self.image_keys, self.name)

    def prompt_positions(self, config: Qwen2VLConfig, input_ids, attention_mask, images=None):
        """M-RoPE ids [3, B, T] (HF `get_rope_index`); generated tokens continue at the row's
        largest position + 1 on all three axes."""
        ids, mask = np.asarray(input_ids), np.asarray(attention_mask)
        if not images:
            return text_position_ids(mask, *ids.shape), mask.sum(1)
        image_grid = _grid(images)
        merge = config.spatial_merge_size
        check_image_tokens(ids, mask, image_grid, image_token_id=config.image_token_id, spatial_merge_size=merge)
        positions, deltas = mrope_position_ids(
            ids, mask, image_grid, image_token_id=config.image_token_id, spatial_merge_size=merge
        )
        return positions, deltas[:, 0] + mask.sum(1)

    def decode_positions(self, positions: jax.Array) -> jax.Array:
        return jnp.broadcast_to(positions[None, :, None], (3, positions.shape[0], 1))

    def image_features(self, model: Qwen2VL, images) -> jax.Array:
        return model.image_features(images["pixel_values"], _grid(images))


def _grid(images) -> np.ndarray:
    """The batch's (t, h, w) patches per photo [n, 3]."""
    return np.asarray(images["image_grid_thw"], np.int64).reshape(-1, 3)


QWEN2_VL = QwenFamily()
