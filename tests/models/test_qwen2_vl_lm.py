"""Logit and M-RoPE parity of our Qwen2-VL / Qwen2.5-VL with transformers (torch CPU, fp32)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from flax import nnx  # noqa: E402

from rmpl_jax.models import qwen2_vl as Q  # noqa: E402
from rmpl_jax.models.qwen2_vl.config import Qwen2VLConfig  # noqa: E402
from rmpl_jax.models.qwen2_vl.mrope import check_image_tokens, mrope_position_ids  # noqa: E402
from tests.testing.hf_tiny import IMAGE_TOKEN, image_patches, make_tiny_qwen, tokens_with_images  # noqa: E402

TOL = 1e-4
VARIANTS = ["qwen2_5_vl", "qwen2_vl"]
ONE_IMAGE = [[1, 4, 6]]
TWO_IMAGES = [[1, 4, 8], [1, 6, 2]]  # wide then tall


@functools.cache
def _pair(variant: str, tmp_root: str):
    hf_dir, torch_model = make_tiny_qwen(tmp_root, variant)
    return hf_dir, torch_model, Q.load_hf(hf_dir)


@pytest.fixture(scope="module", params=VARIANTS)
def pair(request, tmp_path_factory):
    return (request.param, *_pair(request.param, str(tmp_path_factory.mktemp(request.param))))


def _hf_logits(model, ids, mask=None, grid=None, pixels=None, position_ids=None):
    kw = dict(input_ids=torch.tensor(ids))
    if mask is not None:
        kw["attention_mask"] = torch.tensor(mask)
    if grid is not None:
        kw.update(
            pixel_values=torch.tensor(pixels),
            image_grid_thw=torch.tensor(grid),
            mm_token_type_ids=torch.tensor((ids == IMAGE_TOKEN).astype(np.int64)),
        )
    if position_ids is not None:
        kw["position_ids"] = torch.tensor(np.asarray(position_ids, np.int64))
    with torch.no_grad():
        return model(**kw).logits.numpy()


@functools.cache
def _jitted(model, grid_key):
    # One compile per (model, grid, shapes): far faster than op-by-op eager dispatch.
    graphdef, state = nnx.split(model)
    grid = None if grid_key is None else np.asarray(grid_key)

    @jax.jit
    def run(state, ids, mask, pixels):
        return nnx.merge(graphdef, state)(ids, attention_mask=mask, pixel_values=pixels, image_grid_thw=grid)

    return functools.partial(run, state)


def _ours(model, ids, mask=None, grid=None, pixels=None):
    """Our logits through jit; the host-side image-token check runs first, as in the pipeline."""
    if grid is not None:
        check_image_tokens(ids, mask, grid, image_token_id=IMAGE_TOKEN, spatial_merge_size=2)
    grid_key = None if grid is None else tuple(map(tuple, np.asarray(grid).tolist()))
    run = _jitted(model, grid_key)
    return np.asarray(
        run(
            jnp.asarray(ids),
            None if mask is None else jnp.asarray(mask),
            None if pixels is None else jnp.asarray(pixels),
        )
    )


def _pad_batch(rows, side):
    width = max(len(r) for r in rows)
    ids = np.zeros((len(rows), width), np.int64)
    mask = np.zeros((len(rows), width), np.int64)
    for i, r in enumerate(rows):
        sl = slice(width - len(r), width) if side == "left" else slice(0, len(r))
        ids[i, sl], mask[i, sl] = r, 1
    return ids, mask


def test_text_only_logits(pair):
    variant, _, torch_model, model = pair
    ids = np.random.default_rng(1).integers(3, 290, size=(2, 11))
    diff = np.abs(_ours(model, ids) - _hf_logits(torch_model, ids)).max()
    print(f"{variant} text-only max|diff| {diff:.2e}")
    assert diff <= TOL


@pytest.mark.parametrize("grid", [ONE_IMAGE, TWO_IMAGES], ids=["one_image", "two_images"])
def test_image_logits(pair, grid):
    variant, _, torch_model, model = pair
    ids = tokens_with_images([3, 2, 4][: len(grid) + 1], grid, seed=2)[None]
    pixels = image_patches(grid, torch_model, seed=3)
    ours = _ours(model, ids, grid=grid, pixels=pixels)
    ref = _hf_logits(torch_model, ids, grid=grid, pixels=pixels)
    diff = np.abs(ours - ref).max()
    print(f"{variant} {len(grid)} image(s) max|diff| {diff:.2e} (max|logit| {np.abs(ref).max():.2f})")
    assert diff <= TOL
    # The image really matters: other pixels change the logits after the image.
    other = _ours(model, ids, grid=grid, pixels=pixels[::-1].copy())
    assert np.abs(other - ours)[0, -1].max() > 1e-3


@pytest.mark.parametrize("side", ["left", "right"])
def test_padded_batch_with_images(pair, side):
    variant, _, torch_model, model = pair
    grid = [ONE_IMAGE[0], TWO_IMAGES[1]]
    rows = [tokens_with_images([2, 5], [grid[0]], seed=4), tokens_with_images([1, 2], [grid[1]], seed=5)]
    ids, mask = _pad_batch(rows, side)
    pixels = image_patches(grid, torch_model, seed=6)
    ours = _ours(model, ids, mask, grid, pixels)
    ref = _hf_logits(torch_model, ids, mask, grid, pixels)
    valid = mask.astype(bool)
    diff = np.abs(ours - ref)[valid].max()
    print(f"{variant} padded({side}) max|diff| {diff:.2e}")
    assert diff <= TOL
    # Each row alone (no padding) gives the same logits as inside the padded batch.
    for i, row in enumerate(rows):
        n_before = sum(int(np.prod(g)) for g in grid[:i])
        n_img = int(np.prod(grid[i]))
        alone = _ours(model, row[None], grid=[grid[i]], pixels=pixels[n_before : n_before + n_img])
        np.testing.assert_allclose(ours[i][valid[i]], alone[0], atol=TOL)


def test_right_padding_needs_no_mask(pair):
    """Right-padded batches may drop attention_mask (is_causal only, no mask materialised):
    valid tokens never see later padding, so their logits are unchanged."""
    _, _, _, model = pair
    grid = [ONE_IMAGE[0], TWO_IMAGES[1]]
    rows = [tokens_with_images([2, 5], [grid[0]], seed=4), tokens_with_images([1, 2], [grid[1]], seed=5)]
    ids, mask = _pad_batch(rows, "right")
    pixels = np.random.default_rng(0).normal(size=(sum(int(np.prod(g)) for g in grid), 1176)).astype(np.float32)
    valid = mask.astype(bool)
    np.testing.assert_allclose(
        _ours(model, ids, None, grid, pixels)[valid], _ours(model, ids, mask, grid, pixels)[valid], atol=1e-5
    )


def test_right_padded_key_lengths_equal_the_mask(pair):
    """`right_padded=True` (training: causal attention over each row's key length, no
    [B, 1, T, T] mask) gives the masked forward's hidden states on every valid token."""
    _, _, _, model = pair
    grid = [ONE_IMAGE[0], TWO_IMAGES[1]]
    rows = [tokens_with_images([2, 5], [grid[0]], seed=4), tokens_with_images([1, 2], [grid[1]], seed=5)]
    ids, mask = _pad_batch(rows, "right")
    pixels = np.random.default_rng(0).normal(size=(sum(int(np.prod(g)) for g in grid), 1176)).astype(np.float32)
    inputs = dict(attention_mask=jnp.asarray(mask), pixel_values=jnp.asarray(pixels), image_grid_thw=np.asarray(grid))
    lengths = np.asarray(model.hidden_states(jnp.asarray(ids), right_padded=True, **inputs))
    masked = np.asarray(model.hidden_states(jnp.asarray(ids), **inputs))
    valid = mask.astype(bool)
    np.testing.assert_allclose(lengths[valid], masked[valid], atol=1e-5)


