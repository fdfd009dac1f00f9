"""Unconstrained greedy decoding equals transformers' greedy `generate`, token for token, on the
tiny random Qwen2-VL / Qwen2.5-VL (fp32, CPU): text-only and image prompts, batched with left
padding, end-token stop; and the KV-cache forward equals the full forward."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rmpl_jax.infer.decode import Decoder, Prompt, pick_bucket  # noqa: E402
from rmpl_jax.models import qwen2_vl as Q  # noqa: E402
from rmpl_jax.models.qwen2_vl.mrope import text_position_ids  # noqa: E402
from tests.testing.hf_tiny import IMAGE_TOKEN, image_patches, make_tiny_qwen, tokens_with_images  # noqa: E402

MAX_NEW = 10


@pytest.fixture(scope="module", params=["qwen2_5_vl", "qwen2_vl"])
def pair(request, tmp_path_factory):
    hf_dir, torch_model = make_tiny_qwen(tmp_path_factory.mktemp(request.param), request.param)
    return request.param, torch_model, Q.load_hf(hf_dir)


def _left_pad(rows):
    width = max(len(r) for r in rows)
    ids = np.zeros((len(rows), width), np.int64)
    mask = np.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :], mask[i, width - len(r) :] = r, 1
    return ids, mask


def _hf_generate(model, rows, eos, grid=None, pixels=None):
    ids, mask = _left_pad(rows)
    kw = dict(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask))
    if grid is not None:
        kw.update(
            pixel_values=torch.tensor(pixels),
            image_grid_thw=torch.tensor(grid),
            mm_token_type_ids=torch.tensor((ids == IMAGE_TOKEN).astype(np.int64)),
        )
    with torch.no_grad():
        out = model.generate(**kw, max_new_tokens=MAX_NEW, do_sample=False, eos_token_id=eos, pad_token_id=0).numpy()[
            :, ids.shape[1] :
        ]
    gens = []
    for row in out:  # up to and including the first end token
        hits = np.flatnonzero(row == eos)
        gens.append(row[: hits[0] + 1] if len(hits) else row)
    return gens


def _check(ours, ref):
    assert len(ours) == len(ref)
    for i, (o, r) in enumerate(zip(ours, ref)):
        assert o.tokens.tolist() == r.tolist(), f"row {i}: ours {o.tokens.tolist()} HF {r.tolist()}"


def test_cache_forward_equals_full_forward(pair):
    _, _, model = pair
    rng = np.random.default_rng(0)
    ids = rng.integers(3, 290, (2, 12)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, :4] = 0  # left padding
    full = np.asarray(model(jnp.asarray(ids), attention_mask=jnp.asarray(mask)))
    pos = text_position_ids(mask, 2, 12)
    cache = model.init_cache(2, 16, jnp.float32)
    logits, cache = model.prefill(
        jnp.asarray(ids[:, :8]),
        attention_mask=jnp.asarray(mask[:, :8]),
        position_ids=jnp.asarray(pos[:, :, :8]),
        cache=cache,
    )
    np.testing.assert_allclose(np.asarray(logits), full[:, 7], atol=1e-4)
    valid = np.zeros((2, 16), bool)
    valid[:, :8] = mask[:, :8]
    valid[:, 8:10] = True  # a chunk of two new tokens at once
    logits, cache = model.decode_step(
        jnp.asarray(ids[:, 8:10]),
        position_ids=jnp.asarray(pos[:, :, 8:10]),
        cache=cache,
        slot=8,
        key_mask=jnp.asarray(valid),
    )
    np.testing.assert_allclose(np.asarray(logits), full[:, 8:10], atol=1e-4)


def test_text_greedy_equals_hf_generate(pair):
    variant, torch_model, model = pair
    rng = np.random.default_rng(1)
    rows = [rng.integers(3, 290, n) for n in (7, 12, 5)]
    # An end token the first row reaches mid-way, so one row stops early and the others go on.
    probe = _hf_generate(torch_model, rows, eos=-1)
    eos = int(probe[0][4])
    ref = _hf_generate(torch_model, rows, eos=eos)
    dec = Decoder(model, batch_size=4, max_new_tokens=MAX_NEW, eos_ids=(eos,), pad_id=0, buckets=(16,))
    ours = dec.generate([Prompt(r) for r in rows])
    print(variant, [o.tokens.tolist() for o in ours])
    _check(ours, ref)
    assert ours[0].finished and len(ours[0].tokens) <= 5


def test_image_greedy_equals_hf_generate(pair):
    variant, torch_model, model = pair
    grid = [[1, 4, 6], [1, 4, 4], [1, 2, 4]]
    rows = [
        tokens_with_images([3, 2], [grid[0]], seed=1),
        tokens_with_images([6, 4], [grid[1]], seed=2),
        tokens_with_images([1, 1], [grid[2]], seed=3),
    ]
    pixels = image_patches(grid, torch_model, seed=4)
    ref = _hf_generate(torch_model, rows, eos=-1, grid=grid, pixels=pixels)
    splits = np.cumsum([0] + [int(np.prod(g)) for g in grid])
    prompts = [
        Prompt(r, {"pixel_values": pixels[splits[i] : splits[i + 1]], "image_grid_thw": np.asarray([grid[i]])})
        for i, r in enumerate(rows)
    ]
    dec = Decoder(
        model, batch_size=3, max_new_tokens=MAX_NEW, eos_ids=(-1,), pad_id=0, buckets=(32,), feature_multiple=16
    )
    ours = dec.generate(prompts)
    print(variant, [o.tokens.tolist() for o in ours])
    _check(ours, ref)
    assert not any(o.finished for o in ours)
    # The image matters: other pixels change what is generated after it.
    other = dec.generate(
        [Prompt(p.input_ids, {**p.images, "pixel_values": p.images["pixel_values"][::-1] * 3}) for p in prompts]
    )
    assert any(a.tokens.tolist() != b.tokens.tolist() for a, b in zip(ours, other))


def test_bucket_choice_and_errors(pair):
    _, _, model = pair
    assert pick_bucket(5, (16, 64)) == 16 and pick_bucket(64, (16, 64)) == 64
    assert pick_bucket(65, (16, 64)) == 512
    dec = Decoder(model, batch_size=2, max_new_tokens=2, eos_ids=(2,), pad_id=0)
    with pytest.raises(ValueError, match="batch_size 2"):
        dec.submit([Prompt(np.arange(3, 6))] * 3)
    with pytest.raises(ValueError, match="non-empty"):
        dec.submit([Prompt(np.zeros(0, np.int32))])
    with pytest.raises(ValueError, match="eos_ids"):
        Decoder(model, batch_size=2, max_new_tokens=2, eos_ids=(), pad_id=0)
