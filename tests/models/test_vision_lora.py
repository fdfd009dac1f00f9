"""LoRA on the vision tower: its projections are `common.Linear`s reachable by regex over
'visual/...' projection paths; zero B is the identity on image logits, merging equals the
adapted model, and the merged export loads in transformers with the same logits."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from flax import nnx  # noqa: E402

from rmpl_jax.models import qwen2_vl as Q  # noqa: E402
from rmpl_jax.models.family import get_family  # noqa: E402
from rmpl_jax.models.layers import variables_by_path  # noqa: E402
from rmpl_jax.models.lora import apply_lora, has_lora, merge_lora, projection_paths  # noqa: E402
from rmpl_jax.models.qwen2_vl.config import Qwen2VLConfig  # noqa: E402
from tests.testing.hf_tiny import IMAGE_TOKEN, image_patches, make_tiny_qwen, tiny_config_dict, tokens_with_images  # noqa: E402

RANK, ALPHA = 4, 8.0
# Merged grid 2x3 with 2x2-token windows: Qwen2.5-VL's window blocks really split it.
GRID = [[1, 4, 6]]
ATTN = r"^visual/blocks/attn/(qkv|proj)$"
# Attention, one segment of the fused gate/up, the merger and the flattened-conv patch embed.
WIDE = r"^visual/(blocks/attn/qkv|blocks/mlp/gate_proj|merger/fc1|patch_embed)$"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_qwen(tmp_path_factory.mktemp("vision_lora"), "qwen2_5_vl")


def _inputs(torch_model):
    ids = tokens_with_images([3, 4], GRID, seed=1)[None]
    return ids, image_patches(GRID, torch_model, seed=2)


def _logits(model, ids, pixels):
    # Split afresh each call: adapters change the state (and the graph) between calls.
    graphdef, state = nnx.split(model)
    grid = np.asarray(GRID)
    run = jax.jit(lambda s, i, p: nnx.merge(graphdef, s)(i, pixel_values=p, image_grid_thw=grid))
    return np.asarray(run(state, jnp.asarray(ids), jnp.asarray(pixels)))


def _torch_logits(model, ids, pixels):
    with torch.no_grad():
        return model(
            input_ids=torch.tensor(ids),
            pixel_values=torch.tensor(pixels),
            image_grid_thw=torch.tensor(GRID),
            mm_token_type_ids=torch.tensor((ids == IMAGE_TOKEN).astype(np.int64)),
        ).logits.numpy()


def _randomize_b(model, seed=0):
    rng = np.random.default_rng(seed)
    for path, var in variables_by_path(model, nnx.LoRAParam).items():
        if "/lora_b" in path:
            value = var.get_value()
            var.set_value(jnp.asarray(rng.normal(0, 0.2, value.shape), value.dtype))


@pytest.mark.parametrize("variant", ["qwen2_5_vl", "qwen2_vl"])
def test_vision_projection_paths(variant):
    """Every tower projection is adaptable; the default (LM) targets leave the tower alone."""
    cfg = Qwen2VLConfig.from_hf({**tiny_config_dict(variant), "model_type": variant})
    paths = {p for p in projection_paths(Q.abstract_model(cfg)) if p.startswith("visual/")}
    mlp = {"gate_proj", "up_proj", "down"} if variant == "qwen2_5_vl" else {"fc1", "fc2"}
    assert paths == {
        "visual/patch_embed",
        "visual/blocks/attn/qkv",
        "visual/blocks/attn/proj",
        "visual/merger/fc1",
        "visual/merger/fc2",
        *(f"visual/blocks/mlp/{m}" for m in mlp),
    }
    assert not [p for p in paths if re.search(get_family("qwen2_5_vl").default_lora_targets, p)]


def test_zero_b_vision_adapters_keep_image_logits(tiny):
    hf_dir, torch_model = tiny
    ids, pixels = _inputs(torch_model)
    model = Q.load_hf(hf_dir)
    base = _logits(model, ids, pixels)
    assert apply_lora(model, RANK, ALPHA, ATTN) == ["visual/blocks/attn/proj", "visual/blocks/attn/qkv"]
    adapters = variables_by_path(model, nnx.LoRAParam)
    assert len(adapters) == 4
    a, b = adapters["visual/blocks/attn/qkv/lora_a"], adapters["visual/blocks/attn/qkv/lora_b"]
    depth, width = 2, 32  # tiny tower: stacked adapters, one (fused q|k|v) segment
    assert a.get_value().shape == (depth, width, RANK) and b.get_value().shape == (depth, RANK, 3 * width)
    assert a.get_metadata()["out_sharding"][0] == "layers"
    np.testing.assert_array_equal(_logits(model, ids, pixels), base)


def test_vision_adapters_merge_and_export_to_transformers(tiny, tmp_path):
    hf_dir, torch_model = tiny
    ids, pixels = _inputs(torch_model)
    model = Q.load_hf(hf_dir)
    base = _logits(model, ids, pixels)
    chosen = apply_lora(model, RANK, ALPHA, WIDE, rngs=nnx.Rngs(1))
    assert chosen == [
        "visual/blocks/attn/qkv",
        "visual/blocks/mlp/gate_proj",
        "visual/merger/fc1",
        "visual/patch_embed",
    ]
    _randomize_b(model)
    adapted = _logits(model, ids, pixels)
    assert np.abs(adapted - base).max() > 1e-2  # the adapters really act on the image tokens

    Q.export_hf(model, tmp_path / "merged")  # folds the adapters in, model unchanged
    assert has_lora(model)
    reloaded = transformers.Qwen2_5_VLForConditionalGeneration.from_pretrained(
        tmp_path / "merged", dtype=torch.float32
    ).eval()
    hf = _torch_logits(reloaded, ids, pixels)

    merge_lora(model)
    assert not has_lora(model) and not variables_by_path(model, nnx.LoRAParam)
    merged = _logits(model, ids, pixels)
    print(
        f"merge max|diff| {np.abs(merged - adapted).max():.2e}, transformers(export) {np.abs(hf - adapted).max():.2e}"
    )
    np.testing.assert_allclose(merged, adapted, atol=1e-5)
    np.testing.assert_allclose(hf, adapted, atol=1e-4)  # the HF parity tolerance
