"""Weights go straight to their shards: an HF directory loaded on 8 host devices with the fsdp
mesh HF runs default to leaves each device 1/8 of a kernel, equal to the saved values, and
the train state keeps the loaded arrays (no second copy); predict's decode batch is split
over the same devices."""

from __future__ import annotations

import pytest

from tests.testing.subproc import run_json


@pytest.fixture(scope="module")
def result():
    return run_json("sharded_load_worker.py", devices=8, timeout=240)


def test_weights_are_loaded_into_their_shards(result):
    assert result["devices"] == 8 and result["mesh"] == {"data": 1, "fsdp": 8, "tensor": 1}
    shape = result["kernel_shape"]  # [layers, embed, ...]: embed is the fsdp-sharded axis
    assert result["kernel_shard_shapes"] == [[shape[0], shape[1] // 8, *shape[2:]]], result
    assert result["values_equal"]


def test_train_state_keeps_the_loaded_arrays(result):
    assert result["frozen_shared"] == result["frozen_total"] > 0


def test_decode_rows_are_split_over_the_devices(result):
    assert result["decode_rows_per_device"] == [1]
