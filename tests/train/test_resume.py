"""Checkpoint/resume: stopping after k steps and resuming gives exactly the uninterrupted
run's later losses and adapters (CPU, bitwise); keep-N; data-iterator state round trip;
stage-2 `init_from` a stage-1 checkpoint. Model: the tiny Qwen2.5-VL of tests/models/hf_tiny.py (text)."""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest

from rmpl_jax.train import checkpoint as ck
from rmpl_jax.train import sharding as shd
from rmpl_jax.train.optimizer import make_optimizer
from rmpl_jax.train.state import create_train_state, split_model
from rmpl_jax.train.step import make_train_step
from tests.testing import train_models as tiny

TOTAL, STOP = 4, 2


@functools.cache
def _built(trainable_regex):
    # One model and one compiled step per trainable set keep the test fast; every _setup
    # still makes a fresh state from the untouched model arrays, as a restarted run would.
    model = tiny.build()
    layout, trainable, frozen = split_model(model, trainable_regex)
    mesh = shd.make_mesh((1, 1, 1), devices=jax.devices()[:1])
    tx, sched = make_optimizer(1e-2, warmup_steps=2, total_steps=10)
    state = create_train_state(layout, trainable, frozen, tx, mesh, seed=3)
    step = make_train_step(layout, tx, mesh, state, loss_chunk_size=8, lr_schedule=sched)
    return layout, trainable, frozen, tx, mesh, step


def _setup(trainable_regex=None):
    layout, trainable, frozen, tx, mesh, step = _built(trainable_regex)
    return create_train_state(layout, trainable, frozen, tx, mesh, seed=3), step


def _train(state, step, start, stop):
    losses = []
    for k in range(start, stop):
        state, m = step(state, tiny.text_batch(k))
        losses.append(float(m["loss"]))
    return state, losses


def _host(tree):
    return jax.tree.map(lambda x: np.asarray(jax.device_get(x)), tree)


def test_resume_matches_uninterrupted_run(tmp_path):
    state, step = _setup()
    full_state, full_losses = _train(state, step, 0, TOTAL)

    state, step = _setup()
    state, first = _train(state, step, 0, STOP)
    with ck.CheckpointManager(tmp_path / "ckpt", max_to_keep=2) as mgr:
        assert mgr.save(state, data_state={"next_example": STOP, "epoch": 0})

    # A new process would rebuild everything from scratch, then restore.
    template, step = _setup()
    with ck.CheckpointManager(tmp_path / "ckpt") as mgr:
        assert mgr.latest_step() == STOP
        state, data_state = mgr.restore(template)
    assert data_state == {"next_example": STOP, "epoch": 0}
    assert int(state.step) == STOP
    state, rest = _train(state, step, data_state["next_example"], TOTAL)

    assert first + rest == full_losses  # exact float equality
    for name, value in _host(full_state.trainable).items():
        np.testing.assert_array_equal(np.asarray(state.trainable[name]), value, err_msg=name)
    np.testing.assert_array_equal(np.asarray(state.rng), np.asarray(full_state.rng))
    np.testing.assert_array_equal(*(np.asarray(jax.tree.leaves(s.opt_state)[1]) for s in (state, full_state)))


def test_keep_n_bytes_state_and_mismatch(tmp_path):
    state, step = _setup()
    with ck.CheckpointManager(tmp_path / "c", max_to_keep=2) as mgr:
        for k in range(3):
            state, _ = step(state, tiny.text_batch(k))
            mgr.save(state, data_state=b'{"grain": %d}' % k)
        assert mgr.all_steps() == [2, 3]
        template, _ = _setup()
        restored, data_state = mgr.restore(template)
        assert data_state == b'{"grain": 2}' and int(restored.step) == 3
        with pytest.raises(TypeError, match="JSON"):
            mgr.save(restored, data_state={"bad": object()}, force=True)
        # A run with other trainables cannot silently resume this checkpoint.
        other, _ = _setup(trainable_regex=r"^norm/scale$")
        with pytest.raises(ValueError, match="init_from"):
            mgr.restore(other)


def test_stage2_init_from_stage1(tmp_path):
    # Stage 1 also trains the final norm; stage 2 trains LoRA only.
    s1, step1 = _setup(trainable_regex=r"^norm/scale$")
    s1, _ = _train(s1, step1, 0, 2)
    with ck.CheckpointManager(tmp_path / "stage1") as mgr:
        mgr.save(s1)
    stage1 = _host(s1.trainable)

    s2, step2 = _setup()
    s2, report = ck.init_from(tmp_path / "stage1", s2)
    assert report["frozen"] == ["norm/scale"]
    assert set(report["trainable"]) == set(s2.trainable) and not report["not_in_checkpoint"]
    for name in s2.trainable:
        np.testing.assert_array_equal(np.asarray(s2.trainable[name]), stage1[name])
    np.testing.assert_array_equal(np.asarray(s2.frozen["norm/scale"]), stage1["norm/scale"])
    assert int(s2.step) == 0  # fresh optimizer and counters
    s2, losses = _train(s2, step2, 0, 1)
    assert np.isfinite(losses[0])
    with pytest.raises(FileNotFoundError):
        ck.init_from(tmp_path / "missing", s2)