@pytest.mark.parametrize("side", ["left", "right"])
def test_padded_text_only(pair, side):
    variant, _, torch_model, model = pair
    rng = np.random.default_rng(7)
    ids, mask = _pad_batch([rng.integers(3, 290, 9), rng.integers(3, 290, 5)], side)
    positions, _ = mrope_position_ids(ids, mask, None, image_token_id=IMAGE_TOKEN, spatial_merge_size=2)
    # HF's own forward would use 0..T-1 for padded text; we (and HF's get_rope_index) count
    # valid tokens, so hand HF the same ids. Those ids equal HF's rule:
    hf_pos, _ = torch_model.model.get_rope_index(
        torch.tensor(ids), torch.zeros(ids.shape, dtype=torch.int64), attention_mask=torch.tensor(mask)
    )
    np.testing.assert_array_equal(positions[:, mask.astype(bool)], hf_pos.numpy()[:, mask.astype(bool)])
    ours = _ours(model, ids, mask)
    ref = _hf_logits(torch_model, ids, mask, position_ids=positions)
    diff = np.abs(ours - ref)[mask.astype(bool)].max()
    print(f"{variant} padded text ({side}) max|diff| {diff:.2e}")
    assert diff <= TOL


POSITION_CASES = {
    "one_image": ([[3, 4]], [ONE_IMAGE[0]], "none"),
    "two_images": ([[2, 3, 1]], TWO_IMAGES, "none"),
    "image_first_no_text_after": ([[0, 0]], [[1, 6, 4]], "none"),
    "batch_left": ([[2, 5], [1, 1, 2]], [[1, 4, 6], [1, 2, 2], [1, 8, 2]], "left"),
    "batch_right": ([[2, 5], [4, 0, 2]], [[1, 4, 6], [1, 2, 2], [1, 8, 2]], "right"),
    "batch_text_row": ([[2, 5], [6]], [[1, 4, 6]], "left"),
}


