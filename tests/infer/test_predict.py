"""Predictions end to end with a random tiny model: every sentence and every photo on disk gets
a record, missing photos are counted, constrained outputs parse with zero failures, the
predictions file validates and scores; the coref rule; the multimedia pipeline's pairs;
`mode=predict` with a LoRA checkpoint written by the training checkpoint manager."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

pytest.importorskip("transformers")

from rmpl_jax.eval.scorer import score
from rmpl_jax.infer import predict
from rmpl_jax.infer.settings import DecodeSettings
from rmpl_jax.io.read_report import ReadReport
from rmpl_jax.m2e2.corpus import M2E2Corpus
from rmpl_jax.m2e2.predictions import ImagePrediction, TextPrediction, read_predictions, write_predictions
from rmpl_jax.m2e2.records import Box, BoxArgument, ImageEvent, Sentence, Span, TextEvent
from rmpl_jax.models import qwen2_vl as Q
from rmpl_jax.models.qwen2_vl.boxes import Qwen25VLBoxes
from rmpl_jax.models.qwen2_vl.processor import QwenProcessor
from rmpl_jax.modes import predict as predict_mode
from tests.testing.decode_models import IMAGE_SIDE, synthetic, tiny_dir
from tests.testing.html_page import parse_page
from tests.testing.m2e2_files import write_m2e2_annotations


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    hf_dir, _ = tiny_dir(str(tmp_path_factory.mktemp("tiny")))
    return hf_dir, Q.load_hf(hf_dir), QwenProcessor.from_dir(hf_dir)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return synthetic(str(tmp_path_factory.mktemp("syn")), docs=3, seed=7)


def _corpus(split, sentences, images):
    return M2E2Corpus(
        {s.sentence_id: s for s in sentences},
        {i.image_id: i for i in images},
        tuple(split.pairs),
        (),
        ReadReport(source="synthetic"),
    )


def test_predict_records_writes_a_valid_scored_file(tiny, split, tmp_path):
    _, model, processor = tiny
    sentences = [s for s in split.sentences if s.images][:6] + [s for s in split.sentences if not s.images][:2]
    images = list(split.images)
    assert len(images) >= 2 and len(sentences) >= 6
    images[0] = dataclasses.replace(images[0], path=None)  # one photo missing on disk
    codec = Qwen25VLBoxes(min_pixels=IMAGE_SIDE**2, max_pixels=IMAGE_SIDE**2)
    preds, stats = predict.predict_records(
        model,
        processor,
        DecodeSettings(batch_size=4, max_new_tokens=40, temperature=2.0, pipeline="joint"),
        sentences=sentences,
        images=images,
        image_sizes=split.image_sizes,
        codec=codec,
        image_side=IMAGE_SIDE,
        progress=False,
    )
    print(json.dumps(stats))
    assert [p.sentence_id for p in preds.text] == [s.sentence_id for s in sentences]
    assert [p.image_id for p in preds.images] == [i.image_id for i in images[1:]]
    assert stats["missing_images"] == 1 and stats["missing_image_ids"] == [images[0].image_id]
    assert stats["sentences_with_missing_images"] >= 1
    assert stats["parse_failures"] == {"text_ee": 0, "visual_ee": 0} and stats["unfinished"] == 0
    assert stats["items_per_s"] > 0 and stats["tokens"] > 0
    assert stats["decode_compiles"] <= 2  # one text bucket, one image bucket
    for p in preds.images:  # boxes are back in the photo's pixels
        w, h = split.image_sizes[p.image_id]
        for e in p.events:
            for a in e.arguments:
                assert 0 <= a.box.x1 <= w and 0 <= a.box.x2 <= w and 0 <= a.box.y1 <= h and 0 <= a.box.y2 <= h
    assert preds.coref == predict.coref_pairs(
        sentences, {p.sentence_id: p for p in preds.text}, {p.image_id: p for p in preds.images}
    )
    path = tmp_path / "predictions.jsonl"
    write_predictions(str(path), preds)
    back = read_predictions(str(path))
    assert len(back.text) == len(sentences) and len(back.images) == len(images) - 1
    report = score(_corpus(split, sentences, images), back).as_dict()
    assert report["text_event"]["gold"] == sum(len(s.events) for s in sentences)

    # Unconstrained decoding of a random model: garbage, counted, never a crash.
    preds, stats = predict.predict_records(
        model,
        processor,
        DecodeSettings(batch_size=4, max_new_tokens=12, constrained=False, pipeline="joint"),
        sentences=sentences[:3],
        images=[],
        codec=codec,
        image_side=IMAGE_SIDE,
        progress=False,
    )
    assert len(preds.text) == 3 and stats["parse_failures"]["text_ee"] >= 1


def test_coref_rule():
    s1 = Sentence("D_1", ("a", "b"), images=("D_1.jpg", "D_2.jpg", "E_1.jpg"))
    s2 = Sentence("D_2", ("a",), images=("D_1.jpg",))
    attack = TextEvent("Conflict:Attack", Span(0, 1))
    die = TextEvent("Life:Die", Span(1, 2))
    text = {"D_1": TextPrediction("D_1", (attack, die)), "D_2": TextPrediction("D_2", ())}
    box = (BoxArgument("Attacker", Box(0, 0, 1, 1)),)
    images = {
        "D_1": ImagePrediction("D_1", (ImageEvent("Life:Die", box), ImageEvent("Conflict:Attack"))),
        "D_2": ImagePrediction("D_2", (ImageEvent("Contact:Meet"),)),
        "E_1": ImagePrediction("E_1", ()),
    }
    pairs = predict.coref_pairs([s1, s2], text, images)
    assert [(p.sentence_id, p.image_id, p.event_type) for p in pairs] == [("D_1", "D_1", "Life:Die")]


def _m2e2_layout(split, root):
    """The five M2E2 files for a synthetic split, photos as <image_id>.jpg (one left out)."""
    from PIL import Image

    ann = write_m2e2_annotations(split, root / "m2e2", scratch=root / "raw")
    images = root / "images"
    images.mkdir()
    for item in split.images[1:]:
        Image.open(item.path).convert("RGB").save(images / f"{item.image_id}.jpg")
    return ann, images


def test_predict_mode_with_a_lora_checkpoint(tiny, split, tmp_path):
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from configs.predict_m2e2 import get_config
    from rmpl_jax.models import lora
    from rmpl_jax.train import checkpoint as ck
    from rmpl_jax.train import sharding as shd
    from rmpl_jax.train.optimizer import make_optimizer
    from rmpl_jax.train.state import create_train_state, split_model

    hf_dir, _, _ = tiny
    # A stage checkpoint as training writes it: LoRA adapters (B made non-zero) as trainables.
    model = Q.load_hf(hf_dir)
    lora.apply_lora(model, 2, 4.0, Q.QWEN2_VL.default_lora_targets, rngs=nnx.Rngs(3))
    layout, trainable, frozen = split_model(model)
    name = next(n for n in trainable if "lora_b" in n)
    trainable[name] = trainable[name] + 0.5
    mesh = shd.make_mesh((1, 1, 1), devices=jax.devices()[:1])
    tx, _ = make_optimizer(1e-3, warmup_steps=1, total_steps=2)
    state = create_train_state(layout, trainable, frozen, tx, mesh, seed=0)
    with ck.CheckpointManager(tmp_path / "ckpt") as mgr:
        assert mgr.save(state, force=True)

    config = get_config()
    config.model.hf_dir = str(hf_dir)
    config.model.lora_rank, config.model.lora_alpha = 2, 4.0
    loaded, _step = predict_mode.load_model(config.model, str(tmp_path / "ckpt"))
    got = split_model(loaded)[1][name]
    np.testing.assert_allclose(np.asarray(got), np.asarray(trainable[name]))
    # Weights live on the device mesh (no host numpy copied at every call); merged adapters
    # give the adapted model's logits.
    assert all(isinstance(v, jax.Array) for d in split_model(loaded, ".")[1:] for v in d.values())
    merged, _ = predict_mode.load_model(config.model, str(tmp_path / "ckpt"), merge=True)
    assert lora.has_lora(loaded) and not lora.has_lora(merged)
    ids = jnp.asarray(np.random.default_rng(0).integers(3, 200, (2, 9)), jnp.int32)
    np.testing.assert_allclose(np.asarray(merged(ids)), np.asarray(loaded(ids)), atol=2e-4)

    ann, images = _m2e2_layout(split, tmp_path)
    config.m2e2_dir, config.images_dir = str(ann), str(images)
    config.checkpoint = str(tmp_path / "ckpt")
    config.limit = 0
    config.image_side = IMAGE_SIDE
    config.decode.update(batch_size=4, max_new_tokens=32, buckets=(512, 1024))
    metrics = predict_mode.run(config, str(tmp_path / "work"))
    back = read_predictions(str(tmp_path / "work" / "predictions.jsonl"))
    assert len(back.text) == len(split.sentences) and len(back.images) == len(split.images) - 1
    saved = json.loads((tmp_path / "work" / "metrics.json").read_text())
    # 'auto' without a training run: the stage-2 pipeline, mentions first, then each mention's arguments.
    assert saved["predict"]["pipeline"] == "stage2"
    assert set(saved["predict"]["parse_failures"]) >= {"text_mention", "image_mention"}
    assert set(saved["predict"]["parse_failures"].values()) == {0}
    assert saved["predict"]["checkpoint_step"] == 0 and saved["predict"]["missing_images"] == 1
    assert saved["predict"]["decode_compiles"] <= 6  # per task: its text buckets or the photos
    assert set(saved) >= {"text_event", "text_argument", "image_event", "multimedia_event", "variants"}
    assert metrics["text_event"]["gold"] == saved["text_event"]["gold"]
    page = parse_page((tmp_path / "work" / "report.html").read_text(encoding="utf-8"))
    assert len(page.find_all("div", cls="photo")) == len(split.images) - 1  # the missing one is listed
    assert json.loads(page.find("script", id="scores-json").text()) == {
        k: v for k, v in saved.items() if k not in ("predict", "skipped")
    }

    config.model.lora_rank = 3  # not the checkpoint's rank: a clear error
    with pytest.raises(ValueError, match="check lora_rank"):
        predict_mode.load_model(config.model, str(tmp_path / "ckpt"))


def test_multimedia_pipeline_asks_about_document_pairs(tiny, split):
    _, model, processor = tiny
    sentences = [s for s in split.sentences if s.images][:6] + [s for s in split.sentences if not s.images][:1]
    images = list(split.images)

    def run(**settings):
        return predict.predict_records(
            model,
            processor,
            DecodeSettings(batch_size=4, max_new_tokens=48, temperature=2.0, **settings),
            sentences=sentences,
            images=images,
            image_sizes=split.image_sizes,
            codec=Qwen25VLBoxes(min_pixels=IMAGE_SIDE**2, max_pixels=IMAGE_SIDE**2),
            image_side=IMAGE_SIDE,
            progress=False,
        )

    on_disk = {i.image_id for i in images if i.path}
    pairs = {(s.sentence_id, f.removesuffix(".png")) for s in sentences for f in s.images} & {
        (s.sentence_id, i) for s in sentences for i in on_disk
    }
    # 1e4: every sentence and photo gets an event, so "events" keeps every pair too.
    stage2, _ = run(pipeline="stage2", no_event_penalty=1e4)
    preds, stats = run(pipeline="multimedia", pair_filter="all", no_event_penalty=1e4)
    assert stats["multimedia_pairs"] == len(pairs) > 0 and stats["multimedia_seconds"] > 0
    assert stats["parse_failures"]["multimedia"] == 0 and stats["unfinished"] == 0
    assert set(stats["parse_failures"]) == {
        "text_mention",
        "text_argument",
        "image_mention",
        "image_argument",
        "multimedia",
    }
    assert preds.coref and {(c.sentence_id, c.image_id) for c in preds.coref} <= pairs  # document pairs only
    # the text and image records are the stage-2 decode's (same seed, same calls before the pairs)
    assert preds.text == stage2.text and preds.images == stage2.images

    # "events": only the pairs whose sentence and photo both got an event from the stage-2 decode.
    for penalty in (0.0, 1e4):
        stage2, _ = run(pipeline="stage2", no_event_penalty=penalty)
        told = {p.sentence_id for p in stage2.text if p.events}
        shown = {p.image_id for p in stage2.images if p.events}
        _, filtered = run(pipeline="multimedia", pair_filter="events", no_event_penalty=penalty)
        assert filtered["multimedia_pairs"] == sum(1 for s, i in pairs if s in told and i in shown)
    assert filtered["multimedia_pairs"] == len(pairs)
    with pytest.raises(ValueError, match="--config.decode.pair_filter='some': one of"):
        run(pipeline="multimedia", pair_filter="some")
    with pytest.raises(ValueError, match="pipeline 'auto' is not one of"):
        run(pipeline="auto")
