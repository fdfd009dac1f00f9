"""Non-finite losses: the jitted step leaves weights and optimizer state unchanged and
reports it; the host guard stops training naming the step, its examples and the last good
checkpoint. The poison is real: one token's frozen embedding row is NaN, so every batch
holding that token has a NaN loss and NaN gradients."""

import jax
import numpy as np
import pytest

from rmpl_jax.train import sharding as shd
from rmpl_jax.train.numeric_guard import NonFiniteLoss, NumericGuard
from rmpl_jax.train.optimizer import make_optimizer
from rmpl_jax.train.state import create_train_state, split_model
from rmpl_jax.train.step import make_train_step
from tests.testing import train_models as tiny

POISON = 289  # text_batch draws ids from [3, 290)


def _host(tree):
    return jax.tree.map(lambda x: np.array(jax.device_get(x)), tree)


def test_step_keeps_weights_on_nan_and_reports_it():
    layout, trainable, frozen = split_model(tiny.build(), None)
    frozen["embed_tokens/embedding"] = frozen["embed_tokens/embedding"].at[POISON].set(np.nan)
    mesh = shd.make_mesh((1, 1, 1), devices=jax.devices()[:1])
    tx, schedule = make_optimizer(1e-2, warmup_steps=0, total_steps=10)
    state = create_train_state(layout, trainable, frozen, tx, mesh, seed=0)
    step = make_train_step(layout, tx, mesh, state, loss_chunk_size=8, lr_schedule=schedule)

    clean = tiny.text_batch(0)
    clean["input_ids"] = np.where(clean["input_ids"] == POISON, 3, clean["input_ids"]).astype(np.int32)
    state, metrics = step(state, clean)
    assert float(metrics["nonfinite"]) == 0.0 and np.isfinite(float(metrics["loss"]))

    before = _host({"trainable": state.trainable, "opt_state": state.opt_state})
    poisoned = dict(clean, input_ids=clean["input_ids"].copy())
    poisoned["input_ids"][0, 1] = POISON
    state, metrics = step(state, poisoned)
    assert float(metrics["nonfinite"]) == 1.0 and not np.isfinite(float(metrics["loss"]))
    after = _host({"trainable": state.trainable, "opt_state": state.opt_state})
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)):
        np.testing.assert_array_equal(a, b)
    assert int(state.step) == 2  # the step counter (and data position) still advance

    state, metrics = step(state, clean)  # training could go on from the unchanged weights
    assert float(metrics["nonfinite"]) == 0.0


def test_guard_names_step_examples_and_checkpoint():
    guard = NumericGuard("stage1", "W/stage1/checkpoints")
    guard.note_batch(7, ["text_ee:s1", "text_ee:s2"])
    guard.note_batch(8, [f"mnre:r{i}" for i in range(10)])
    guard.check(7, {"loss": 1.5, "nonfinite": 0.0}, last_checkpoint=6)
    with pytest.raises(NonFiniteLoss) as err:
        guard.check(8, {"loss": float("nan"), "grad_norm": float("nan"), "nonfinite": 1.0}, last_checkpoint=6)
    message = str(err.value)
    assert message.startswith("stage1 step 8: loss nan, gradient norm nan on the batch of 10 examples [mnre:r0, ")
    assert "mnre:r7 and 2 more]" in message and "last good checkpoint is step 6 in W/stage1/checkpoints" in message
    with pytest.raises(NonFiniteLoss, match="no checkpoint was written yet"):
        guard.check(1, {"loss": float("inf"), "nonfinite": 0.0}, last_checkpoint=None)