@pytest.mark.parametrize("case", list(POSITION_CASES))
def test_position_ids_equal_hf_get_rope_index(pair, case):
    _, _, torch_model, _ = pair
    text_lens, grid, side = POSITION_CASES[case]
    rows, used = [], 0
    for i, lens in enumerate(text_lens):
        n = len(lens) - 1
        rows.append(tokens_with_images(lens, grid[used : used + n], seed=10 + i))
        used += n
    ids, mask = _pad_batch(rows, "left" if side == "none" else side)
    mask_arg = None if side == "none" else mask
    check_image_tokens(ids, mask_arg, grid, image_token_id=IMAGE_TOKEN, spatial_merge_size=2)
    ours, deltas = mrope_position_ids(ids, mask_arg, grid, image_token_id=IMAGE_TOKEN, spatial_merge_size=2)
    ref, ref_deltas = torch_model.model.get_rope_index(
        torch.tensor(ids),
        torch.tensor((ids == IMAGE_TOKEN).astype(np.int64)),
        image_grid_thw=torch.tensor(grid),
        attention_mask=None if mask_arg is None else torch.tensor(mask),
    )
    valid = mask.astype(bool)
    np.testing.assert_array_equal(ours[:, valid], ref.numpy()[:, valid])
    np.testing.assert_array_equal(deltas, ref_deltas.numpy())
    assert (ours[:, ~valid] == 0).all()
    # The in-jit (jax.numpy) path computes the same ids.
    jitted = jax.jit(
        lambda i, m: mrope_position_ids(i, m, grid, image_token_id=IMAGE_TOKEN, spatial_merge_size=2, xp=jnp)
    )
    j_pos, j_deltas = jitted(jnp.asarray(ids), None if mask_arg is None else jnp.asarray(mask))
    np.testing.assert_array_equal(np.asarray(j_pos), ours)
    np.testing.assert_array_equal(np.asarray(j_deltas), deltas)


