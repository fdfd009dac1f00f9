"""Packed training rows: several examples of one task share a row of `length` tokens, so a
batch holds tokens instead of padding.

Grain's first-fit packer (`grain.experimental.FirstFitPackIterDataset`) fills the rows. Every
feature of an example has its own budget per row, and an example goes into a row only if all
of them fit: `length` tokens, `answers` answer tokens (the positions the LM head computes,
`train.head_at_targets`), `photos` photos (their image inputs, e.g. Qwen's patches), and
`examples` examples (the ids that name them). A batch is `rows` packed rows with
`segment_ids` (1, 2, ... per example, 0 on padding) for the model (`models/segments.py`):
attention stays inside each example, positions restart, the loss is the same sum over answer
tokens. Photos sit in per-row slots; unused slots are zero photos whose features no token
takes. A family's static image layout (one row per photo, equal for every photo of a
training run) is tiled over all the slots.

Every process packs its own examples into `rows` rows of `length` tokens, so batch shapes are
equal across processes; the iterator state (Grain's) is checkpointed as before.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import grain
import numpy as np
from grain.experimental import FirstFitPackIterDataset

from rmpl_jax.data.buckets import bucket_length

Features = dict[str, np.ndarray]
ANSWER, EXAMPLE = "_answer", "example_index"  # packed bookkeeping features
TOKEN_FEATURES = ("input_ids", "loss_mask")


@dataclasses.dataclass(frozen=True)
class PackPlan:
    """The packed batch shape of one task (per process).

    length: tokens per row. rows: rows per batch. answers: answer tokens per row.
    photos: photo slots per row (0: a text task). examples: examples per row at most.
    image_rows: rows each photo adds to each image input (Qwen: patches; LLaVA: 1).
    static: the static layout of one photo per static key (tiled over the slots).
    """

    length: int
    rows: int
    answers: int
    examples: int
    photos: int = 0
    image_rows: tuple[tuple[str, int], ...] = ()
    static: tuple[tuple[str, tuple[int, ...]], ...] = ()

    def length_struct(self) -> dict[str, int]:
        """Grain's per-feature budget of one row."""
        out = {"input_ids": self.length, "loss_mask": self.length, ANSWER: self.answers, EXAMPLE: self.examples}
        for key, per_photo in self.image_rows:
            out[key] = self.photos * per_photo
        return out


