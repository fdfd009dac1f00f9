"""tools/aot_memory.py compiles the product train step and the decode loop ahead of time on
8 devices (XLA:CPU here; the same code compiles for abstract TPU chips with libtpu) and
prints one JSON line per program with XLA's per-device memory; Qwen2.5-VL and Gemma 3."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.testing.subproc import REPO, run_json, worker_env

FIELDS = ("argument_bytes", "output_bytes", "temp_bytes", "alias_bytes", "total_bytes", "compile_s")


@pytest.fixture(scope="module")
def records():
    out = run_json("aot_worker.py", devices=8, timeout=400)
    assert out["printed"] == out["records"]  # one JSON line per compiled program
    return {r["step"]: r for r in out["records"]}


def test_train_and_decode_records(records):
    train, decode = records["train"], records["decode"]
    for record in (train, decode):
        assert all(isinstance(record[f], (int, float)) and record[f] >= 0 for f in FIELDS), record
        parts = record["argument_bytes"] + record["output_bytes"] + record["temp_bytes"] - record["alias_bytes"]
        assert record["total_bytes"] == parts > 0
        assert record["devices"] == 8 and record["mesh"] == {"data": 1, "fsdp": 8, "tensor": 1}
    # The defaults of an HF run: remat on, adapters donated (aliased), 16-row answer budget rounded to 64.
    assert train["remat"] == "full" and train["alias_bytes"] > 0 and train["global_batch"] == 8
    assert train["max_targets"] == 64
    assert decode["batch"] == 8 and decode["new_tokens"] == 4


# The Gemma 3 path: a preset found through its own family's presets, the depth override under
# `text_config`, and Gemma's photo (begin/end-of-image around `tokens_per_image` image tokens,
# pixels at the tower's square whatever --image-side says).
GEMMA = ["--model", "gemma-3-tiny", "--topology", "cpu:8", "--layers", "1", "--batch", "8", "--seq", "96"]
GEMMA += ["--answer", "16", "--decode-batch", "8", "--prompt", "64", "--new-tokens", "4"]


def run_tool(args: list[str], timeout: float = 120) -> list[dict]:
    """tools/aot_memory.py in a fresh Python with 8 host devices; its JSON lines."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "aot_memory.py"), *args],
        cwd=REPO,
        env=worker_env(8),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(f"aot_memory.py {' '.join(args)} failed (rc={proc.returncode}):\n{proc.stderr[-4000:]}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def test_gemma3_train_step_compiles():
    (train,) = run_tool([*GEMMA, "--what", "train"])
    assert train["step"] == "train" and train["model"] == "gemma-3-tiny"
    assert all(isinstance(train[f], (int, float)) and train[f] >= 0 for f in FIELDS), train
    assert train["devices"] == 8 and train["mesh"] == {"data": 1, "fsdp": 8, "tensor": 1}
    assert train["image_side"] == 56  # the tiny tower's square, not --image-side's 448
    assert train["remat"] == "full" and train["alias_bytes"] > 0 and train["max_targets"] == 64


def test_gemma3_decode_loop_compiles():
    (decode,) = run_tool([*GEMMA, "--what", "decode"])
    assert decode["step"] == "decode" and decode["batch"] == 8 and decode["new_tokens"] == 4
    assert decode["total_bytes"] > 0
