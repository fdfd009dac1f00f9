"""A small corpus with photos on disk and predictions holding one error of each kind, with the
error kinds every sentence and photo must show; and a perturbed copy of the M2E2 gold."""

from __future__ import annotations

import dataclasses
import random

from PIL import Image

from rmpl_jax.eval.scorer import gold_as_predictions
from rmpl_jax.io.read_report import ReadReport
from rmpl_jax.m2e2.corpus import M2E2Corpus
from rmpl_jax.m2e2.ontology import EVENT_TYPES
from rmpl_jax.m2e2.predictions import ImagePrediction, PredictionSet, TextPrediction
from rmpl_jax.m2e2.records import (
    Box,
    BoxArgument,
    CorefPair,
    ImageEvent,
    ImageItem,
    Sentence,
    Span,
    TextArgument,
    TextEvent,
)

ATTACK, DIE, MEET, DEMO, MOVE, ARREST = (
    "Conflict:Attack",
    "Life:Die",
    "Contact:Meet",
    "Conflict:Demonstrate",
    "Movement:Transport",
    "Justice:Arrest-Jail",
)

# card id -> the error kinds its card must carry
EXPECTED_SENTENCE_KINDS = {
    "d_1": ["wrong_role"],
    "d_2": ["wrong_type"],
    "d_3": ["missed"],
    "d_4": ["spurious"],
    "d_5": [],
}
EXPECTED_PHOTO_KINDS = {"d_p1": ["wrong_role"], "d_p2": ["wrong_type"], "d_p3": ["spurious"], "d_p5": []}
PHOTO_WITHOUT_FILE = "d_p6"  # predicted, no file on disk
PHOTO_SIZE = (400, 300)


def ev(event_type, trigger, *args):
    return TextEvent(event_type, Span(*trigger), tuple(TextArgument(r, Span(*s)) for r, s in args))


def img(event_type, *args):
    return ImageEvent(event_type, tuple(BoxArgument(r, Box(*b)) for r, b in args))


def _photo(path: str, colour) -> str:
    image = Image.new("RGB", PHOTO_SIZE, colour)
    image.paste((30, 30, 30), (10, 10, 60, 60))
    image.save(path)
    return path


def small_case(image_dir) -> tuple[M2E2Corpus, PredictionSet]:
    """Five sentences and five photos of one document (p4's file is absent, p6 is only
    predicted); each has at most one kind of error."""
    words = tuple(f"w{i}" for i in range(12))
    gold_sentences = {
        "d_1": (ev(ATTACK, (2, 3), ("Attacker", (0, 2)), ("Target", (4, 6))),),
        "d_2": (ev(DIE, (7, 8), ("Victim", (8, 10))),),
        "d_3": (ev(MEET, (1, 2)),),
        "d_4": (),
        "d_5": (ev(MOVE, (0, 1), ("Vehicle", (2, 3))),),
    }
    sentences = {
        sid: Sentence(sid, words, events, doc_id="d", images=("d_p1.png",)) for sid, events in gold_sentences.items()
    }
    gold_photos = {
        "d_p1": (img(ATTACK, ("Attacker", (10, 10, 60, 60)), ("Target", (100, 100, 150, 150))),),
        "d_p2": (img(MEET, ("Entity", (20, 20, 120, 200))),),
        "d_p3": (),
        "d_p4": (img(ARREST, ("Person", (0, 0, 50, 50))),),
        "d_p5": (img(MOVE, ("Vehicle", (200, 100, 380, 280))),),
    }
    images = {}
    for i, (iid, events) in enumerate(gold_photos.items()):
        path = None if iid == "d_p4" else _photo(str(image_dir / f"{iid}.png"), (60 * i, 120, 200))
        images[iid] = ImageItem(iid, events, path)
    corpus = M2E2Corpus(
        sentences=sentences,
        images=images,
        coref=(CorefPair("d_1", "d_p1", ATTACK),),
        missing_images=(),
        report=ReadReport("small case"),
    )
    predictions = PredictionSet(
        text=[
            TextPrediction("d_1", (ev(ATTACK, (2, 3), ("Attacker", (0, 2)), ("Instrument", (4, 6))),)),
            TextPrediction("d_2", (ev(ATTACK, (7, 8), ("Victim", (8, 10))),)),
            TextPrediction("d_3", ()),
            TextPrediction("d_4", (ev(DEMO, (3, 4)),)),
            TextPrediction("d_5", gold_sentences["d_5"]),
        ],
        images=[
            ImagePrediction(
                "d_p1", (img(ATTACK, ("Attacker", (12, 12, 60, 60)), ("Instrument", (100, 100, 150, 150))),)
            ),
            ImagePrediction("d_p2", (img(DIE, ("Victim", (20, 20, 120, 200))),)),
            ImagePrediction("d_p3", (img(DEMO, ("Entity", (5, 5, 90, 90))),)),
            ImagePrediction("d_p5", gold_photos["d_p5"]),
            ImagePrediction(PHOTO_WITHOUT_FILE, (img(DEMO),)),
        ],
        coref=[CorefPair("d_1", "d_p1", ATTACK)],
    )
    return corpus, predictions


def perturbed_gold(corpus: M2E2Corpus, seed: int = 0) -> PredictionSet:
    """The gold with every kind of error mixed in: dropped events, arguments and photos,
    changed types and roles, argument spans one token too long, shifted boxes, invented
    triggers, dropped and retyped pairs."""
    rng = random.Random(seed)
    gold = gold_as_predictions(corpus)
    text = []
    for p in gold.text:
        events = []
        for e in p.events:
            r = rng.random()
            if r < 0.15:
                continue
            if r < 0.3:
                e = dataclasses.replace(e, event_type=rng.choice(EVENT_TYPES))
            args = []
            for a in e.arguments:
                r = rng.random()
                if r < 0.1:
                    continue
                if r < 0.2:
                    a = TextArgument("Place" if a.role != "Place" else "Entity", a.span)
                elif r < 0.25:
                    a = TextArgument(a.role, Span(a.span.start, a.span.end + 1))  # a boundary error
                args.append(a)
            events.append(dataclasses.replace(e, arguments=tuple(args)))
        if rng.random() < 0.03:
            events.append(ev(MEET, (0, 1)))
        text.append(TextPrediction(p.sentence_id, tuple(events)))
    images = []
    for k, p in enumerate(gold.images):
        if k % 10 == 9:
            continue
        e = p.events[0]
        args = []
        for i, a in enumerate(e.arguments):
            b = a.box
            if i % 3 == 1:
                a = BoxArgument(a.role, Box(b.x1 + 15, b.y1 + 10, b.x2 + 200, b.y2 + 10))
            elif i % 3 == 2:
                a = BoxArgument("Instrument" if a.role != "Instrument" else "Attacker", b)
            args.append(a)
        event_type = rng.choice(EVENT_TYPES) if rng.random() < 0.2 else e.event_type
        images.append(ImagePrediction(p.image_id, (ImageEvent(event_type, tuple(args)),)))
    coref = [c for c in gold.coref if rng.random() < 0.8]
    coref += [CorefPair(c.sentence_id, c.image_id, DIE) for c in gold.coref[:5] if c.event_type != DIE]
    return PredictionSet(text, images, coref)
