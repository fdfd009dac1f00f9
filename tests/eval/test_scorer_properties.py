"""Property tests: perturbed gold never breaks the scorer or lifts a score above 1."""

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rmpl_jax.data.m2e2 import read_m2e2
from rmpl_jax.eval.scorer import gold_as_predictions, score
from rmpl_jax.m2e2.predictions import PredictionSet, read_predictions, write_predictions
from rmpl_jax.m2e2.records import Box, BoxArgument, CorefPair, Span


@pytest.fixture(scope="module")
def gold(m2e2_dir):
    corpus = read_m2e2(str(m2e2_dir))
    # A slice keeps each example fast; it holds every kind of item.
    sentences = dict(list(corpus.sentences.items())[:400])
    docs = {s.doc_id for s in sentences.values()}
    images = {k: v for k, v in corpus.images.items() if k.rpartition("_")[0] in docs}
    coref = tuple(c for c in corpus.coref if c.sentence_id in sentences)
    small = dataclasses.replace(corpus, sentences=sentences, images=images, coref=coref)
    return small, gold_as_predictions(small)


def _perturb_span(span, shift):
    return Span(span.start + shift, span.end + shift)


@st.composite
def perturbations(draw):
    return {
        "seed": draw(st.integers(0, 2**31 - 1)),
        "drop": draw(st.floats(0, 1)),
        "shift": draw(st.integers(-2, 2)),
        "jitter": draw(st.floats(-300, 300, allow_nan=False)),
        "retype": draw(st.booleans()),
        "duplicate": draw(st.booleans()),
    }


def perturb(preds: PredictionSet, p) -> PredictionSet:
    import random

    rng = random.Random(p["seed"])

    def keep():
        return rng.random() >= p["drop"]

    types = ["Life:Die", "Conflict:Attack", "Nonsense:Type"]
    text = []
    for t in preds.text:
        events = []
        for e in t.events:
            if not keep():
                continue
            args = tuple(
                dataclasses.replace(a, span=_perturb_span(a.span, p["shift"] * (rng.random() < 0.5)))
                for a in e.arguments
                if keep()
            )
            etype = rng.choice(types) if p["retype"] and rng.random() < 0.3 else e.event_type
            events.append(
                dataclasses.replace(
                    e,
                    event_type=etype,
                    arguments=args,
                    trigger=_perturb_span(e.trigger, p["shift"] * (rng.random() < 0.3)),
                )
            )
        text.append(dataclasses.replace(t, events=tuple(events * (2 if p["duplicate"] else 1))))
    images = []
    for i in preds.images:
        events = []
        for e in i.events:
            args = []
            for a in e.arguments:
                if keep():
                    d = p["jitter"] * rng.random()
                    b = a.box
                    args.append(BoxArgument(a.role, Box(b.x1 + d, b.y1, b.x2 + d, b.y2 - d)))
            etype = rng.choice(types) if p["retype"] and rng.random() < 0.3 else e.event_type
            events.append(dataclasses.replace(e, event_type=etype, arguments=tuple(args)))
        images.append(dataclasses.replace(i, events=tuple(events)))
    coref = [
        c if not p["retype"] else CorefPair(c.sentence_id, c.image_id, rng.choice(types)) for c in preds.coref if keep()
    ]
    if p["duplicate"]:
        images, coref = images * 2, coref * 2
    return PredictionSet(text, images, coref)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(p=perturbations())
def test_perturbed_gold_scores_within_bounds(gold, p):
    corpus, predictions = gold
    report = score(corpus, perturb(predictions, p)).as_dict()
    for name, s in list(report.items()) + list(report["variants"].items()):
        if name == "variants":
            continue
        assert 0.0 <= s["f1"] <= 1.0 and 0 <= s["tp"] <= min(s["pred"], s["gold"]), (name, s)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drop=st.floats(0, 1), seed=st.integers(0, 2**31 - 1))
def test_dropping_gold_keeps_precision_one(gold, drop, seed):
    corpus, predictions = gold
    p = {"seed": seed, "drop": drop, "shift": 0, "jitter": 0.0, "retype": False, "duplicate": True}
    report = score(corpus, perturb(predictions, p)).as_dict()
    for name in (
        "text_event",
        "text_argument",
        "image_event",
        "image_argument",
        "multimedia_event",
        "multimedia_argument",
    ):
        s = report[name]
        assert s["tp"] == s["pred"], name
        assert s["r"] <= 1.0


def test_predictions_file_round_trip(gold, tmp_path):
    _, predictions = gold
    path = tmp_path / "p.jsonl"
    write_predictions(str(path), predictions)
    again = read_predictions(str(path))
    assert again.coref == predictions.coref
    assert [
        (
            t.sentence_id,
            [
                (
                    e.event_type,
                    e.trigger.start,
                    e.trigger.end,
                    [(a.role, a.span.start, a.span.end) for a in e.arguments],
                )
                for e in t.events
            ],
        )
        for t in again.text
    ] == [
        (
            t.sentence_id,
            [
                (
                    e.event_type,
                    e.trigger.start,
                    e.trigger.end,
                    [(a.role, a.span.start, a.span.end) for a in e.arguments],
                )
                for e in t.events
            ],
        )
        for t in predictions.text
    ]
    assert again.images == predictions.images
