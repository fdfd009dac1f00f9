"""Grain input pipelines: a weighted mixture of tasks, shuffled, repeated, batched
globally and sharded per process, featurised lazily in background threads (in worker
processes when asked), padded to length buckets, or packed several to a row
(`data/packing.py`).

Every process draws the same global batches (same shuffle, same task per step) and
featurises only its own slice; the bucket comes from the token lengths of the whole global
batch (`TaskSource.lengths`, measured up front), so all processes pad to the same shape in
every step without talking to each other.

Each batch comes from one task, so text-only and image tasks never share a batch and a
batch has one of a few static shapes: (batch, bucket) tokens, plus (batch * patches,
patch_dim) pixels for image tasks. Every batch also carries `task_index` and
`example_index` [B] (which task source, which of its examples): bookkeeping for the host,
never given to the model, so a bad batch can be named (packed batches: [rows, examples
per row], -1 in empty slots). The iterator's state is a small
dict that the checkpoint stores beside the model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import grain
import numpy as np

from rmpl_jax.data.buckets import bucket_length
from rmpl_jax.data.packing import PackPlan, packed_task_batches

Features = dict[str, np.ndarray]
TASK_INDEX, EXAMPLE_INDEX = "task_index", "example_index"
ID_KEYS = (TASK_INDEX, EXAMPLE_INDEX)
TOKEN_KEYS = ("input_ids", "loss_mask", "attention_mask", "segment_ids")  # per token; the rest are image inputs


@dataclasses.dataclass(frozen=True)
class TaskSource:
    """One task of a stage: random-access examples and their mixture weight."""

    name: str
    examples: Sequence[Any]
    weight: float
    # Token length of each example (`Featurizer.token_lengths`): the bucket of a global batch
    # is decided from them. Needed with several processes; one process measures its batch.
    lengths: Sequence[int] | None = None


@dataclasses.dataclass(frozen=True)
class _ProcessSlice:
    """Global batch of example indices -> this process's padded batch (a class, so worker
    processes can pickle it). The pad length is the bucket of the global batch's longest
    example, the same on every process."""

    examples: Sequence[Any]
    lengths: np.ndarray | None
    featurize: Callable[[Any], Features]
    task_index: int
    shard_index: int
    local_batch: int
    buckets: tuple[int, ...]
    pad_id: int

    def __call__(self, indices: np.ndarray) -> Features:
        indices = np.asarray(indices)
        length = None if self.lengths is None else bucket_length(int(self.lengths[indices].max()), self.buckets)
        mine = indices[self.shard_index * self.local_batch : (self.shard_index + 1) * self.local_batch]
        examples = []
        for index in mine.tolist():
            features = dict(self.featurize(self.examples[index]))
            features[TASK_INDEX] = np.int32(self.task_index)
            features[EXAMPLE_INDEX] = np.int32(index)
            examples.append(features)
        return pad_and_stack(examples, self.buckets, self.pad_id, length=length)


def pad_and_stack(
    examples: Sequence[Features], buckets: Sequence[int], pad_id: int, length: int | None = None
) -> Features:
    """Right-pads token arrays to `length` (default: the bucket of the longest example) and
    stacks them.

    `input_ids`, `loss_mask` -> [B, L] with `attention_mask`; every other key (the family's
    image inputs) is concatenated over the examples along its first axis
    (`concat_image_inputs`).
    """
    longest = max(len(e["input_ids"]) for e in examples)
    if length is None:
        length = bucket_length(longest, buckets)
    elif longest > length:
        raise ValueError(
            f"an example has {longest} tokens but its global batch was measured to fit {length}; "
            "the measured token lengths (Featurizer.token_lengths) disagree with the featuriser"
        )
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
    images = [{k: v for k, v in e.items() if k not in TOKEN_KEYS and k not in ID_KEYS} for e in examples]
    if any(images):
        out.update(concat_image_inputs(images))
    return out


def concat_image_inputs(per_example: Sequence[Features]) -> Features:
    """The image inputs of several examples (or prompts) as one batch's: each key concatenated
    along its first axis, in example order. Every example needs the same keys: text-only and
    photo examples belong to separate tasks (or decode batches with photos carry them all)."""
    keys = set(per_example[0])
    if not keys or any(set(e) != keys for e in per_example):
        raise ValueError(
            "a batch mixes examples with and without images; keep text-only and image examples in separate tasks"
        )
    return {k: np.concatenate([np.asarray(e[k]) for e in per_example]) for k in sorted(keys)}


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
    positions in `task.examples`): its `batch_size` slice of each global batch of
    `batch_size * shard_count` examples, padded to the global batch's bucket."""
    if len(task.examples) < shard_count:
        raise ValueError(
            f"task {task.name!r} has {len(task.examples)} examples, fewer than "
            f"the {shard_count} processes that share it"
        )
    lengths = None
    if task.lengths is not None:
        lengths = np.asarray(task.lengths, np.int64)
        if lengths.shape != (len(task.examples),):
            raise ValueError(f"task {task.name!r}: {lengths.size} lengths for {len(task.examples)} examples")
    elif shard_count > 1:
        raise ValueError(
            f"task {task.name!r}: {shard_count} processes need the examples' token lengths "
            "(TaskSource.lengths) to agree on each batch's length bucket"
        )
    slicer = _ProcessSlice(
        task.examples, lengths, featurize, task_index, shard_index, batch_size, tuple(buckets), pad_id
    )
    return (
        grain.MapDataset.range(len(task.examples))
        .shuffle(seed=seed)
        .repeat()
        .batch(batch_size * shard_count, drop_remainder=True, batch_fn=np.asarray)
        .map(slicer)
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
    prefetch: int = 2,
    packing: Sequence[PackPlan | None] | None = None,
) -> grain.IterDataset:
    """Batches drawn from the tasks in proportion to their weights; a batch's `task_index`
    is the position in `tasks` (tasks of weight 0 included).

    `batch_size` is per process. `prefetch` batches are featurised ahead in background
    threads (0: on demand), so the next batch is ready when a train step ends; with
    `num_workers` > 0 featurisation runs in that many processes (the featurize function
    must then be picklable). `packing`: one `data.packing.PackPlan` per task (None: that
    task pads each example to its bucket); a packed batch has `segment_ids` and an
    `example_index` [rows, examples per row] (-1 in empty slots).
    """
    used = [(index, t) for index, t in enumerate(tasks) if t.weight > 0]
    if not used:
        raise ValueError("no task with a positive weight")
    plans = list(packing) if packing is not None else [None] * len(tasks)
    if len(plans) != len(tasks):
        raise ValueError(f"{len(plans)} packing plans for {len(tasks)} tasks")
    # Bounded: Grain's default read-ahead (16 threads, 500 elements) would hold hundreds of
    # featurised batches, pixels included, and crowd the host thread that dispatches steps.
    read = grain.ReadOptions(num_threads=min(prefetch, 2), prefetch_buffer_size=prefetch)
    # A packed task reads examples (not batches) ahead: `prefetch` batches' worth.
    read_examples = grain.ReadOptions(num_threads=min(prefetch, 2), prefetch_buffer_size=prefetch * batch_size)
    streams = []
    for i, (index, t) in enumerate(used):
        shared = dict(seed=seed + 7919 * i, shard_index=shard_index, shard_count=shard_count, task_index=index)
        if plans[index] is None:
            streams.append(task_batches(t, featurize, batch_size=batch_size, buckets=buckets, pad_id=pad_id, **shared))
        else:
            streams.append(
                packed_task_batches(t.examples, featurize, plans[index], pad_id=pad_id, read=read_examples, **shared)
            )
    weights = [t.weight for _, t in used]
    if all(isinstance(stream, grain.MapDataset) for stream in streams):
        mixed = grain.MapDataset.mix(streams, weights).to_iter_dataset(read)
    else:
        streams = [s.to_iter_dataset(read) if isinstance(s, grain.MapDataset) else s for s in streams]
        mixed = grain.IterDataset.mix(streams, weights)
    if num_workers > 0:
        mixed = mixed.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
    return mixed
