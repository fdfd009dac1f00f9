"""The model the training-core tests train: the tiny Qwen2.5-VL of tests/models/hf_tiny.py (registry build,
LoRA via `models.lora.apply_lora`), plus batch makers. No weights, no torch."""

from __future__ import annotations

import numpy as np

from rmpl_jax.models import lora
from rmpl_jax.models.family import get_family
from rmpl_jax.train.state import split_model
from tests.testing.hf_tiny import tiny_config_dict, tokens_with_images

VOCAB = 320
MERGER_REGEX = r"^visual/merger/"


def build(with_vision: bool = False, seed: int = 0, lora_rank: int = 4, **options):
    """Random tiny Qwen2.5-VL (hidden 64, 2 layers, 4/2 heads, vocab 320) with LoRA on every
    LM projection. `options` go to the config (e.g. remat_policy='full')."""
    from flax import nnx

    family = get_family("qwen2_5_vl")
    hf = dict(tiny_config_dict("qwen2_5_vl"), model_type="qwen2_5_vl")
    cfg = family.config_from_hf(hf, with_vision=with_vision, **options)
    model = family.build(cfg, rngs=nnx.Rngs(seed))
    lora.apply_lora(model, lora_rank, 2.0 * lora_rank, family.default_lora_targets, rngs=nnx.Rngs(seed + 1))
    return model


def split(model, trainable_regex=None):
    return split_model(model, trainable_regex)


def text_batch(step: int, batch_size: int = 8, length: int = 24, seed: int = 0) -> dict:
    """Right-padded random text batch; the second half of each real sequence is the answer."""
    rng = np.random.default_rng((seed, step))
    ids = rng.integers(3, 290, (batch_size, length)).astype(np.int32)
    lengths = rng.integers(length // 2, length + 1, batch_size)
    pos = np.arange(length)[None]
    attn = (pos < lengths[:, None]).astype(np.int32)
    ids = np.where(attn == 1, ids, 0).astype(np.int32)
    loss_mask = ((pos >= lengths[:, None] // 2) & (attn == 1)).astype(np.int32)
    return {"input_ids": ids, "attention_mask": attn, "loss_mask": loss_mask}


PATCH_DIM = 3 * 2 * 14 * 14  # in_channels * temporal_patch_size * patch_size**2 (hf_tiny)


def image_batch(step: int, seed: int = 0) -> dict:
    """Two examples, one 4x4-patch image each (4 image tokens after 2x2 merge).

    `pixel_values` [32, PATCH_DIM] has no batch axis and `image_grid_thw` is static: pass
    batch_logical_axes={'pixel_values': (None, None)} and static_keys=('image_grid_thw',).
    """
    rng = np.random.default_rng((seed, step, 7))
    grid = np.asarray([[1, 4, 4]], np.int64)
    rows = [tokens_with_images([3, 5], grid, seed=seed * 100 + step * 2 + i) for i in range(2)]
    ids = np.stack(rows).astype(np.int32)
    loss_mask = np.zeros_like(ids)
    loss_mask[:, -4:] = 1
    pixels = rng.normal(size=(2 * 16, PATCH_DIM)).astype(np.float32)
    return {
        "input_ids": ids,
        "loss_mask": loss_mask,
        "pixel_values": pixels,
        "image_grid_thw": np.concatenate([grid, grid]),
    }
