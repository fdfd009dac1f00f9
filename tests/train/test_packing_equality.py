"""Packed rows train exactly like the same examples one per row: the train step's loss and the
gradients of every weight (LoRA adapters, the LM and, with photos, the vision tower) agree to
1e-5 in float32, for Qwen2.5-VL, LLaVA and Gemma 3 with photos, Llama and Gemma 3 text; the answers decoded
greedily after a packed step are the unpacked step's.

The examples are featurised by the family's processor from a tiny random HF directory, packed
by the product's packer (`data/packing.py`, Grain's first-fit), and trained by the product's
step with SGD at learning rate 1, so the change of each weight is its gradient.
"""

from __future__ import annotations

import grain
import jax
import numpy as np
import optax
import pytest
from flax import nnx
from PIL import Image

from rmpl_jax.data.featurize import Featurizer
from rmpl_jax.data.packing import pack_rows, packer_features, plan_packing
from rmpl_jax.data.pipeline import ID_KEYS, pad_and_stack
from rmpl_jax.infer.decode import Decoder, Prompt
from rmpl_jax.m2e2.grammar import Context, Example
from rmpl_jax.models import lora
from rmpl_jax.models.family import family_for_dir
from rmpl_jax.train import sharding as shd
from rmpl_jax.train.model_setup import global_batch
from rmpl_jax.train.state import create_train_state, split_model
from rmpl_jax.train.step import make_train_step
from tests.testing.family_dirs import FAMILY_DIRS

pytest.importorskip("torch")

WORDS = [
    "the",
    "army",
    "moved",
    "troops",
    "across",
    "the",
    "border",
    "after",
    "talks",
    "failed",
    "in",
    "the",
    "capital",
    "city",
]


def _examples(tmp_path, photos: bool) -> list[Example]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(6):
        image = None
        if photos:
            image = str(tmp_path / f"p{i}.png")
            Image.fromarray(rng.integers(0, 255, (40 + 8 * i, 56, 3), dtype=np.uint8)).save(image)
        prompt = " ".join(rng.choice(WORDS, 3 + 4 * i))
        target = " ".join(rng.choice(WORDS, 2 + (i % 3) * 3))
        task = "visual_ee" if photos else "text_ee"
        out.append(Example(task, f"e{i}", prompt, target, Context(task), image=image))
    return out


