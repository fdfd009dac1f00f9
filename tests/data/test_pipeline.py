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
        "pixels": np.ones((4, 3)),  # a family's image inputs: rows of its photo, and a layout row
        "layout": np.array([[1, 2, 2]]),
    }
    b = {
        "input_ids": np.array([8]),
        "loss_mask": np.array([1]),
        "pixels": np.zeros((4, 3)),
        "layout": np.array([[1, 2, 2]]),
    }
    batch = pad_and_stack([a, b], buckets=[4, 8], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 0], [8, 0, 0, 0]]
    assert batch["loss_mask"].tolist() == [[0, 1, 1, 0], [1, 0, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 0, 0, 0]]
    assert batch["pixels"].tolist() == [[1.0] * 3] * 4 + [[0.0] * 3] * 4  # concatenated in example order
    assert batch["layout"].shape == (2, 3)
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


def _lengths(examples):
    return [len(featurize(x)["input_ids"]) for x in examples]


def test_process_shards_are_disjoint():
    examples = list(range(64))
    tasks = [TaskSource("a", examples, 1.0, lengths=_lengths(examples))]
    seen = []
    for index in range(2):
        it = iter(mixture(tasks, featurize, batch_size=8, buckets=[8], pad_id=-1, shard_index=index, shard_count=2))
        ids = np.concatenate([next(it)["input_ids"][:, 0] for _ in range(4)])
        assert len(set(ids.tolist())) == 32  # one epoch of this process's half, no repeats
        seen.append(set(ids.tolist()))
    assert seen[0].isdisjoint(seen[1]) and len(seen[0] | seen[1]) == 64


def test_processes_pad_each_step_to_the_global_batch_bucket():
    # Lengths 1..7 with buckets 2/4/8: a process's own 2 examples often fit a smaller bucket
    # than the global batch of 4 needs, so padding per process would disagree between them.
    examples = list(range(200))
    tasks = [
        TaskSource("a", examples[:100], 1.0, lengths=_lengths(examples[:100])),
        TaskSource("b", examples[100:], 2.0, lengths=_lengths(examples[100:])),
    ]
    streams = [
        iter(mixture(tasks, featurize, batch_size=2, buckets=[2, 4, 8], pad_id=-1, shard_index=i, shard_count=2))
        for i in range(2)
    ]
    own_buckets_differ = 0
    for _ in range(60):
        a, b = (next(s) for s in streams)
        assert a["input_ids"].shape == b["input_ids"].shape
        assert (a["task_index"] == b["task_index"]).all()  # same task in the same step
        own = [bucket_length(int(x["attention_mask"].sum(1).max()), [2, 4, 8]) for x in (a, b)]
        assert a["input_ids"].shape[1] == max(own)  # the global batch's bucket, no larger
        own_buckets_differ += own[0] != own[1]
    assert own_buckets_differ > 5  # the case the shared schedule exists for did occur


def test_several_processes_need_token_lengths():
    tasks = [TaskSource("a", list(range(8)), 1.0)]
    with pytest.raises(ValueError, match="2 processes need the examples' token lengths"):
        mixture(tasks, featurize, batch_size=2, buckets=[8], pad_id=-1, shard_index=0, shard_count=2)
    with pytest.raises(ValueError, match="task 'a': 3 lengths for 8 examples"):
        mixture(
            [TaskSource("a", list(range(8)), 1.0, lengths=[1, 2, 3])], featurize, batch_size=2, buckets=[8], pad_id=-1
        )


def test_measured_lengths_that_disagree_with_the_featuriser_are_named():
    examples = list(range(8))
    tasks = [TaskSource("a", examples, 1.0, lengths=[1] * 8)]  # claims every example fits bucket 2
    it = iter(mixture(tasks, featurize, batch_size=4, buckets=[2, 8], pad_id=-1, prefetch=0))
    with pytest.raises(ValueError, match="measured to fit 2"):
        for _ in range(4):
            next(it)
