"""Packed batches: the plan's shape, rows filled without crossing examples, photos in per-row
slots with the layout tiled, equal shapes on every process, the iterator state round trip,
and clear errors for what cannot be packed."""

import collections

import numpy as np
import pytest

from rmpl_jax.data.packing import plan_packing
from rmpl_jax.data.pipeline import TaskSource, mixture

PATCHES, DIM = 4, 3  # rows and width of one photo's image input


def text(x):
    n = x % 7 + 2
    return {"input_ids": np.full(n, x, np.int32), "loss_mask": np.r_[np.zeros(n - 1), 1].astype(np.int32)}


def photo(x):
    out = text(x)
    out["pixels"] = np.full((PATCHES, DIM), x, np.float32)
    out["layout"] = np.asarray([[1, 2, 2]])
    return out


def _mixture(tasks, featurize, plans, **kw):
    return iter(mixture(tasks, featurize, batch_size=4, buckets=[16], pad_id=-1, seed=3, packing=plans, **kw))


def _photo_plan(lengths):
    args = dict(batch_size=4, length=16, answers=16, row_multiple=1)
    return plan_packing("p", lengths, **args, photo_features=photo(0), static_keys=("layout",))


def test_plan_fills_batch_size_examples_rounded_to_the_row_multiple():
    plan = plan_packing("t", [4, 6, 8], batch_size=8, length=16, answers=16, row_multiple=2)
    assert (plan.rows, plan.examples, plan.photos) == (4, 4, 0)  # 8 x 6 / 16 = 3 rows -> 4
    assert plan_packing("t", [4], batch_size=8, length=16, answers=16, row_multiple=2, rows=6).rows == 6
    with pytest.raises(ValueError, match="task 't': an example has 20 tokens, more than the packed row length 16"):
        plan_packing("t", [20], batch_size=8, length=16, answers=16, row_multiple=1)


def test_rows_hold_whole_examples_and_every_token_is_accounted_for():
    examples = list(range(40))
    lengths = [len(text(x)["input_ids"]) for x in examples]
    plan = plan_packing("a", lengths, batch_size=4, length=16, answers=16, row_multiple=1)
    it = _mixture([TaskSource("a", examples, 1.0, lengths=lengths)], text, [plan])
    seen = collections.Counter()
    for _ in range(10):
        batch = next(it)
        assert batch["input_ids"].shape == (plan.rows, 16) and batch["segment_ids"].shape == (plan.rows, 16)
        for row, seg, ids, slots in zip(
            batch["input_ids"], batch["segment_ids"], batch["example_index"], batch["attention_mask"]
        ):
            assert (slots == (seg > 0)).all() and (ids[: seg.max()] >= 0).all() and (ids[seg.max() :] == -1).all()
            for k, index in enumerate(ids[ids >= 0], start=1):
                tokens = row[seg == k]
                assert (tokens == index).all() and len(tokens) == lengths[index]  # one whole example per segment
                seen[int(index)] += 1
            assert (row[seg == 0] == -1).all()  # padding only after the examples
    assert len(seen) == 40  # the shuffled stream reaches every example


def test_photos_sit_in_per_row_slots_and_the_layout_covers_every_slot():
    examples = list(range(20))
    lengths = [len(photo(x)["input_ids"]) for x in examples]
    plan = _photo_plan(lengths)
    assert plan.photos == plan.examples == 16 // 2 and plan.image_rows == (("pixels", PATCHES),)
    batch = next(_mixture([TaskSource("p", examples, 1.0, lengths=lengths)], photo, [plan]))
    rows = plan.rows
    assert batch["pixels"].shape == (rows * plan.photos * PATCHES, DIM)
    assert batch["layout"].tolist() == [[1, 2, 2]] * (rows * plan.photos)
    slots = batch["pixels"][:, 0].reshape(rows, plan.photos, PATCHES)[..., 0]
    for r in range(rows):
        ids = batch["example_index"][r]
        n = int((ids >= 0).sum())
        assert slots[r, :n].tolist() == ids[:n].tolist()  # the row's photos first, in its order
        assert (slots[r, n:] == 0).all()  # then empty slots


def test_photos_of_different_sizes_cannot_share_a_packed_task():
    def odd(x):
        out = photo(x)
        out["layout"] = np.asarray([[1, 2, 4]]) if x == 5 else out["layout"]
        return out

    plan = _photo_plan([9] * 8)
    it = _mixture([TaskSource("p", list(range(8)), 1.0)], odd, [plan])
    with pytest.raises(ValueError, match=r"an example's layout is \(1, 2, 4\), another's \(1, 2, 2\)"):
        for _ in range(8):
            next(it)


def test_the_answer_budget_closes_rows():
    plan = plan_packing("a", [8] * 30, batch_size=8, length=64, answers=2, row_multiple=1)
    batch = next(_mixture([TaskSource("a", list(range(30)), 1.0)], text, [plan]))
    assert (batch["loss_mask"].sum(axis=1) <= 2).all() and (batch["segment_ids"].max(axis=1) <= 2).all()


def test_processes_get_equal_shapes_and_the_same_task_each_step():
    a, b = list(range(0, 24)), list(range(100, 124))
    tasks = [TaskSource("a", a, 1.0), TaskSource("b", b, 2.0)]
    plans = [plan_packing(t.name, [9] * 24, batch_size=8, length=16, answers=16, row_multiple=2) for t in tasks]
    shards = [_mixture(tasks, text, plans, shard_index=i, shard_count=2) for i in range(2)]
    for _ in range(9):
        first, second = (next(s) for s in shards)
        assert first["input_ids"].shape == second["input_ids"].shape == (plans[0].rows // 2, 16)
        assert (first["task_index"] == second["task_index"][0]).all()
        assert not set(first["example_index"].ravel()) & set(second["example_index"].ravel()) - {-1}


def test_packed_iterator_state_round_trip():
    tasks = [TaskSource("a", list(range(30)), 1.0), TaskSource("b", list(range(100, 130)), 1.0)]
    plans = [plan_packing(t.name, [9] * 30, batch_size=4, length=16, answers=16, row_multiple=1) for t in tasks]
    it = _mixture(tasks, text, plans)
    for _ in range(7):
        next(it)
    state = it.get_state()
    expected = [next(it) for _ in range(5)]
    fresh = _mixture(tasks, text, plans)
    fresh.set_state(state)
    for want in expected:
        got = next(fresh)
        assert all((got[k] == want[k]).all() for k in want)


def test_packed_and_unpacked_tasks_mix():
    tasks = [TaskSource("a", list(range(30)), 1.0), TaskSource("b", list(range(100, 130)), 1.0)]
    plans = [plan_packing("a", [9] * 30, batch_size=4, length=16, answers=16, row_multiple=1), None]
    it = _mixture(tasks, text, plans)
    kinds = {("segment_ids" in b, b["input_ids"].shape[0]) for b in (next(it) for _ in range(6))}
    assert kinds == {(True, plans[0].rows), (False, 4)}
