"""The per-stage metrics log: JSON lines and TensorBoard events at the configured cadence."""

import json

import numpy as np
import pytest

from rmpl_jax.train.metrics_log import METRICS_FILE, MetricsLog, read_metrics
from tests.testing.tb_events import read_scalars


def _metrics(step):
    return {
        "loss": np.float32(5.0 / step),
        "learning_rate": np.float32(1e-3 * step),
        "grad_norm": np.float32(2.0),
        "tokens": np.float32(100 + step),
        "input_tokens": np.float32(1000 + step),
    }


def test_every_nth_step_goes_to_jsonl_and_tensorboard(tmp_path):
    log = MetricsLog(str(tmp_path), every=2)
    written = [log.write(step, _metrics(step)) for step in range(1, 6)]
    log.close()
    assert [w is not None for w in written] == [False, True, False, True, False]
    lines = [json.loads(x) for x in (tmp_path / METRICS_FILE).read_text().splitlines()]
    assert [x["step"] for x in lines] == [2, 4]
    counts = {"tokens", "input_tokens", "tokens_per_s", "input_tokens_per_s"}
    assert set(lines[0]) == {"step", "loss", "learning_rate", "grad_norm", *counts, "wall_time"}
    assert lines[1]["loss"] == pytest.approx(1.25) and lines[1]["tokens"] == 104
    assert lines[1]["wall_time"] >= lines[0]["wall_time"] > 0 and lines[0]["tokens_per_s"] > 0
    scalars = read_scalars(str(tmp_path))
    assert scalars["train/loss"] == [(2, pytest.approx(2.5)), (4, pytest.approx(1.25))]
    assert [s for s, _ in scalars["train/learning_rate"]] == [2, 4]
    assert {"train/grad_norm", "train/tokens", "train/tokens_per_s", "train/input_tokens_per_s"} <= set(scalars)
    assert read_metrics(str(tmp_path)) == lines


def test_rates_cover_the_steps_since_the_last_line(tmp_path, monkeypatch):
    clock = iter([0.0, 1.0, 4.0, 6.0])  # open, steps 3, 4, 5 (+6 read at once)
    monkeypatch.setattr("rmpl_jax.train.metrics_log.time.perf_counter", lambda: next(clock))
    log = MetricsLog(str(tmp_path), every=2)
    assert log.write(3, {"tokens": 6.0}) is None
    assert log.write(4, {"tokens": 10.0})["tokens_per_s"] == pytest.approx((6 + 10) / 4.0)
    line = log.write_steps([(5, {"tokens": 20.0}), (6, {"tokens": 30.0})])[0]
    assert line == {"step": 6, "tokens": 30.0, "tokens_per_s": 25.0, "wall_time": 6.0}
    log.close()


def test_steps_read_at_once_share_the_time_no_spike(tmp_path, monkeypatch):
    # Steps 1-2 read one by one, then 3-6 in one transfer after a checkpoint: every logged
    # interval gets its share of the time, and the padding of its steps.
    clock = iter([0.0, 10.0, 20.0, 60.0])
    monkeypatch.setattr("rmpl_jax.train.metrics_log.time.perf_counter", lambda: next(clock))
    log = MetricsLog(str(tmp_path), every=1)
    step = {"input_tokens": 90.0, "batch_tokens": 100.0, "examples": 3.0}
    lines = log.write_steps([(1, step)]) + log.write_steps([(2, step)])
    lines += log.write_steps([(s, step) for s in (3, 4, 5, 6)])
    log.close()
    assert [line["input_tokens_per_s"] for line in lines] == [pytest.approx(9.0)] * 6
    assert [line["wall_time"] for line in lines] == [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
    assert all(line["padded_tokens"] == 10.0 and line["padding_share"] == pytest.approx(0.1) for line in lines)
    assert lines[0]["examples_per_s"] == pytest.approx(0.3)


def test_a_resumed_stage_appends_and_readers_keep_the_last_line_of_a_step(tmp_path):
    for losses in ({1: 3.0, 2: 2.0}, {2: 1.5, 3: 1.0}):  # step 2 ran again after a restart
        log = MetricsLog(str(tmp_path))
        for step, loss in losses.items():
            log.write(step, {"loss": loss})
        log.close()
    assert [(x["step"], x["loss"]) for x in read_metrics(str(tmp_path))] == [(1, 3.0), (2, 1.5), (3, 1.0)]


def test_other_processes_write_nothing_and_bad_input_is_named(tmp_path):
    quiet = MetricsLog(str(tmp_path / "p1"), enabled=False)
    assert quiet.write(1, {"loss": 1.0}) is None
    quiet.close()
    assert not (tmp_path / "p1").exists()
    with pytest.raises(ValueError, match="log_every must be >= 1"):
        MetricsLog(str(tmp_path), every=0)
    (tmp_path / METRICS_FILE).write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo\n')
    with pytest.raises(ValueError, match=rf"{METRICS_FILE}:2: invalid JSON"):
        read_metrics(str(tmp_path))
    assert read_metrics(str(tmp_path / "none")) == []
