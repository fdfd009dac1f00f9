"""The choice automaton: with candidates, a box can only be one of the listed values; random
walks always parse and every box they write is a listed candidate; without candidates the
free box automaton is used unchanged."""

from __future__ import annotations

import random

import pytest

from rmpl_jax.infer import constrained as C
from rmpl_jax.infer.automata import ChoiceAutomaton
from rmpl_jax.m2e2 import grammar, parse
from rmpl_jax.m2e2.candidates import candidate_values
from rmpl_jax.m2e2.records import Box, Detection
from rmpl_jax.models.qwen2_vl.processor import END_OF_TURN
from tests.testing.automaton_walk import bytes_accepted, host_automaton, random_walk
from tests.testing.codecs import CODECS
from tests.testing.tiny_tokenizer import make_tiny_tokenizer

SIZE = (112, 112)
CODEC = CODECS["qwen2_5_vl"]
DETS = (
    Detection("person", Box(10, 10, 50, 90), 0.9),
    Detection("person", Box(10, 10, 50, 91), 0.8),  # differs in the last digit only
    Detection("cell phone", Box(60, 5, 100, 30), 0.5),
)
VALUES = candidate_values(DETS, SIZE, CODEC)


@pytest.fixture(scope="module")
def tok():
    return make_tiny_tokenizer()


def _context(task="image_argument", values=VALUES):
    return grammar.Context(task, image_size=SIZE, codec=CODEC, event_type="Life:Die", candidates=values)


def test_only_listed_boxes_are_accepted(tok):
    assert VALUES == ("person [10, 10, 50, 90]", "person [10, 10, 50, 91]", "cell phone [60, 5, 100, 30]")
    ctx = _context()
    for v in VALUES:
        assert bytes_accepted(tok, ctx, f"Victim: {v}")
    assert bytes_accepted(tok, ctx, f"Victim: {VALUES[0]}\nInstrument: {VALUES[2]}")
    for text in (
        "Victim: [10, 10, 50, 90]",  # a free box
        "Victim: person [10, 10, 50, 92]",  # a box nobody listed
        "Victim: car [10, 10, 50, 90]",  # the wrong label
        "Victim: person [10, 10, 50, 9]",  # a prefix of a candidate
        "Victim: person [10, 10, 50, 90] ",
    ):
        assert not bytes_accepted(tok, ctx, text), text
    visual = _context("visual_ee")
    assert bytes_accepted(tok, visual, f"event: Life:Die\nVictim: {VALUES[1]}")
    assert not bytes_accepted(tok, visual, "event: Life:Die\nVictim: [10, 10, 50, 90]")


def test_no_candidates_leave_only_none(tok):
    ctx = _context(values=())
    assert bytes_accepted(tok, ctx, "none")
    assert not bytes_accepted(tok, ctx, "Victim: [10, 10, 50, 90]")


def test_free_boxes_without_candidates(tok):
    ctx = _context(values=None)
    assert bytes_accepted(tok, ctx, "Victim: [10, 10, 50, 90]")
    assert not bytes_accepted(tok, ctx, f"Victim: {VALUES[0]}")


def test_random_walks_parse_and_copy_candidates(tok):
    vocab = C.vocab_for(tok, END_OF_TURN)
    rng = random.Random(0)
    listed = {CODEC.quantize(d.box, SIZE) for d in DETS}
    written = 0
    for n in range(60):
        ctx = _context("visual_ee" if n % 2 else "image_argument")
        h = host_automaton(tok, ctx)
        ids = random_walk(h, rng, rng.randint(C.start_distance(h.g, h.c), 60))
        parsed = parse.parse(vocab.text(ids), ctx)
        assert parsed.failures == 0, (vocab.text(ids), parsed.errors)
        boxes = [a.box for e in parsed.events for a in e.arguments]
        assert set(boxes) <= listed
        written += len(boxes)
    assert written > 10  # the walks did write boxes


def test_choice_values_are_checked():
    with pytest.raises(ValueError, match="line breaks"):
        ChoiceAutomaton(["person [1, 2, 3, 4]\nx"])
