"""Parity of the Qwen2-VL / Qwen2.5-VL vision tower with the transformers torch modules."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from flax import nnx  # noqa: E402
from transformers import Qwen2_5_VLConfig, Qwen2VLConfig  # noqa: E402
from transformers import vision_utils as hf_vision_utils  # noqa: E402
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel  # noqa: E402
from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VisionTransformerPretrainedModel  # noqa: E402

from rmpl_jax.models.qwen2_vl import params as vp  # noqa: E402
from rmpl_jax.models.qwen2_vl import vision as vv  # noqa: E402
from rmpl_jax.models.qwen2_vl import vision_index as vi  # noqa: E402
from rmpl_jax.models.qwen2_vl.vision_config import VisionConfig  # noqa: E402

# Tiny towers. Qwen2.5-VL: window 56 px = 2 merged tokens per side so windows really
# split; depth 4 with blocks 1 and 3 full, 0 and 2 windowed.
VISION_CONFIGS = {
    "qwen2_vl": dict(depth=2, embed_dim=32, hidden_size=48, num_heads=2, mlp_ratio=2),
    "qwen2_5_vl": dict(
        depth=4,
        hidden_size=32,
        out_hidden_size=48,
        intermediate_size=40,
        num_heads=2,
        window_size=56,
        fullatt_block_indexes=[1, 3],
    ),
}
# (t, h, w) in patches; merged grids 3x5 and 5x2 are odd -> padded windows; 4x4 divides
# evenly (HF then pads a whole empty window, which must vanish).
ONE_IMAGE = [[1, 6, 10]]
TWO_IMAGES = [[1, 10, 4], [1, 8, 8]]


@functools.cache
def _hf_tower(variant: str):
    torch.manual_seed(0)
    if variant == "qwen2_vl":
        vision_config = Qwen2VLConfig(vision_config=VISION_CONFIGS[variant]).vision_config
        module = Qwen2VisionTransformerPretrainedModel(vision_config)
    else:
        vision_config = Qwen2_5_VLConfig(vision_config=VISION_CONFIGS[variant]).vision_config
        module = Qwen2_5_VisionTransformerPretrainedModel(vision_config)
    module.eval()
    with torch.no_grad():  # HF init leaves norms at 1/0 and small weights; make every tensor matter
        for p in module.parameters():
            p.normal_(0.0, 0.3)
    return vision_config, module


def _pixels(grid, patch_dim, seed=0):
    n = int(np.prod(np.asarray(grid), axis=1).sum())
    return np.random.RandomState(seed).randn(n, patch_dim).astype(np.float32)


@pytest.fixture(scope="module", params=["qwen2_vl", "qwen2_5_vl"])
def variant_setup(request):
    variant = request.param
    vision_config, module = _hf_tower(variant)
    cfg = VisionConfig.from_hf(vision_config.to_dict(), variant)
    state = {k: v.numpy() for k, v in module.state_dict().items()}
    tower = vp.vision_tower_from_hf(cfg, state)
    return variant, cfg, module, tower


@pytest.mark.parametrize("attention", ["packed", "mask"])
@pytest.mark.parametrize(
    "grid", [ONE_IMAGE, TWO_IMAGES, [[2, 4, 6], [1, 6, 10]]], ids=["one_image", "two_images", "two_frames_then_image"]
)
def test_tower_matches_hf(variant_setup, grid, attention):
    variant, cfg, module, tower = variant_setup
    if attention != "packed":
        tower = vp.vision_tower_from_hf(
            cfg, {k: v.numpy() for k, v in module.state_dict().items()}, attention=attention
        )
    grid = np.asarray(grid)
    pixels = _pixels(grid, cfg.patch_dim)
    with torch.no_grad():
        ref = module(torch.from_numpy(pixels), torch.from_numpy(grid)).pooler_output.numpy()
    out = np.asarray(tower(jnp.asarray(pixels), grid))
    assert out.shape == ref.shape == (int(grid.prod(1).sum()) // 4, 48)
    diff = float(np.abs(out - ref).max())
    print(f"{variant} {attention} grid={grid.tolist()} max|diff|={diff:.2e} max|ref|={np.abs(ref).max():.2f}")
    assert diff <= 1e-4


def test_packing_layout():
    pack = vi.packing(np.asarray([0, 3, 4, 9]))
    assert pack.gather.shape == (3, 5)
    assert pack.valid.sum(1).tolist() == [3, 1, 5]
    flat = pack.gather.reshape(-1)
    np.testing.assert_array_equal(flat[pack.scatter], np.arange(9))  # scatter inverts gather
    assert pack.valid.reshape(-1)[pack.scatter].all()


def test_images_do_not_attend_to_each_other(variant_setup):
    """Image 0's tokens must not change when a second image is appended."""
    _, cfg, _, tower = variant_setup
    grid = np.asarray(TWO_IMAGES)
    pixels = _pixels(grid, cfg.patch_dim)
    both = np.asarray(tower(jnp.asarray(pixels), grid))
    n0 = int(grid[0].prod())
    alone = np.asarray(tower(jnp.asarray(pixels[:n0]), grid[:1]))
    np.testing.assert_allclose(both[: n0 // 4], alone, atol=1e-5)


def test_jit_with_static_grid(variant_setup):
    _, cfg, _, tower = variant_setup
    grid = np.asarray(TWO_IMAGES)
    pixels = jnp.asarray(_pixels(grid, cfg.patch_dim, seed=1))
    graphdef, state = nnx.split(tower)

    @functools.partial(jax.jit, static_argnums=2)
    def run(state, px, grid_key):
        return nnx.merge(graphdef, state)(px, np.asarray(grid_key))

    grid_key = tuple(map(tuple, grid.tolist()))
    np.testing.assert_allclose(np.asarray(run(state, pixels, grid_key)), np.asarray(tower(pixels, grid)), atol=1e-5)


def test_bfloat16_runs_close(variant_setup):
    _variant, cfg, module, _ = variant_setup
    state = {k: v.numpy() for k, v in module.state_dict().items()}
    tower16 = vp.vision_tower_from_hf(cfg, state, dtype=jnp.bfloat16, param_dtype=jnp.bfloat16)
    grid = np.asarray(ONE_IMAGE)
    pixels = _pixels(grid, cfg.patch_dim)
    with torch.no_grad():
        ref = module(torch.from_numpy(pixels), torch.from_numpy(grid)).pooler_output.numpy()
    out = np.asarray(tower16(jnp.asarray(pixels), grid)).astype(np.float32)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    rel = np.abs(out - ref).max() / np.abs(ref).max()
    assert rel < 0.1, rel


# ------------------------------------------------------------------ static index parity

INDEX_GRIDS = [[[1, 6, 10]], [[1, 10, 4], [1, 8, 8]], [[2, 4, 6], [1, 14, 2]], [[1, 2, 2]]]


@pytest.mark.parametrize("grid", INDEX_GRIDS)
def test_position_ids_equal_hf(grid):
    grid_t = torch.tensor(grid)
    ref = hf_vision_utils.get_vision_position_ids(grid_t, 2).numpy()
    ours = vi.vision_position_ids(np.asarray(grid), 2)
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("grid", INDEX_GRIDS)
def test_rotary_tables_equal_hf(grid):
    _vision_config, module = _hf_tower("qwen2_5_vl")
    positions = vi.vision_position_ids(np.asarray(grid), 2)
    with torch.no_grad():
        cos_ref, sin_ref = module.rotary_pos_emb(torch.zeros(1), torch.from_numpy(positions))
    cos, sin = vi.rotary_cos_sin(positions, 16, 10000.0)
    np.testing.assert_allclose(np.asarray(cos), cos_ref.numpy(), atol=1e-6)
    np.testing.assert_allclose(np.asarray(sin), sin_ref.numpy(), atol=1e-6)


@pytest.mark.parametrize("grid", INDEX_GRIDS)
@pytest.mark.parametrize("window_size", [56, 84, 112])
def test_window_index_equal_hf(grid, window_size):
    ref_index, ref_cu = hf_vision_utils.get_vision_window_index(
        torch.tensor(grid), spatial_merge_size=2, window_size=window_size, patch_size=14
    )
    index, cu = vi.window_index(np.asarray(grid), 2, window_size, 14)
    np.testing.assert_array_equal(index, ref_index.numpy())
    np.testing.assert_array_equal(cu, ref_cu.numpy())


def test_windows_really_split():
    cfg = VisionConfig.from_hf(VISION_CONFIGS["qwen2_5_vl"], "qwen2_5_vl")
    plan = vi.vision_plan(cfg, np.asarray(ONE_IMAGE))
    # merged grid 3x5 with 2x2 windows -> 2x3 windows of sizes 4,4,2,2,2,1 (x4 patches)
    assert np.bincount(plan.window_segments).tolist() == [16, 16, 8, 8, 8, 4]
    assert plan.window_packing.gather.shape == (6, 16) and plan.full_packing.gather.shape == (1, 60)
    assert len(set(plan.full_segments.tolist())) == 1
    assert plan.token_order is not None and sorted(plan.token_order.tolist()) == list(range(60))


# ----------------------------------------------------------------- config, names, errors


def test_config_parses_released_layouts():
    # Key layouts of the released config.json files (no model_type inside vision_config,
    # `in_chans`, Qwen2-VL's `hidden_size` is the LM width).
    q2 = VisionConfig.from_hf(
        {
            "depth": 32,
            "embed_dim": 1280,
            "mlp_ratio": 4,
            "num_heads": 16,
            "in_chans": 3,
            "hidden_size": 3584,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        }
    )
    assert (q2.variant, q2.width, q2.mlp_dim, q2.out_dim, q2.hidden_act) == ("qwen2_vl", 1280, 5120, 3584, "quick_gelu")
    q25 = VisionConfig.from_hf(
        {
            "depth": 32,
            "hidden_act": "silu",
            "hidden_size": 1280,
            "intermediate_size": 3420,
            "num_heads": 16,
            "in_chans": 3,
            "out_hidden_size": 3584,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [7, 15, 23, 31],
            "temporal_patch_size": 2,
        }
    )
    assert (q25.variant, q25.width, q25.out_dim, q25.merger_window) == ("qwen2_5_vl", 1280, 3584, 4)
    assert q25.full_attention_layers().sum() == 4
    with pytest.raises(ValueError, match="variant"):
        VisionConfig.from_hf({"depth": 2})
    with pytest.raises(ValueError, match="hidden_act"):
        VisionConfig.from_hf({**VISION_CONFIGS["qwen2_vl"], "hidden_act": "relu6"}, "qwen2_vl")
    with pytest.raises(ValueError, match="fullatt_block_indexes"):
        VisionConfig.from_hf({**VISION_CONFIGS["qwen2_5_vl"], "fullatt_block_indexes": [9]}, "qwen2_5_vl")


def test_full_size_shapes_and_axes():
    """The 7B tower builds abstractly with stacked, named parameters."""
    cfg = VisionConfig.from_hf(
        {
            "depth": 32,
            "hidden_size": 1280,
            "intermediate_size": 3420,
            "num_heads": 16,
            "out_hidden_size": 3584,
            "window_size": 112,
            "fullatt_block_indexes": [7, 15, 23, 31],
        },
        "qwen2_5_vl",
    )
    shapes = vp.vision_leaf_shapes(cfg)
    assert shapes["blocks/attn/qkv/kernel"] == (32, 1280, 3840)
    assert shapes["blocks/mlp/gate_up/kernel"] == (32, 1280, 6840)
    assert shapes["patch_embed/kernel"] == (1176, 1280)
    assert shapes["merger/fc2/kernel"] == (5120, 3584)
    abstract = nnx.eval_shape(lambda: vv.VisionTower(cfg, rngs=nnx.Rngs(0)))
    axes = {
        "/".join(map(str, p)): v.get_metadata()["out_sharding"]
        for p, v in nnx.to_flat_state(nnx.state(abstract, nnx.Param))
    }
    assert axes["blocks/attn/qkv/kernel"] == ("layers", "vision_embed", "vision_heads")
    assert axes["blocks/norm1/scale"] == ("layers", "norm")
    assert axes["patch_embed/kernel"] == ("patch", "vision_embed")


@pytest.mark.parametrize("variant", ["qwen2_vl", "qwen2_5_vl"])
def test_name_rules_cover_saved_checkpoint(tmp_path, variant):
    """Every 'visual.*' tensor of a saved checkpoint maps to a leaf, every leaf is filled,
    and hf_name() reproduces the saved names."""
    from safetensors.numpy import load_file

    vision_config, module = _hf_tower(variant)
    module.save_pretrained(tmp_path)  # tower-only checkpoint: names are relative to the tower
    tensors = load_file(str(tmp_path / "model.safetensors"))
    cfg = VisionConfig.from_hf(vision_config.to_dict(), variant)
    prefixed = {"visual." + k: v for k, v in tensors.items()}
    params = vp.vision_params_from_hf(cfg, prefixed, prefix="visual.")
    assert set(params) == set(vp.vision_leaf_shapes(cfg))
    names = set()
    for rule in vp.vision_name_rules(cfg):
        names |= {rule.hf_name(i) for i in range(cfg.depth)} if "(?P<layer>" in rule.hf else {rule.hf_name()}
    assert names == set(tensors)
    for rule in vp.vision_name_rules(cfg):  # export direction restores every tensor exactly
        stacked = "(?P<layer>" in rule.hf
        for layer in range(cfg.depth) if stacked else [None]:
            leaf = params[rule.ours] if layer is None else params[rule.ours][layer]
            if rule.last_axis_slice is not None:
                leaf = leaf[..., rule.last_axis_slice[0] : rule.last_axis_slice[1]]
            np.testing.assert_array_equal(rule.to_hf(leaf), tensors[rule.hf_name(layer)])
    with pytest.raises(KeyError, match="filled"):
        vp.vision_params_from_hf(
            cfg, {k: v for k, v in prefixed.items() if "blocks.1.attn.qkv.weight" not in k}, prefix="visual."
        )
    with pytest.raises(KeyError, match="matches no vision name rule"):
        vp.vision_params_from_hf(cfg, {**prefixed, "visual.extra.weight": np.zeros(1)}, prefix="visual.")


def test_bad_inputs_raise_clearly(variant_setup):
    _, cfg, _, tower = variant_setup
    grid = np.asarray(ONE_IMAGE)
    with pytest.raises(ValueError, match="pixel_values has shape"):
        tower(jnp.zeros((10, cfg.patch_dim)), grid)
    with pytest.raises(ValueError, match="not divisible"):
        tower(jnp.zeros((35, cfg.patch_dim)), np.asarray([[1, 5, 7]]))
    with pytest.raises(ValueError, match=r"shape \[n_images>0, 3\]"):
        tower(jnp.zeros((60, cfg.patch_dim)), np.asarray([6, 10]))
