"""Only LoRA adapters and config-marked params (the vision merger here) are trained: they
alone get optimizer state and change; every frozen param stays bit-identical.
Model: the tiny Qwen2.5-VL of tests/models/hf_tiny.py with vision tower, an image+text batch."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from rmpl_jax.train import sharding as shd
from rmpl_jax.train.optimizer import make_optimizer
from rmpl_jax.train.state import create_train_state, split_model
from rmpl_jax.train.step import make_train_step
from tests.testing import train_models as tiny


@pytest.fixture(scope="module")
def vision_model():
    return tiny.build(with_vision=True)


def test_split_selects_adapters_and_regex(vision_model):
    _layout, trainable, frozen = split_model(vision_model, tiny.MERGER_REGEX)
    lora_names = {
        shd.path_str(p)
        for p, _ in jax.tree_util.tree_flatten_with_path(
            nnx.state(vision_model, nnx.LoRAParam), is_leaf=lambda x: isinstance(x, nnx.Variable)
        )[0]
    }
    merger = {n for n in trainable if n.startswith("visual/merger/")}
    assert lora_names and merger
    assert set(trainable) == lora_names | merger
    assert not set(frozen) & set(trainable)
    assert not any("lora" in n for n in frozen)
    # Without the regex the merger is frozen.
    _, tr2, fr2 = split_model(vision_model)
    assert set(tr2) == lora_names and merger <= set(fr2)


def test_regex_that_matches_nothing_is_an_error(vision_model):
    with pytest.raises(ValueError, match="matched no parameter"):
        split_model(vision_model, [tiny.MERGER_REGEX, r"^visual/mergr/"])


def _opt_param_names(opt_state):
    names = set()
    for path, _ in jax.tree_util.tree_flatten_with_path(opt_state)[0]:
        names |= {k.key for k in path if isinstance(getattr(k, "key", None), str)}
    return names


def test_only_trainables_get_optimizer_state_and_change(vision_model):
    layout, trainable, frozen = split_model(vision_model, tiny.MERGER_REGEX)
    frozen_before = {n: np.asarray(v) for n, v in frozen.items()}
    trainable_before = {n: np.asarray(v) for n, v in trainable.items()}
    mesh = shd.make_mesh((1, 1, 1), devices=jax.devices()[:1])
    tx, _ = make_optimizer(1e-2, grad_clip_norm=None)
    state = create_train_state(layout, trainable, frozen, tx, mesh)
    assert _opt_param_names(state.opt_state) == set(trainable)
    step = make_train_step(
        layout,
        tx,
        mesh,
        state,
        loss_chunk_size=8,
        batch_logical_axes={"pixel_values": (None, None)},
        static_keys=("image_grid_thw",),
    )
    losses = []
    for k in range(2):  # LoRA B starts at 0, so A first moves in step 2
        state, metrics = step(state, tiny.image_batch(k))
        losses.append(float(metrics["loss"]))
    assert all(np.isfinite(losses)) and float(metrics["tokens"]) == 8.0
    for n, before in trainable_before.items():
        assert not np.array_equal(np.asarray(state.trainable[n]), before), f"{n} did not train"
    for n, before in frozen_before.items():
        assert np.array_equal(np.asarray(state.frozen[n]), before), n
    # The caller's model keeps its arrays (only the state's own copies were donated).
    assert np.array_equal(np.asarray(trainable[next(iter(trainable))]), trainable_before[next(iter(trainable))])
    # A trained merger means gradient reached it through the image features.
    assert any(n.startswith("visual/merger/") for n in state.trainable)


@pytest.fixture(scope="module")
def text_setup():
    model = tiny.build()
    layout, trainable, frozen = split_model(model)
    mesh = shd.make_mesh((1, 1, 1), devices=jax.devices()[:1])
    tx, _ = make_optimizer(1e-2)
    return layout, trainable, frozen, tx, mesh


def test_bf16_compute_option_keeps_f32_masters(text_setup):
    layout, trainable, frozen, tx, mesh = text_setup
    losses = {}
    for dtype in (None, "bfloat16"):
        state = create_train_state(layout, trainable, frozen, tx, mesh, frozen_dtype=dtype)
        step = make_train_step(layout, tx, mesh, state, compute_dtype=dtype, loss_chunk_size=8)
        state, m = step(state, tiny.text_batch(0))
        losses[dtype] = float(m["loss"])
        assert all(v.dtype == np.float32 for v in state.trainable.values())
        if dtype:
            assert state.frozen["lm_head/kernel"].dtype == jax.numpy.bfloat16
    # Weights rounded to bf16 shift the loss a little, not a lot.
    assert losses[None] != losses["bfloat16"]
    assert abs(losses[None] - losses["bfloat16"]) < 1e-2 * losses[None]


def test_malformed_batches_fail_before_tracing(text_setup):
    layout, trainable, frozen, tx, mesh = text_setup
    state = create_train_state(layout, trainable, frozen, tx, mesh)
    step = make_train_step(layout, tx, mesh, state, grad_accum_steps=3)
    batch = tiny.text_batch(0)  # batch size 8
    with pytest.raises(ValueError, match="divisible by grad_accum_steps"):
        step(state, batch)
    with pytest.raises(KeyError, match="loss_mask"):
        step(state, {"input_ids": batch["input_ids"]})
    with pytest.raises(ValueError, match=r"must both be \[B, T\]"):
        step(state, {**batch, "loss_mask": batch["loss_mask"][:, :5]})
