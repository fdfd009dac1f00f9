"""Step metrics stay on the device until a read is due; a read brings back every pending step
in order, logs the due ones and stops on a non-finite step; the checkpoint interval is a
host decision."""

import jax.numpy as jnp
import pytest

from rmpl_jax.train.checkpoint import CheckpointManager
from rmpl_jax.train.metrics_log import MetricsLog, read_metrics
from rmpl_jax.train.numeric_guard import NonFiniteLoss, NumericGuard
from rmpl_jax.train.step_metrics import StepMetrics


def _device_metrics(loss, nonfinite=0.0):
    return {"loss": jnp.float32(loss), "tokens": jnp.float32(4.0), "nonfinite": jnp.float32(nonfinite)}


def test_reads_bring_back_pending_steps_and_log_the_due_ones(tmp_path):
    log = MetricsLog(str(tmp_path), every=2)
    reads = StepMetrics(NumericGuard("stage1", "ck"), log)
    for step in (1, 2, 3):
        reads.add(step, _device_metrics(float(step)))
    assert reads.pending == [1, 2, 3] and reads.due(2) and not reads.due(3)
    first = reads.read(None, through=2)
    assert [(s, v["loss"]) for s, v in first] == [(1, 1.0), (2, 2.0)] and reads.pending == [3]
    assert [(s, v["loss"]) for s, v in reads.read(None)] == [(3, 3.0)] and reads.pending == []
    assert reads.read(None) == []
    log.close()
    assert [line["step"] for line in read_metrics(str(tmp_path))] == [2]


def test_a_non_finite_step_stops_the_read_that_sees_it(tmp_path):
    guard = NumericGuard("stage1", "W/stage1/checkpoints")
    reads = StepMetrics(guard, MetricsLog(str(tmp_path), every=10, enabled=False))
    for step, bad in ((1, 0.0), (2, 1.0), (3, 0.0)):
        guard.note_batch(step, [f"text_ee:s{step}"])
        reads.add(step, _device_metrics(float("nan") if bad else 1.0, bad))
    with pytest.raises(NonFiniteLoss, match=r"stage1 step 2: .*\[text_ee:s2\].*last good checkpoint is step 1"):
        reads.read(1)


def test_checkpoint_interval_is_decided_from_the_step_count(tmp_path):
    manager = CheckpointManager(tmp_path / "ck", save_interval_steps=3)
    assert [s for s in range(10) if manager.due(s)] == [3, 6, 9]
    manager.close()