def test_image_token_count_mismatch_is_reported():
    ids = tokens_with_images([2, 2], ONE_IMAGE)[None]
    with pytest.raises(ValueError, match="image tokens"):
        check_image_tokens(ids, None, [[1, 4, 8]], image_token_id=IMAGE_TOKEN, spatial_merge_size=2)
    split = np.concatenate([ids[0, :4], [5], ids[0, 4:]])[None]
    with pytest.raises(ValueError, match="contiguous"):
        check_image_tokens(split, None, ONE_IMAGE, image_token_id=IMAGE_TOKEN, spatial_merge_size=2)


def test_image_features_without_grid_is_an_error(pair):
    _, _, _, model = pair
    ids = tokens_with_images([2, 2], ONE_IMAGE)[None]
    with pytest.raises(ValueError, match="image_grid_thw"):
        model(jnp.asarray(ids), image_features=jnp.zeros((6, 64)))


def test_precomputed_features_jit_and_unfused_layout(pair):
    """image_features path under jit equals pixel path; unfused q/k/v and gate/up load the
    same weights and give the same logits; remat does not change values."""
    _variant, hf_dir, torch_model, model = pair
    grid = TWO_IMAGES
    ids = tokens_with_images([3, 2, 4], grid, seed=2)[None]
    pixels = image_patches(grid, torch_model, seed=3)
    ref = _ours(model, ids, grid=grid, pixels=pixels)
    feats = model.image_features(jnp.asarray(pixels), np.asarray(grid))
    graphdef, state = nnx.split(model)

    @jax.jit
    def run(state, ids, feats):
        return nnx.merge(graphdef, state)(ids, image_features=feats, image_grid_thw=np.asarray(grid))

    np.testing.assert_allclose(np.asarray(run(state, jnp.asarray(ids), feats)), ref, atol=1e-5)
    unfused = Q.load_hf(hf_dir, fuse_qkv=False, fuse_gate_up=False, remat_policy="full")
    np.testing.assert_allclose(_ours(unfused, ids, grid=grid, pixels=pixels), ref, atol=1e-5)


def test_bfloat16_compute_is_close(pair):
    _variant, hf_dir, _torch_model, model = pair
    ids = np.random.default_rng(3).integers(3, 290, size=(1, 10))
    ref = _ours(model, ids)
    m16 = Q.load_hf(hf_dir, dtype="bfloat16", with_vision=False)
    assert m16.layers.mlp.down_proj.kernel[...].dtype == jnp.bfloat16
    out = _ours(m16, ids)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    rel = np.abs(out - ref).max() / np.abs(ref).max()
    assert rel < 0.05, rel


def test_config_flat_and_nested_agree(pair):
    variant, _hf_dir, torch_model, _ = pair
    nested = torch_model.config.to_dict()
    flat = {k: v for k, v in nested.items() if k != "text_config"}
    text = dict(nested["text_config"])
    rope = text.pop("rope_parameters")
    flat.update(
        text,
        rope_theta=rope["rope_theta"],
        rope_scaling={"type": "mrope", "mrope_section": rope["mrope_section"]},
        model_type=variant,
    )
    a, b = Qwen2VLConfig.from_hf(nested), Qwen2VLConfig.from_hf(flat)
    assert a == b and a.num_layers == 2 and a.num_kv_heads == 2 and a.mrope_section == (2, 3, 3)
    with pytest.raises(KeyError, match="hidden_size"):
        Qwen2VLConfig.from_hf({**flat, "hidden_size": None, "text_config": None}, source="x/config.json")
    with pytest.raises(ValueError, match="model_type"):
        Qwen2VLConfig.from_hf({**flat, "model_type": "llama"})
