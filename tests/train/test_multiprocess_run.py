"""Two processes run the real training mode together (one CPU device each, Gloo): the
synthetic corpus, the Grain pipeline with each process featurising its half of every
global batch (or packing its own examples), the demo model and collective checkpoints.
Every step both processes have the same shape: padded, although their own examples often
need different buckets; packed, rows of one length."""

from __future__ import annotations

import json
import os

import pytest

from rmpl_jax.train.metrics_log import read_metrics
from tests.testing.subproc import NPROC, run_workers


@pytest.mark.parametrize("packing", [False, True], ids=["padded", "packed"])
def test_two_processes_agree_on_every_step_shape(tmp_path, packing):
    run_workers("train_run_worker.py", tmp_path, extra_env={"RMPL_TEST_PACKING": str(int(packing))})
    seen = [json.loads((tmp_path / f"batches_{i}.json").read_text()) for i in range(NPROC)]
    assert len(seen[0]) == len(seen[1]) == 4  # one batch per step
    for step, (a, b) in enumerate(zip(*seen), start=1):
        assert a["shape"] == b["shape"], f"step {step}: process shapes {a['shape']} and {b['shape']}"
        assert a["packed"] == b["packed"] == packing
        if packing:  # rows of the largest bucket, the same number on each process
            assert a["shape"][1] == 768
        else:
            assert a["shape"][0] == 2 and a["shape"][1] == max(a["own_bucket"], b["own_bucket"])
    if not packing:
        # The case the shared schedule is for happened: padding to its own longest example, a
        # process would have disagreed with the other in these steps.
        assert any(a["own_bucket"] != b["own_bucket"] for a, b in zip(*seen)), seen
    assert [line["step"] for line in read_metrics(tmp_path / "stage1")] == [2, 4]
    assert sorted(int(d) for d in os.listdir(tmp_path / "stage1" / "checkpoints") if d.isdigit())[-1] == 4
