"""Grain input pipelines: a weighted mixture of tasks, shuffled, repeated, sharded per
process, featurised lazily (in workers when asked), padded to length buckets, batched.

Each batch comes from one task, so text-only and image tasks never share a batch and a
batch has one of a few static shapes: (batch, bucket) tokens, plus (batch * patches,
patch_dim) pixels for image tasks. Every batch also carries `task_index` and
`example_index` [B] (which task source, which of its examples): bookkeeping for the host,
never given to the model, so a bad batch can be named. The iterator's state is a small
dict that the checkpoint stores beside the model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import grain
import numpy as np

from rmpl_jax.data.buckets import bucket_length

Features = dict[str, np.ndarray]
TASK_INDEX, EXAMPLE_INDEX = "task_index", "example_index"
ID_KEYS = (TASK_INDEX, EXAMPLE_INDEX)


@dataclasses.dataclass(frozen=True)
class TaskSource:
    """One task of a stage: random-access examples and their mixture weight."""

    name: str
    examples: Sequence[Any]
    weight: float


@dataclasses.dataclass(frozen=True)
class _FeaturizeIndexed:
    """Example index -> its features plus the ids (a class, so worker processes can pickle it)."""

    examples: Sequence[Any]
    featurize: Callable[[Any], Features]
    task_index: int

    def __call__(self, index: int) -> Features:
        features = dict(self.featurize(self.examples[index]))
        features[TASK_INDEX] = np.int32(self.task_index)
        features[EXAMPLE_INDEX] = np.int32(index)
        return features


def pad_and_stack(examples: Sequence[Features], buckets: Sequence[int], pad_id: int) -> Features:
    """Right-pads token arrays to the bucket of the longest example and stacks them.

    `input_ids`, `loss_mask` -> [B, L] with `attention_mask`; `pixel_values` of all
    examples are concatenated along their first axis and `image_grid_thw` (where the family
    has one) stacked [B, 3].
    """
    length = bucket_length(max(len(e["input_ids"]) for e in examples), buckets)
    batch = len(examples)
    input_ids = np.full((batch, length), pad_id, np.int32)
    loss_mask = np.zeros((batch, length), np.int32)
    attention_mask = np.zeros((batch, length), np.int32)
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        input_ids[i, :n] = e["input_ids"]
        loss_mask[i, :n] = e["loss_mask"]
        attention_mask[i, :n] = 1
    out = {"input_ids": input_ids, "loss_mask": loss_mask, "attention_mask": attention_mask}
    for key in ID_KEYS:
        if key in examples[0]:
            out[key] = np.asarray([e[key] for e in examples], np.int32)
    with_pixels = ["pixel_values" in e for e in examples]
    if any(with_pixels):
        if not all(with_pixels):
            raise ValueError(
                "a batch mixes examples with and without images; keep text-only and image examples in separate tasks"
            )
        out["pixel_values"] = np.concatenate([e["pixel_values"] for e in examples]).astype(np.float32)
        if "image_grid_thw" in examples[0]:  # families with a static image layout (Qwen2-VL)
            grids = np.stack([np.asarray(e["image_grid_thw"], np.int64).reshape(3) for e in examples])
            if not (grids == grids[0]).all():
                raise ValueError(f"images of one task must share a size; got grids {grids.tolist()}")
            out["image_grid_thw"] = grids
    return out


def task_batches(
    task: TaskSource,
    featurize: Callable[[Any], Features],
    *,
    batch_size: int,
    buckets: Sequence[int],
    pad_id: int,
    seed: int,
    shard_index: int,
    shard_count: int,
    task_index: int = 0,
) -> grain.MapDataset:
    """This process's infinite stream of batches of one task (ids: `task_index`, example
    positions in `task.examples`)."""
    if len(task.examples) < shard_count:
        raise ValueError(
            f"task {task.name!r} has {len(task.examples)} examples, fewer than "
            f"the {shard_count} processes that share it"
        )
    ds = grain.MapDataset.range(len(task.examples))[shard_index::shard_count]
    return (
        ds.shuffle(seed=seed)
        .repeat()
        .map(_FeaturizeIndexed(task.examples, featurize, task_index))
        .batch(batch_size, drop_remainder=True, batch_fn=lambda xs: pad_and_stack(xs, buckets, pad_id))
    )


def mixture(
    tasks: Sequence[TaskSource],
    featurize: Callable[[Any], Features],
    *,
    batch_size: int,
    buckets: Sequence[int],
    pad_id: int,
    seed: int = 0,
    shard_index: int = 0,
    shard_count: int = 1,
    num_workers: int = 0,
) -> grain.IterDataset:
    """Batches drawn from the tasks in proportion to their weights; a batch's `task_index`
    is the position in `tasks` (tasks of weight 0 included).

    `batch_size` is per process. Featurisation runs in `num_workers` processes when
    positive (the featurize function must then be picklable).
    """
    used = [(index, t) for index, t in enumerate(tasks) if t.weight > 0]
    if not used:
        raise ValueError("no task with a positive weight")
    streams = [
        task_batches(
            t,
            featurize,
            batch_size=batch_size,
            buckets=buckets,
            pad_id=pad_id,
            seed=seed + 7919 * i,
            shard_index=shard_index,
            shard_count=shard_count,
            task_index=index,
        )
        for i, (index, t) in enumerate(used)
    ]
    mixed = grain.MapDataset.mix(streams, [t.weight for _, t in used]).to_iter_dataset()
    if num_workers > 0:
        mixed = mixed.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
    return mixed
