"""Two processes on localhost (4 host CPU devices each, Gloo) form one 8-device job: a few
train steps on a mesh spanning both, a checkpoint with per-process data states, a restore,
and the losses/adapters of a single-device run of the same global batches.
Model: the tiny Qwen2.5-VL of tests/models/hf_tiny.py. Tolerances as in test_sharded_step (loss rel 1e-5,
adapters abs 5e-5)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from tests.testing.subproc import REPO, worker_env

NPROC = 2
TIMEOUT_S = 240


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_training_and_checkpoint(tmp_path):
    port = _free_port()
    script = REPO / "tests" / "train" / "multiprocess_worker.py"
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(i), str(NPROC), str(port), str(tmp_path)],
            cwd=REPO,
            env=worker_env(4),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(NPROC)
    ]
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=TIMEOUT_S))
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail(f"multi-process workers did not finish in {TIMEOUT_S}s")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for i, (p, (_, err)) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, f"process {i} failed (rc={p.returncode}):\n{err[-4000:]}"
    result = json.loads(outs[0][0].strip().splitlines()[-1])
    assert result["mesh"] == {"data": 4, "fsdp": 2, "tensor": 1}
    for a, b in zip(result["losses"], result["ref_losses"]):
        assert abs(a - b) <= 1e-5 * abs(b), result
    assert result["max_param_abs_diff"] < 5e-5, result
    assert result["restored_equal"] and result["restored_step"] == 3
