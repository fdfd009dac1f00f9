"""tools/aot_memory.py compiles the product train step and the decode loop ahead of time on
8 devices (XLA:CPU here; the same code compiles for abstract TPU chips with libtpu) and
prints one JSON line per program with XLA's per-device memory."""

from __future__ import annotations

import pytest

from tests.testing.subproc import run_json

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
