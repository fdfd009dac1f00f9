"""Gradient accumulation with photos: the batch splits by example (each example's patches and
its `image_grid_thw` row go with it), and the accumulated step equals the unaccumulated one.
A split by patch rows would hand microbatches other examples' pixels and change the loss."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest

from rmpl_jax.models.family import get_family
from rmpl_jax.train import sharding as shd
from rmpl_jax.train.state import create_train_state, split_model
from rmpl_jax.train.step import make_train_step
from tests.testing import train_models as tiny

FAMILY = get_family("qwen2_5_vl")  # its batch placement: pixel_values along 'batch', a static grid


def _four_examples(step: int) -> dict:
    a, b = tiny.image_batch(2 * step), tiny.image_batch(2 * step + 1)
    return {k: np.concatenate([a[k], b[k]]) for k in a}


def _train(accum: int, steps: int = 2):
    model = tiny.build(with_vision=True)
    layout, trainable, frozen = split_model(model, tiny.MERGER_REGEX)
    mesh = shd.make_mesh((1, 1, 1), devices=jax.devices()[:1])
    tx = optax.sgd(0.5)  # updates proportional to the gradients (Adam would magnify float noise in ~0 ones)
    state = create_train_state(layout, trainable, frozen, tx, mesh)
    step = make_train_step(
        layout,
        tx,
        mesh,
        state,
        grad_accum_steps=accum,
        loss_chunk_size=8,
        batch_logical_axes=FAMILY.batch_logical_axes,
        static_keys=FAMILY.static_batch_keys,
    )
    losses = []
    for k in range(steps):  # LoRA B starts at 0: the second step moves every adapter
        state, metrics = step(state, _four_examples(k))
        losses.append(float(metrics["loss"]))
    params = {n: np.asarray(v) for n, v in state.trainable.items()}
    tokens = float(metrics["tokens"]) if steps else None
    return losses, params, tokens, step, state


@pytest.fixture(scope="module")
def reference():
    return _train(accum=1)


@pytest.mark.parametrize("accum", [2])
def test_accumulated_image_step_equals_the_full_batch_step(reference, accum):
    ref_losses, ref_params, ref_tokens, _, _ = reference
    losses, params, tokens, _, _ = _train(accum)
    assert tokens == ref_tokens == 16.0
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    for name, ref in ref_params.items():
        np.testing.assert_allclose(params[name], ref, rtol=1e-5, atol=1e-5, err_msg=name)


def test_a_patch_split_would_not_match(reference):
    # The check above can fail: patch rows interleaved between examples (what a split by
    # rows does to a microbatch) change the first step's loss.
    ref_losses = reference[0]
    _, _, _, step, state = _train(accum=1, steps=0)
    batch = _four_examples(0)
    pixels = batch["pixel_values"]
    batch["pixel_values"] = pixels.reshape(-1, 2, pixels.shape[1]).swapaxes(0, 1).reshape(pixels.shape)
    _, metrics = step(state, batch)
    assert abs(float(metrics["loss"]) - ref_losses[0]) > 1e-4


def test_examples_with_different_image_grids_cannot_accumulate():
    _, _, _, step, state = _train(accum=2, steps=0)
    batch = _four_examples(0)
    batch["image_grid_thw"] = batch["image_grid_thw"].copy()
    batch["image_grid_thw"][3] = [1, 2, 8]  # same patch count, another layout
    with pytest.raises(ValueError, match="'image_grid_thw'.* differs between examples"):
        step(state, batch)