def plan_packing(
    name: str,
    lengths: Sequence[int],
    *,
    batch_size: int,
    length: int,
    answers: int,
    row_multiple: int,
    rows: int = 0,
    photo_features: Features | None = None,
    static_keys: Sequence[str] = (),
) -> PackPlan:
    """The packed shape of a task whose examples have token `lengths` (global batch).

    rows: `rows` when given, else as many rows as `batch_size` examples of the task's mean
    length fill (so a step sees about `batch_size` examples, as unpacked), rounded up to a
    multiple of `row_multiple` (processes x data-parallel devices x microbatches).
    photo_features: one featurised example with a photo (its image inputs give the rows per
    photo and the static layout); photo slots per row: as many as the shortest photo
    example fits. `length` must hold the longest example.
    """
    lengths = np.asarray(lengths, np.int64)
    longest = int(lengths.max(initial=1))
    if longest > length:
        raise ValueError(f"task {name!r}: an example has {longest} tokens, more than the packed row length {length}")
    if rows <= 0:
        rows = math.ceil(batch_size * float(lengths.mean()) / length) if len(lengths) else 1
    rows = max(row_multiple, -(-rows // row_multiple) * row_multiple)
    examples = max(1, length // max(1, int(lengths.min(initial=length))))
    if photo_features is None:
        return PackPlan(length, rows, answers, examples)
    image_rows, static = [], []
    for key, value in sorted(photo_features.items()):
        if key in TOKEN_FEATURES:
            continue
        value = np.asarray(value)
        if key in static_keys:
            static.append((key, tuple(value.reshape(-1).tolist())))
        else:
            image_rows.append((key, int(value.shape[0])))
    photos = examples
    return PackPlan(length, rows, answers, examples, photos, tuple(image_rows), tuple(static))


def _static_layout(plan: PackPlan, features: Features) -> None:
    for key, values in plan.static:
        got = tuple(np.asarray(features.get(key)).reshape(-1).tolist())
        if got != values:
            raise ValueError(
                f"an example's {key} is {got}, another's {values}: packed photos must all have one size "
                "(set data.image_side)"
            )


def packer_features(features: Features, index: int, plan: PackPlan) -> Features:
    """An example's features as the packer sees them: its static layout checked and left
    out (the batch tiles it), its answer tokens and its index as features of their own."""
    features = dict(features)
    _static_layout(plan, features)
    for key, _ in plan.static:
        features.pop(key)
    features[ANSWER] = np.ones(int(np.count_nonzero(features["loss_mask"])), np.int32)
    features[EXAMPLE] = np.asarray([index], np.int32)
    return features


@dataclasses.dataclass(frozen=True)
class _PackFeatures:
    """Example index -> `packer_features` (a class, so worker processes can pickle it)."""

    examples: Sequence[Any]
    featurize: Callable[[Any], Features]
    plan: PackPlan

    def __call__(self, index: int) -> Features:
        return packer_features(self.featurize(self.examples[index]), index, self.plan)


@dataclasses.dataclass(frozen=True)
class _AssembleBatch:
    """Packed rows [rows, ...] -> the model's batch (per-row photo slots flattened)."""

    plan: PackPlan
    task_index: int
    pad_id: int

    def __call__(self, packed: Features) -> Features:
        segments = packed["input_ids_segment_ids"].astype(np.int32)
        input_ids = np.where(segments > 0, packed["input_ids"], self.pad_id).astype(np.int32)
        out = {
            "input_ids": input_ids,
            "loss_mask": packed["loss_mask"].astype(np.int32),
            "attention_mask": (segments > 0).astype(np.int32),
            "segment_ids": segments,
            "task_index": np.full(input_ids.shape[0], self.task_index, np.int32),
            # Empty example slots are -1 (bookkeeping only: names the examples of a bad batch).
            EXAMPLE: np.where(packed[f"{EXAMPLE}_segment_ids"] > 0, packed[EXAMPLE], -1).astype(np.int32),
        }
        for key, _ in self.plan.image_rows:
            value = packed[key]
            out[key] = value.reshape(-1, *value.shape[2:])
        slots = input_ids.shape[0] * self.plan.photos
        for key, values in self.plan.static:
            out[key] = np.tile(np.asarray(values, np.int64).reshape(1, -1), (slots, 1))
        return out


def packed_task_batches(
    examples: Sequence[Any],
    featurize: Callable[[Any], Features],
    plan: PackPlan,
    *,
    pad_id: int,
    seed: int,
    shard_index: int,
    shard_count: int,
    task_index: int,
    read: grain.ReadOptions,
) -> grain.IterDataset:
    """This process's infinite stream of packed batches of one task: its share of the
    shuffled examples, featurised ahead in background threads, packed first-fit into
    `plan.rows // shard_count` rows per batch."""
    if plan.rows % shard_count:
        raise ValueError(f"{plan.rows} packed rows do not split over {shard_count} processes")
    stream = (
        grain.MapDataset.range(len(examples))
        .shuffle(seed=seed)
        .repeat()[shard_index::shard_count]
        .map(_PackFeatures(examples, featurize, plan))
        .to_iter_dataset(read)
    )
    return pack_rows(stream, plan, plan.rows // shard_count, pad_id=pad_id, seed=seed, task_index=task_index)


def pack_rows(
    features: grain.IterDataset,
    plan: PackPlan,
    rows: int,
    *,
    pad_id: int,
    seed: int,
    task_index: int = 0,
    drop_remainder: bool = True,
) -> grain.IterDataset:
    """Batches of `rows` packed rows from a stream of `packer_features`."""
    # More bins than rows: a row closes only when no later example fits it, so rows fill up.
    packed = FirstFitPackIterDataset(
        features, length_struct=plan.length_struct(), num_packing_bins=4 * rows, seed=seed, shuffle_bins=True
    )
    return packed.batch(rows, drop_remainder=drop_remainder).map(_AssembleBatch(plan, task_index, pad_id))


def pack_length(configured: int, buckets: Sequence[int]) -> int:
    """The packed row length: `data.pack_length`, or the largest bucket when it is 0."""
    return int(configured) if configured else int(bucket_length(max(buckets), buckets))


def plan_sources(
    sources: Sequence[Any],
    featurize: Any,
    *,
    batch_size: int,
    length: int,
    rows: int,
    row_multiple: int,
    head_at_targets: bool,
    static_keys: Sequence[str],
) -> tuple[list[PackPlan | None], int | None]:
    """One plan per task source (None for a task of weight 0) and the answer positions per
    row the step gathers for the LM head (None: every position).

    Answers per row: room for the longest answer and for 1.5 times the answer tokens a row of
    `length` holds on average (rounded up to a multiple of 64, at most `length`), so the
    answer budget rarely closes a row before its tokens do.
    """
    answers = length
    if head_at_targets:
        answer_lengths = [featurize.target_lengths(s.examples) for s in sources if s.examples]
        longest = max((int(a.max(initial=1)) for a in answer_lengths), default=1)
        token_total = sum(float(np.sum(s.lengths)) for s in sources if s.examples and s.lengths is not None)
        answer_total = sum(float(a.sum()) for a in answer_lengths)
        per_row = 1.5 * length * answer_total / max(token_total, 1.0)
        answers = min(length, -(-max(longest, math.ceil(per_row)) // 64) * 64)
    plans: list[PackPlan | None] = []
    for source in sources:
        if source.weight <= 0 or not source.examples:
            plans.append(None)
            continue
        lengths = source.lengths if source.lengths is not None else featurize.token_lengths(source.examples)
        first = source.examples[0]
        plan = plan_packing(
            source.name,
            lengths,
            batch_size=batch_size,
            length=length,
            answers=answers,
            row_multiple=row_multiple,
            rows=rows,
            photo_features=featurize(first) if first.image else None,
            static_keys=static_keys,
        )
        photos = f", {plan.photos} photo slots" if plan.photos else ""
        print(
            f"  packing {source.name}: {plan.rows} rows x {plan.length} tokens per batch, "
            f"up to {plan.examples} examples{photos} and {plan.answers} answer tokens per row"
        )
        plans.append(plan)
    return plans, answers if head_at_targets else None
