"""Full-size configs build abstractly (`nnx.eval_shape`, no memory) with exactly the
parameter counts of transformers' own modules (built on the meta device, no allocation)."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from rmpl_jax.models import qwen2_vl as Q
from rmpl_jax.models.layers import variables_by_path
from rmpl_jax.models.qwen2_vl.config import Qwen2VLConfig
from rmpl_jax.models.qwen2_vl.presets import QWEN2_VL_7B, QWEN25_VL_3B, QWEN25_VL_7B, QWEN25_VL_TINY


def _our_count(hf_config: dict) -> tuple[int, Q.Qwen2VL]:
    model = Q.abstract_model(Qwen2VLConfig.from_hf(hf_config, param_dtype="bfloat16", dtype="bfloat16"))
    sizes = [int(np.prod(v.get_value().shape)) for v in variables_by_path(model).values()]
    return sum(sizes), model


def _hf_count(hf_config: dict) -> int:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    if hf_config["model_type"] == "qwen2_5_vl":
        config, cls = transformers.Qwen2_5_VLConfig(**hf_config), transformers.Qwen2_5_VLForConditionalGeneration
    else:
        config, cls = transformers.Qwen2VLConfig(**hf_config), transformers.Qwen2VLForConditionalGeneration
    with torch.device("meta"):
        model = cls(config)
    return sum(p.numel() for p in model.parameters())  # tied weights are counted once


def test_qwen25_vl_7b_has_published_count():
    ours, model = _our_count(QWEN25_VL_7B)
    assert ours == 8_292_166_656
    assert ours == _hf_count(QWEN25_VL_7B)
    # Shapes that matter for speed and sharding, with their logical axes.
    qkv = variables_by_path(model)["layers/self_attn/qkv_proj/kernel"]
    assert qkv.get_value().shape == (28, 3584, (28 + 2 * 4) * 128)
    assert qkv.get_value().dtype == np.dtype("bfloat16")
    assert qkv.get_metadata()["out_sharding"] == ("layers", "embed", "q_heads")


@pytest.mark.parametrize(
    "name,config", [("qwen2.5-vl-3b", QWEN25_VL_3B), ("qwen2-vl-7b", QWEN2_VL_7B), ("qwen2.5-vl-tiny", QWEN25_VL_TINY)]
)
def test_other_sizes_match_transformers(name, config):
    ours, _ = _our_count(config)
    hf = _hf_count(config)
    print(f"{name}: {ours:,} parameters")
    assert ours == hf


def test_every_parameter_has_logical_axes():
    _, model = _our_count(QWEN25_VL_3B)
    for path, var in variables_by_path(model).items():
        axes = var.get_metadata().get("out_sharding")
        assert axes is not None and len(axes) == len(var.get_value().shape), path
        if path.startswith("layers/"):
            assert axes[0] == "layers", path


def test_forward_traces_at_full_size():
    """The 7B forward (text + one image) traces with static shapes: eval_shape only."""
    cfg = Qwen2VLConfig.from_hf(QWEN25_VL_7B, param_dtype="bfloat16", dtype="bfloat16", remat_policy="full")
    model = Q.abstract_model(cfg)
    graphdef, state = nnx.split(model)
    grid = np.array([[1, 28, 42]])
    n_img = 28 * 42 // 4
    ids = np.concatenate([np.full(5, 9), [151652], np.full(n_img, 151655), [151653], np.full(20, 9)])[None]
    ids = np.repeat(ids, 2, 0)

    def run(state, ids, pixels):
        return nnx.merge(graphdef, state)(ids, pixel_values=pixels, image_grid_thw=grid)

    pixels = jax.ShapeDtypeStruct((28 * 42, 3 * 2 * 14 * 14), np.float32)
    out = jax.eval_shape(run, state, jax.ShapeDtypeStruct(ids.shape, np.int32), pixels)
    assert out.shape == (2, ids.shape[1], 152064) and out.dtype == np.float32
