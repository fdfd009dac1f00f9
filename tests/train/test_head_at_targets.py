"""The LM head at answer positions only (`loss.gather_targets`, `make_train_step(max_targets=)`)
gives the same loss and gradients as projecting every position, and an answer longer than the
budget is never cut silently."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rmpl_jax.train import sharding as shd
from rmpl_jax.train.loss import chunked_cross_entropy, gather_targets, next_token_targets, target_budget
from rmpl_jax.train.optimizer import make_optimizer
from rmpl_jax.train.state import create_train_state, split_model
from rmpl_jax.train.step import make_train_step
from tests.testing import train_models as tiny


def _inputs(b=3, t=20, d=8, v=30, seed=0):
    rng = np.random.default_rng(seed)
    hidden = jnp.asarray(rng.normal(size=(b, t, d)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(d, v)) * 0.5, jnp.float32)
    ids = jnp.asarray(rng.integers(0, v, (b, t)), jnp.int32)
    answer = np.zeros((b, t), np.int32)
    for row, (start, stop) in enumerate([(5, 12), (0, 0), (14, 20)]):  # one row without an answer
        answer[row, start:stop] = 1
    return hidden, w, ids, jnp.asarray(answer)


@pytest.mark.parametrize("k", [7, 8, 16])
def test_gathered_loss_and_grads_equal_full_projection(k):
    hidden, w, ids, answer = _inputs()
    targets, mask = next_token_targets(ids, answer)  # longest row: 7 counted positions

    def full(h, w):
        return chunked_cross_entropy(h, lambda x: x @ w, targets, mask, 8)[0]

    def gathered(h, w):
        gh, gt, gm, dropped = gather_targets(h, targets, mask, k)
        return chunked_cross_entropy(gh, lambda x: x @ w, gt, gm, 4)[0], dropped

    loss_f, grads_f = jax.value_and_grad(full, argnums=(0, 1))(hidden, w)
    (loss_g, dropped), grads_g = jax.value_and_grad(gathered, argnums=(0, 1), has_aux=True)(hidden, w)
    assert int(dropped) == 0
    np.testing.assert_allclose(float(loss_g), float(loss_f), rtol=1e-6)
    for g, f in zip(grads_g, grads_f):
        np.testing.assert_allclose(np.asarray(g), np.asarray(f), rtol=1e-5, atol=1e-6)


def test_positions_beyond_the_budget_are_counted():
    hidden, _, ids, answer = _inputs()
    targets, mask = next_token_targets(ids, answer)
    _, _, gm, dropped = gather_targets(hidden, targets, mask, 4)
    assert int(dropped) == int(np.sum(np.maximum(np.asarray(mask).sum(1) - 4, 0)))
    assert gm.shape == (3, 4)
    assert target_budget(1) == 64 and target_budget(64) == 64 and target_budget(65) == 128


def _one_step(max_targets, batch):
    model = tiny.build()
    layout, trainable, frozen = split_model(model)
    mesh = shd.make_mesh((1, 1, 1), devices=jax.devices()[:1])
    tx, _ = make_optimizer(1e-2, grad_clip_norm=None)
    state = create_train_state(layout, trainable, frozen, tx, mesh)
    step = make_train_step(layout, tx, mesh, state, loss_chunk_size=8, max_targets=max_targets, donate=False)
    state, metrics = step(state, batch)
    return {k: float(v) for k, v in metrics.items()}, {k: np.asarray(v) for k, v in state.trainable.items()}


def test_train_step_with_head_at_targets_equals_full_projection():
    batch = tiny.text_batch(0, batch_size=4, length=24)
    longest = int(batch["loss_mask"].sum(1).max())
    full_metrics, full_weights = _one_step(None, batch)
    metrics, weights = _one_step(longest, batch)
    np.testing.assert_allclose(metrics["loss"], full_metrics["loss"], rtol=1e-5)
    np.testing.assert_allclose(metrics["grad_norm"], full_metrics["grad_norm"], rtol=1e-4)
    assert metrics["tokens"] == full_metrics["tokens"] and metrics["nonfinite"] == 0.0
    for name, value in full_weights.items():
        np.testing.assert_allclose(weights[name], value, rtol=1e-4, atol=1e-6, err_msg=name)
