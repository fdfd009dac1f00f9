"""Grain mixture: weights, buckets, per-process shards, and iterator state round trip."""

import collections

import numpy as np
import pytest

from rmpl_jax.data.buckets import bucket_length
from rmpl_jax.data.pipeline import TaskSource, mixture, pad_and_stack


def featurize(x):
    n = x % 7 + 1
    return {"input_ids": np.full(n, x, np.int32), "loss_mask": np.ones(n, np.int32)}


def test_bucket_length():
    assert bucket_length(5, [8, 4, 16]) == 8
    assert bucket_length(16, [8, 16]) == 16
    with pytest.raises(ValueError, match="longer than the largest bucket 16"):
        bucket_length(17, [8, 16])


def test_pad_and_stack_masks_and_images():
    a = {
        "input_ids": np.array([5, 6, 7]),
        "loss_mask": np.array([0, 1, 1]),
        "pixel_values": np.ones((4, 3)),
        "image_grid_thw": np.array([1, 2, 2]),
    }
    b = {
        "input_ids": np.array([8]),
        "loss_mask": np.array([1]),
        "pixel_values": np.zeros((4, 3)),
        "image_grid_thw": np.array([1, 2, 2]),
    }
    batch = pad_and_stack([a, b], buckets=[4, 8], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 0], [8, 0, 0, 0]]
    assert batch["loss_mask"].tolist() == [[0, 1, 1, 0], [1, 0, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 0, 0, 0]]
    assert batch["pixel_values"].shape == (8, 3) and batch["image_grid_thw"].shape == (2, 3)
    with pytest.raises(ValueError, match="mixes examples with and without images"):
        pad_and_stack([a, {"input_ids": [1], "loss_mask": [1]}], [4], 0)


def test_mixture_weights_shapes_and_state():
    tasks = [TaskSource("a", list(range(0, 40)), 1.0), TaskSource("b", list(range(100, 140)), 3.0)]
    it = iter(mixture(tasks, featurize, batch_size=4, buckets=[4, 8], pad_id=-1, seed=3))
    batches = [next(it) for _ in range(40)]
    sources = collections.Counter("b" if b["input_ids"][0, 0] >= 100 else "a" for b in batches)
    assert sources["b"] == 3 * sources["a"]
    assert {b["input_ids"].shape for b in batches} <= {(4, 4), (4, 8)}
    state = it.get_state()
    expected = [next(it)["input_ids"] for _ in range(3)]
    fresh = iter(mixture(tasks, featurize, batch_size=4, buckets=[4, 8], pad_id=-1, seed=3))
    fresh.set_state(state)
    assert all((next(fresh)["input_ids"] == e).all() for e in expected)


def test_process_shards_are_disjoint():
    tasks = [TaskSource("a", list(range(64)), 1.0)]
    seen = []
    for index in range(2):
        it = iter(mixture(tasks, featurize, batch_size=8, buckets=[8], pad_id=-1, shard_index=index, shard_count=2))
        ids = np.concatenate([next(it)["input_ids"][:, 0] for _ in range(4)])
        assert len(set(ids.tolist())) == 32  # one epoch of this process's half, no repeats
        seen.append(set(ids.tolist()))
    assert seen[0].isdisjoint(seen[1]) and len(seen[0] | seen[1]) == 64
