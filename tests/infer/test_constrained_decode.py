"""Constrained decoding in the jitted loop with random-weight models: every output parses with
zero failures and ends with the end-of-turn token (text_ee with the tiny byte-level tokenizer
and with the demo BPE tokenizer; visual_ee with image prompts, boxes inside the frame), also
under a tight token budget; other sentences in the same buckets reuse the compiled loop."""

from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("transformers")

from rmpl_jax.data.featurize import Featurizer
from rmpl_jax.infer import constrained as C
from rmpl_jax.infer.decode import Decoder, Prompt
from rmpl_jax.m2e2 import parse, render
from rmpl_jax.models import qwen2_vl as Q
from rmpl_jax.models.qwen2_vl.boxes import Qwen25VLBoxes
from rmpl_jax.models.qwen2_vl.processor import QwenProcessor
from tests.testing.decode_models import IMAGE_SIDE, demo_dir, synthetic, tiny_dir


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    hf_dir, _ = tiny_dir(str(tmp_path_factory.mktemp("tiny")))
    return Q.load_hf(hf_dir), QwenProcessor.from_dir(hf_dir)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    hf_dir, model = demo_dir(str(tmp_path_factory.mktemp("demo")))
    return model, QwenProcessor.from_dir(hf_dir)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return synthetic(str(tmp_path_factory.mktemp("syn")), docs=6, seed=5)


def _decode(
    model,
    processor,
    examples,
    *,
    max_new,
    temperature=0.0,
    batch_size=4,
    decoder=None,
    buckets=(256, 512, 1024),
    shape_hint=None,
    no_event_penalty=0.0,
):
    vocab = C.vocab_for(processor.tokenizer, processor.end_of_turn)
    grammar = C.task_grammar(examples[0].task, vocab)
    featurizer = Featurizer(processor, IMAGE_SIDE)
    prompts = []
    for ex in examples:
        f = featurizer.prompt_features(ex)
        prompts.append(
            Prompt(
                f.pop("input_ids"),
                f or None,  # the family's image inputs
                C.example_constraint(grammar, ex.context),
            )
        )
    decoder = decoder or Decoder(
        model,
        batch_size=batch_size,
        max_new_tokens=max_new,
        eos_ids=(vocab.eos_id,),
        pad_id=0,
        temperature=temperature,
        seed=1,
        buckets=buckets,
        no_event_penalty=no_event_penalty,
    )
    gens = decoder.generate(prompts, grammar, shape_hint=shape_hint)
    return [vocab.text(g.tokens) for g in gens], gens, decoder


def _check_parse(examples, texts, gens):
    for ex, text, gen in zip(examples, texts, gens):
        assert gen.finished, text
        parsed = parse.parse(text, ex.context)
        assert parsed.failures == 0, (text, parsed.errors)
        for e in parsed.events:
            if ex.context.words:
                words = ex.context.words
                assert e.trigger.text == " ".join(words[e.trigger.start : e.trigger.end])
                for a in e.arguments:
                    assert a.span.text == " ".join(words[a.span.start : a.span.end])


def _text_examples(split, n):
    return [render.render_text_ee(dataclasses.replace(s, events=())) for s in split.sentences[:n]]


@pytest.mark.parametrize("temperature", [0.0, 1.5])
def test_text_ee_tiny_tokenizer(tiny, split, temperature):
    model, processor = tiny
    examples = _text_examples(split, 6)
    texts, gens, _ = _decode(model, processor, examples, max_new=48, temperature=temperature)
    print(texts)
    _check_parse(examples, texts, gens)
    if temperature > 0:  # sampling explores the grammar beyond `none`
        assert any(t != "none" for t in texts)


def test_text_ee_demo_tokenizer(demo, split):
    model, processor = demo
    examples = _text_examples(split, 8)
    # One prompt bucket and value tables padded to one shape: other sentences (other lengths,
    # other tables) reuse the compiled loop, 4 batches -> 1 compile.
    hint = (512, 256)
    texts, gens, decoder = _decode(
        model, processor, examples, max_new=40, temperature=2.0, buckets=(512,), shape_hint=hint
    )
    print(texts)
    _check_parse(examples, texts, gens)
    assert sum(t.count("\n") for t in texts) >= 4  # multi-line answers were produced
    traces = decoder.traces
    more = [render.render_text_ee(dataclasses.replace(s, events=())) for s in split.sentences[8:16]]
    texts, gens, _ = _decode(model, processor, more, max_new=40, decoder=decoder, shape_hint=hint)
    _check_parse(more, texts, gens)
    assert decoder.traces == traces


def test_no_event_penalty_moves_the_none_threshold(tiny, split):
    """A large penalty on `none` makes every mention answer an event; a large negative one makes
    every answer `none`; 0 decodes exactly as the default."""
    model, processor = tiny
    examples = [render.render_text_mention(dataclasses.replace(s, events=())) for s in split.sentences[:4]]

    def texts(penalty):
        out, gens, _ = _decode(model, processor, examples, max_new=64, no_event_penalty=penalty)
        _check_parse(examples, out, gens)
        return out

    default, _, _ = _decode(model, processor, examples, max_new=64)
    assert texts(0.0) == default
    assert all(t == "none" for t in texts(-1e4))
    pushed = texts(1e4)
    assert all(t.startswith("event:") for t in pushed), pushed
    with pytest.raises(ValueError, match="finite"):
        Decoder(model, batch_size=1, max_new_tokens=8, eos_ids=(1,), pad_id=0, no_event_penalty=float("nan"))


def test_tight_budget_still_ends(demo, split):
    model, processor = demo
    examples = _text_examples(split, 4)
    vocab = C.vocab_for(processor.tokenizer, processor.end_of_turn)
    grammar = C.task_grammar("text_ee", vocab)
    need = max(C.start_distance(grammar, C.example_constraint(grammar, e.context)) for e in examples)
    texts, gens, _ = _decode(model, processor, examples, max_new=need + 3, temperature=3.0)
    _check_parse(examples, texts, gens)
    assert all(len(g.tokens) <= need + 3 for g in gens)
    with pytest.raises(ValueError, match="max_new_tokens"):
        _decode(model, processor, examples, max_new=need - 1)


def test_visual_ee_boxes_inside_the_frame(tiny, split):
    model, processor = tiny
    codec = Qwen25VLBoxes(min_pixels=IMAGE_SIDE**2, max_pixels=IMAGE_SIDE**2)
    items = [i for i in split.images if i.path][:4]
    examples = [
        render.render_visual_ee(dataclasses.replace(i, events=()), (IMAGE_SIDE, IMAGE_SIDE), codec) for i in items
    ]
    examples = examples * 3  # the same photos, other samples
    texts, gens, _ = _decode(model, processor, examples, max_new=60, temperature=5.0, batch_size=len(examples))
    print(texts)
    _check_parse(examples, texts, gens)
    boxes = 0
    for ex, text in zip(examples, texts):
        for e in parse.parse(text, ex.context).events:
            for a in e.arguments:
                boxes += 1
                assert 0 <= a.box.x1 <= IMAGE_SIDE and 0 <= a.box.x2 <= IMAGE_SIDE
                assert 0 <= a.box.y1 <= IMAGE_SIDE and 0 <= a.box.y2 <= IMAGE_SIDE
    assert boxes > 0