def _batches(family, processor, examples, photos: bool):
    featurize = Featurizer(processor, image_side=56 if photos else None)
    features = [featurize(ex) for ex in examples]
    pad_id = processor.tokenizer.pad_token_id
    lengths = [len(f["input_ids"]) for f in features]
    row = -(-2 * max(lengths) // 32) * 32  # the packed row length and the unpacked bucket
    unpacked = pad_and_stack(features, (row,), pad_id)
    plan = plan_packing(
        "t",
        lengths,
        batch_size=len(features),
        length=row,
        answers=row,
        row_multiple=1,
        rows=len(features),
        photo_features=features[0] if photos else None,
        static_keys=family.static_batch_keys,
    )
    stream = grain.MapDataset.source([packer_features(f, i, plan) for i, f in enumerate(features)])
    (packed,) = list(
        pack_rows(stream.to_iter_dataset(), plan, len(features), pad_id=pad_id, seed=0, drop_remainder=False)
    )
    ids = packed["example_index"]
    assert sorted(ids[ids >= 0].tolist()) == list(range(len(examples)))  # every example once
    assert len(packed["input_ids"]) < len(examples)  # some row holds several
    for batch in (unpacked, packed):
        for key in ID_KEYS:
            batch.pop(key, None)
    return unpacked, packed


def _step(family, hf_dir, batch, max_targets, accum=1):
    model = family.load_hf(hf_dir)
    lora.apply_lora(model, 4, 8.0, family.default_lora_targets, rngs=nnx.Rngs(1))
    layout, trainable, frozen = split_model(model, ".")  # every weight trains: every gradient is compared
    # LoRA B starts at zero, which would leave A's gradient zero: give it values.
    key = jax.random.key(3)
    for name in sorted(trainable):
        if "lora_b" in name:
            key, sub = jax.random.split(key)
            trainable[name] = 0.05 * jax.random.normal(sub, trainable[name].shape, trainable[name].dtype)
    mesh = shd.make_mesh((1, 1, 1), devices=jax.devices()[:1])
    tx = optax.sgd(1.0)
    state = create_train_state(layout, trainable, frozen, tx, mesh)
    before = {k: np.asarray(v) for k, v in state.trainable.items()}
    step = make_train_step(
        layout,
        tx,
        mesh,
        state,
        loss_chunk_size=64,
        grad_accum_steps=accum,
        max_targets=max_targets,
        batch_logical_axes=family.batch_logical_axes,
        static_keys=family.static_batch_keys,
        model_inputs=family.model_inputs,
    )
    state, metrics = step(state, global_batch(dict(batch), mesh, family))
    grads = {k: before[k] - np.asarray(v) for k, v in state.trainable.items()}
    return float(metrics["loss"]), float(metrics["tokens"]), grads, layout.merge(state.trainable, state.frozen)


def _greedy(model, processor, family, examples, photos: bool):
    featurize = Featurizer(processor, image_side=56 if photos else None)
    prompts = []
    for ex in examples[:3]:
        f = featurize.prompt_features(ex)
        images = {k: v for k, v in f.items() if k != "input_ids"} or None
        prompts.append(Prompt(f["input_ids"], images))
    eos = processor.tokenizer.convert_tokens_to_ids(processor.end_of_turn)
    decoder = Decoder(model, batch_size=4, max_new_tokens=12, eos_ids=[eos], pad_id=processor.tokenizer.pad_token_id)
    return [np.asarray(g.tokens).tolist() for g in decoder.generate(prompts)]


@pytest.mark.parametrize(
    "model_type, photos",
    [("qwen2_5_vl", True), ("llava", True), ("llama", False), ("gemma3", True), ("gemma3_text", False)],
    ids=["qwen2_5_vl", "llava", "llama", "gemma3", "gemma3_text"],
)
@pytest.mark.parametrize("head_at_targets", [False, True], ids=["every_position", "head_at_targets"])
def test_packed_step_equals_unpacked(model_type, photos, head_at_targets, tmp_path):
    hf_dir = FAMILY_DIRS[model_type](tmp_path / "base")
    family = family_for_dir(hf_dir)
    processor = family.processor(hf_dir)
    examples = _examples(tmp_path, photos)
    unpacked, packed = _batches(family, processor, examples, photos)
    max_targets = unpacked["input_ids"].shape[1] if head_at_targets else None
    loss_u, tokens_u, grads_u, model_u = _step(family, hf_dir, unpacked, max_targets)
    loss_p, tokens_p, grads_p, model_p = _step(family, hf_dir, packed, max_targets)
    assert tokens_p == tokens_u > 0
    assert abs(loss_p - loss_u) <= 1e-5 * max(1.0, abs(loss_u)), (loss_p, loss_u)
    assert grads_p.keys() == grads_u.keys()
    moved = 0
    for name, g in grads_u.items():
        np.testing.assert_allclose(grads_p[name], g, rtol=0, atol=1e-5, err_msg=name)
        moved += bool(np.abs(g).max() > 1e-6)
    assert moved > len(grads_u) // 2  # most weights got a gradient: the comparison is not vacuous
    if head_at_targets:
        assert _greedy(model_p, processor, family, examples, photos) == _greedy(
            model_u, processor, family, examples, photos
        )


def test_the_check_can_fail_without_segment_ids(tmp_path):
    # The same packed rows without segment ids (one causal sequence per row, positions running
    # on) let examples see each other: the loss moves. So the equality above is not vacuous.
    hf_dir = FAMILY_DIRS["llama"](tmp_path / "base")
    family = family_for_dir(hf_dir)
    processor = family.processor(hf_dir)
    unpacked, packed = _batches(family, processor, _examples(tmp_path, False), False)
    del packed["segment_ids"]
    loss_u, _, _, _ = _step(family, hf_dir, unpacked, None)
    loss_p, _, _, _ = _step(family, hf_dir, packed, None)
    assert abs(loss_p - loss_u) > 1e-3


def test_packed_photo_rows_accumulate_like_the_whole_batch(tmp_path):
    # Microbatches split a packed batch by row: each row's photo slots and layout rows go with it.
    hf_dir = FAMILY_DIRS["qwen2_5_vl"](tmp_path / "base")
    family = family_for_dir(hf_dir)
    processor = family.processor(hf_dir)
    _, packed = _batches(family, processor, _examples(tmp_path, True), True)
    rows = len(packed["input_ids"])
    if rows % 2:  # an empty row (all padding, empty photo slots) makes the rows even
        per_row = {k: len(v) // rows for k, v in packed.items()}
        packed = {k: np.concatenate([v, np.zeros_like(v[: per_row[k]])]) for k, v in packed.items()}
        packed["image_grid_thw"] = np.tile(packed["image_grid_thw"][:1], (len(packed["image_grid_thw"]), 1))
    loss_1, tokens_1, grads_1, _ = _step(family, hf_dir, packed, None)
    loss_2, tokens_2, grads_2, _ = _step(family, hf_dir, packed, None, accum=2)
    assert tokens_1 == tokens_2 > 0 and abs(loss_1 - loss_2) <= 1e-5 * max(1.0, abs(loss_1))
    for name, g in grads_1.items():
        np.testing.assert_allclose(grads_2[name], g, rtol=0, atol=1e-5, err_msg=name)
