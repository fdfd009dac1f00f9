"""Tiny random models with tokenizers for decoding tests (no downloads, no weights):

- `tiny_dir`: transformers' tiny Qwen2-VL / Qwen2.5-VL (tests/models/hf_tiny.py, saved with
  weights) plus the offline byte-level Qwen2 tokenizer and chat template
  (tests/tiny_tokenizer.py) -> a directory both transformers and our loader read;
- `demo_dir`: the demo model directory (a BPE tokenizer learned from rendered synthetic
  examples, rmpl_jax/demo_model.py) with a randomly initialised JAX model.
"""

from __future__ import annotations

import functools
import json
import pathlib

from rmpl_jax.data.synthetic import generate_split
from rmpl_jax.m2e2 import render

IMAGE_SIDE = 56  # one 4x4-patch grid: 4 image tokens after the 2x2 merge


@functools.cache
def tiny_dir(root: str, variant: str = "qwen2_5_vl"):
    """(hf_dir, torch_model) with weights, tokenizer, image processor and chat template."""
    from tests.testing.hf_tiny import make_tiny_qwen
    from tests.testing.tiny_tokenizer import save_tiny_processor_files

    hf_dir, torch_model = make_tiny_qwen(root, variant)
    save_tiny_processor_files(hf_dir, min_pixels=IMAGE_SIDE * IMAGE_SIDE, max_pixels=28 * 28 * 16)
    return hf_dir, torch_model


@functools.cache
def synthetic(root: str, docs: int = 6, seed: int = 0):
    """A small synthetic split (sentences, photos on disk, pairs)."""
    return generate_split("dec", docs, pathlib.Path(root) / "images", seed=seed)


@functools.cache
def demo_dir(root: str, vocab_size: int = 600):
    """(hf_dir, random JAX model) of the demo family: BPE tokenizer learned from rendered
    text_ee / visual_ee examples of a synthetic split."""
    from flax import nnx

    from rmpl_jax.models.family import family_for_dir
    from rmpl_jax.models.qwen2_vl.boxes import Qwen2VLBoxes
    from rmpl_jax.models.qwen2_vl.demo import write_demo_model_dir

    split = synthetic(root, docs=12, seed=1)
    texts = []
    for s in split.sentences:
        ex = render.render_text_ee(s)
        texts.append(ex.prompt + "\n" + ex.target)
    for item in split.images:
        ex = render.render_visual_ee(item, split.image_sizes[item.image_id], Qwen2VLBoxes())
        texts.append(ex.prompt + "\n" + ex.target)
    text = dict(
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
    )
    vision = dict(
        depth=1,
        hidden_size=32,
        intermediate_size=48,
        num_heads=2,
        patch_size=14,
        temporal_patch_size=2,
        spatial_merge_size=2,
        in_channels=3,
        window_size=56,
        fullatt_block_indexes=[0],
        hidden_act="silu",
    )
    hf_dir = write_demo_model_dir(
        pathlib.Path(root) / "demo", texts, vocab_size=vocab_size, text=text, vision=vision, image_side=IMAGE_SIDE
    )
    family = family_for_dir(hf_dir)
    config = family.config_from_hf(json.loads((hf_dir / "config.json").read_text()))
    return hf_dir, family.build(config, rngs=nnx.Rngs(0))
