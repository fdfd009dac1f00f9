"""The `multimedia` task: a sentence and a photo of one document -> the event both report (type,
trigger, text arguments, `image ROLE: BOX` lines) or `none`. Round trips, failures, and the
constrained decoder accepting exactly what parses."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmpl_jax.infer import constrained as C
from rmpl_jax.m2e2 import grammar, ontology, parse, render
from rmpl_jax.m2e2.candidates import candidate_values
from rmpl_jax.m2e2.records import (
    Box,
    BoxArgument,
    Detection,
    ImageEvent,
    ImageItem,
    MultimediaPair,
    Sentence,
    Span,
    TextArgument,
    TextEvent,
)
from rmpl_jax.models.qwen2_vl.processor import END_OF_TURN
from tests.m2e2.test_grammar import images, sentences
from tests.testing.automaton_walk import bytes_accepted, host_automaton, random_walk
from tests.testing.codecs import CODECS
from tests.testing.tiny_tokenizer import make_tiny_tokenizer

SIZE = (112, 112)
CODEC = CODECS["qwen2_5_vl"]
WORDS = ("Police", "fired", "tear", "gas", "at", "the", "protesters", "in", "Paris", ".")
ATTACK = TextEvent(
    "Conflict:Attack",
    Span(1, 2),
    (TextArgument("Attacker", Span(0, 1)), TextArgument("Target", Span(5, 7)), TextArgument("Place", Span(8, 9))),
)
SENTENCE = Sentence("DOC_3", WORDS, (ATTACK,), doc_id="DOC", images=("DOC_1.jpg",))
PHOTO = ImageItem(
    "DOC_1",
    (
        ImageEvent(
            "Conflict:Attack",
            (BoxArgument("Attacker", Box(10, 10, 50, 90)), BoxArgument("Target", Box(60, 5, 100, 30))),
        ),
    ),
    "photo.png",
)


@pytest.fixture(scope="module")
def tok():
    return make_tiny_tokenizer()


def test_documented_example():
    ex = render.render_multimedia(MultimediaPair(SENTENCE, PHOTO, "Conflict:Attack"), SIZE, CODEC)
    assert ex.task == "multimedia" and ex.image == "photo.png"
    assert ex.target == (
        "event: Conflict:Attack\ntrigger: fired\nAttacker: Police\nTarget: the protesters\nPlace: Paris\n"
        "image Attacker: [10, 10, 50, 90]\nimage Target: [60, 5, 100, 30]"
    )
    assert "Sentence: Police fired tear gas" in ex.prompt
    text, image = parse.parse(ex.target, ex.context).events
    assert text == grammar.canonical_text_events([ATTACK], WORDS)[0]
    assert image == PHOTO.events[0]
    none = render.render_multimedia(MultimediaPair(SENTENCE, PHOTO, None), SIZE, CODEC)
    assert none.target == "none" and none.prompt == ex.prompt
    assert parse.parse("none", none.context).events == ()


@settings(max_examples=200, deadline=None)
@given(s=sentences(), case=images(), pick=st.integers(0, 2))
def test_round_trip(s, case, pick):
    item, size, codec = case
    if not s.events:
        ex = render.render_multimedia(MultimediaPair(s, item, None), size, codec)
        assert parse.parse(ex.target, ex.context) == grammar.Parsed()
        return
    event_type = s.events[pick % len(s.events)].event_type
    roles = ontology.IMAGE_ROLES[event_type]
    boxes = [a.box for e in item.events for a in e.arguments]
    shown = ImageEvent(event_type, tuple(BoxArgument(roles[i % len(roles)], b) for i, b in enumerate(boxes)))
    item = ImageItem(item.image_id, (shown,), item.path)
    ex = render.render_multimedia(MultimediaPair(s, item, event_type), size, codec)
    got = parse.parse(ex.target, ex.context)
    assert got.failures == 0, got.errors
    text = next(e for e in grammar.canonical_text_events(s.events, s.words) if e.event_type == event_type)
    (image,) = grammar.canonical_image_events([shown], size, codec)
    assert got.events == (text, image)


def test_a_pair_type_both_sides_lack_is_an_error():
    with pytest.raises(ValueError, match="no Justice:Arrest-Jail event in the sentence"):
        render.render_multimedia(MultimediaPair(SENTENCE, PHOTO, "Justice:Arrest-Jail"), SIZE, CODEC)
    other = ImageItem("DOC_2", (ImageEvent("Contact:Meet"),), "p.png")
    with pytest.raises(ValueError, match="in the photo"):
        render.render_multimedia(MultimediaPair(SENTENCE, other, "Conflict:Attack"), SIZE, CODEC)


@pytest.mark.parametrize(
    "target, n_events, failures",
    [
        ("event: Conflict:Attack\ntrigger: fired\nimage Attacker: [1, 2, 3, 4]", 2, 0),
        ("event: Conflict:Attack\ntrigger: fired\nimage Attacker: Police", 2, 1),  # a span where a box goes
        ("event: Conflict:Attack\ntrigger: fired\nAttacker: [1, 2, 3, 4]", 2, 1),  # a box where words go
        ("event: Conflict:Attack\ntrigger: fired\nimage Victim: [1, 2, 3, 4]", 2, 1),  # not an Attack role
        ("event: Conflict:Attack\ntrigger: fired\nevent: Contact:Meet", 2, 1),  # one shared event only
        ("event: Conflict:Attack\nAttacker: Police", 0, 1),  # no trigger
        ("trigger: fired", 0, 1),
        ("event: Conflict:Attack\ntrigger: shot", 0, 1),  # a trigger not in the sentence
        ("event Conflict:Attack\ntrigger: fired", 0, 1),  # not a line of the grammar
    ],
)
def test_failures(target, n_events, failures):
    ex = render.render_multimedia(MultimediaPair(SENTENCE, PHOTO, None), SIZE, CODEC)
    got = parse.parse(target, ex.context)
    assert (len(got.events), got.failures) == (n_events, failures), got.errors


def _context(candidates=None):
    item = PHOTO if candidates is None else ImageItem(PHOTO.image_id, (), PHOTO.path, candidates)
    return render.render_multimedia(MultimediaPair(SENTENCE, item, None), SIZE, CODEC).context


def test_constraint_accepts_targets_and_refuses_off_grammar(tok):
    ctx = _context()
    target = render.render_multimedia(MultimediaPair(SENTENCE, PHOTO, "Conflict:Attack"), SIZE, CODEC).target
    assert bytes_accepted(tok, ctx, target)
    assert bytes_accepted(tok, ctx, "none")
    assert bytes_accepted(tok, ctx, "event: Conflict:Attack\ntrigger: fired")
    for text in (
        "event: Conflict:Attack",  # the trigger line follows the event line
        "event: Conflict:Attack\ntrigger: fired\nevent: Contact:Meet\ntrigger: fired",
        "event: Conflict:Attack\ntrigger: fired\nimage Attacker: Police",
        "event: Conflict:Attack\ntrigger: fired\nAttacker: [10, 10, 50, 90]",
        "event: Conflict:Attack\ntrigger: fired\nimage Victim: [10, 10, 50, 90]",
        "event: Conflict:Attack\ntrigger: shot",
    ):
        assert not bytes_accepted(tok, ctx, text), text


def test_candidates_restrict_the_image_boxes(tok):
    dets = (Detection("person", Box(10, 10, 50, 90), 0.9), Detection("car", Box(60, 5, 100, 30), 0.5))
    ctx = _context(dets)
    values = candidate_values(dets, SIZE, CODEC)
    assert bytes_accepted(
        tok, ctx, f"event: Conflict:Attack\ntrigger: fired\nAttacker: Police\nimage Attacker: {values[0]}"
    )
    assert not bytes_accepted(tok, ctx, "event: Conflict:Attack\ntrigger: fired\nimage Attacker: [10, 10, 50, 90]")


@pytest.mark.parametrize("candidates", [None, (Detection("person", Box(10, 10, 50, 90), 0.9),)])
def test_random_walks_always_parse(tok, candidates):
    vocab = C.vocab_for(tok, END_OF_TURN)
    ctx = _context(candidates)
    rng = random.Random(0)
    kinds = set()
    for _ in range(150):
        h = host_automaton(tok, ctx)
        ids = random_walk(h, rng, rng.randint(C.start_distance(h.g, h.c), 90))
        parsed = parse.parse(vocab.text(ids), ctx)
        assert parsed.failures == 0, (vocab.text(ids), parsed.errors)
        if parsed.events:
            text, image = parsed.events
            assert text.event_type == image.event_type
            roles = ontology.IMAGE_ROLES[image.event_type]
            assert all(a.role in roles for a in image.arguments)
            kinds |= {"text" for _ in text.arguments} | {"image" for _ in image.arguments}
    assert kinds == {"text", "image"}  # the walks wrote both kinds of argument
