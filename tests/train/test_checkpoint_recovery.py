"""A damaged newest checkpoint: a save cut short (Orbax's temporary directory) is never
listed; a listed step that cannot be read is moved aside with a warning naming it and the
step resumed instead, and later saves of that step number work again."""

import functools
import logging
import os

import jax
import numpy as np
import pytest

from rmpl_jax.train import checkpoint as ck
from rmpl_jax.train import sharding as shd
from rmpl_jax.train.optimizer import make_optimizer
from rmpl_jax.train.state import create_train_state, split_model
from tests.testing import train_models as tiny


@functools.cache
def _parts(trainable_regex=None):
    layout, trainable, frozen = split_model(tiny.build(), trainable_regex)
    tx, _ = make_optimizer(1e-2, warmup_steps=0, total_steps=10)
    return layout, trainable, frozen, tx, shd.make_mesh((1, 1, 1), devices=jax.devices()[:1])


def _state(trainable_regex=None, seed=0):
    layout, trainable, frozen, tx, mesh = _parts(trainable_regex)
    return create_train_state(layout, trainable, frozen, tx, mesh, seed=seed)


def _saved(directory, steps=(1, 2, 3)):
    """Checkpoints whose params differ per step (each step's params are the step's seed)."""
    with ck.CheckpointManager(directory, max_to_keep=5) as mgr:
        for step in steps:
            state = _state(seed=step)
            mgr.save(state.replace(step=state.step + step), data_state={"position": step})
    return directory


def _truncate_largest(step_dir):
    files = [os.path.join(d, f) for d, _, names in os.walk(os.path.join(step_dir, "params")) for f in names]
    largest = max(files, key=os.path.getsize)
    with open(largest, "r+b") as f:
        f.truncate(os.path.getsize(largest) // 2)


def test_unreadable_newest_step_falls_back(tmp_path, caplog):
    directory = _saved(str(tmp_path / "ckpt"))
    _truncate_largest(os.path.join(directory, "3"))
    # A save that was killed half-way: Orbax writes into a temporary directory and renames it.
    os.makedirs(os.path.join(directory, "4.orbax-checkpoint-tmp-1234", "params"))
    with ck.CheckpointManager(directory, max_to_keep=5) as mgr:
        assert mgr.all_steps() == [1, 2, 3]
        with caplog.at_level(logging.WARNING):
            state, data_state = mgr.restore_newest_readable(_state())
        assert int(state.step) == 2 and data_state == {"position": 2}
        expected = _state(seed=2).trainable
        for name, value in state.trainable.items():
            np.testing.assert_array_equal(np.asarray(value), np.asarray(expected[name]), err_msg=name)
        warning = caplog.text
        assert f"checkpoint step 3 in {directory} is unreadable" in warning and "trying step 2" in warning
        assert os.path.isdir(os.path.join(directory, "3.unreadable")) and mgr.all_steps() == [1, 2]
        assert mgr.save(state.replace(step=state.step + 1), data_state={"position": 3})  # step 3 again
        assert mgr.all_steps() == [1, 2, 3]


def test_nothing_readable_starts_over_and_mismatch_is_an_error(tmp_path, caplog):
    directory = _saved(str(tmp_path / "ckpt"), steps=(1,))
    with ck.CheckpointManager(directory) as mgr:
        with pytest.raises(ck.CheckpointMismatch, match="init_from"):  # other trainables: a config change
            mgr.restore_newest_readable(_state(trainable_regex=r"^norm/scale$"))
        _truncate_largest(os.path.join(directory, "1"))
        with caplog.at_level(logging.WARNING):
            assert mgr.restore_newest_readable(_state()) is None
        assert "no older checkpoint is left: starting over" in caplog.text
    assert ck.CheckpointManager(tmp_path / "empty").restore_newest_readable(_state()) is None


def test_reading_an_unreadable_step_names_it(tmp_path):
    directory = _saved(str(tmp_path / "ckpt"), steps=(1, 2))
    _truncate_largest(os.path.join(directory, "2"))
    with pytest.raises(ck.CheckpointError, match=r"ckpt: step 2 is unreadable .* has steps \[1, 2\]"):
        ck.read_params(directory)
    assert ck.read_params(directory, 1)[0] == 1
