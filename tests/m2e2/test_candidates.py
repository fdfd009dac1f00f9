"""Boxes grounded in detector candidates: target selection by IoU with the threshold count,
prompts that list the candidates, and the render/parse round trip (`LABEL [codes]` values)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rmpl_jax.m2e2 import grammar, ontology, parse, render
from rmpl_jax.m2e2.candidates import candidate_values, ground_event, ground_item, oracle_coverage
from rmpl_jax.m2e2.records import Box, BoxArgument, Detection, ImageEvent, ImageItem
from tests.testing.codecs import CODECS

PERSON = Detection("person", Box(10, 10, 50, 90), 0.9)
CAR = Detection("car", Box(100, 40, 200, 100), 0.8)
PERSON_2 = Detection("person", Box(12, 8, 52, 95), 0.4)  # overlaps PERSON


def test_grounding_takes_the_best_candidate_and_counts_drops():
    event = ImageEvent(
        "Conflict:Attack",
        (
            BoxArgument("Attacker", Box(11, 11, 50, 88)),  # PERSON: IoU 0.95, PERSON_2 less
            BoxArgument("Target", Box(300, 300, 310, 310)),  # nothing near: dropped
            BoxArgument("Instrument", Box(100, 40, 160, 100)),  # CAR at IoU 0.6
        ),
    )
    grounded, dropped = ground_event(event, (PERSON_2, PERSON, CAR), min_iou=0.5)
    assert dropped == 1
    assert grounded.arguments == (BoxArgument("Attacker", PERSON.box), BoxArgument("Instrument", CAR.box))
    strict, dropped = ground_event(event, (PERSON_2, PERSON, CAR), min_iou=0.7)  # the threshold is the config's
    assert dropped == 2 and strict.arguments == (BoxArgument("Attacker", PERSON.box),)
    item, n = ground_item(ImageItem("x", (event,), None, (PERSON, CAR)), 0.5)
    assert n == 1 and item.candidates == (PERSON, CAR)
    assert ground_item(ImageItem("x", (event,)), 0.5) == (ImageItem("x", (event,)), 0)  # free boxes: untouched
    assert oracle_coverage([ImageItem("x", (event,), None, (PERSON, CAR))]) == (2, 3)


def test_prompt_lists_candidates_and_target_names_one():
    codec = CODECS["qwen2_vl"]
    item = ImageItem("x", (ImageEvent("Life:Die", (BoxArgument("Victim", PERSON.box),)),), "x.png", (PERSON, CAR))
    (ex,) = render.render("image_argument", item, image_size=(200, 100), codec=codec)
    assert "Candidates: person [50, 100, 250, 900]; car [500, 400, 1000, 1000]" in ex.prompt
    assert ex.target == "Victim: person [50, 100, 250, 900]"
    assert ex.context.candidates == ("person [50, 100, 250, 900]", "car [500, 400, 1000, 1000]")
    free = render.render("image_argument", ImageItem("x", item.events), image_size=(200, 100), codec=codec)[0]
    assert free.target == "Victim: [50, 100, 250, 900]" and "Candidates" not in free.prompt
    assert free.context.candidates is None
    none = ImageItem("x", (ImageEvent("Life:Die"),), "x.png", ())
    assert "Candidates: none" in render.render("visual_ee", none, image_size=(200, 100), codec=codec)[0].prompt
    ungrounded = ImageItem("x", item.events, "x.png", (CAR,))
    with pytest.raises(ValueError, match="none of the candidates"):
        render.render("image_argument", ungrounded, image_size=(200, 100), codec=codec)


def test_parse_accepts_only_listed_candidates():
    codec = CODECS["qwen2_5_vl"]
    values = candidate_values((PERSON, CAR), (224, 112), codec)
    ctx = grammar.Context(
        "image_argument", image_size=(224, 112), codec=codec, event_type="Life:Die", candidates=values
    )
    ok = parse.parse(f"Victim: {values[0]}\nInstrument: {values[1]}", ctx)
    assert ok.failures == 0 and [a.box for a in ok.events[0].arguments] == [
        codec.quantize(PERSON.box, (224, 112)),
        codec.quantize(CAR.box, (224, 112)),
    ]
    for bad in ("Victim: [10, 10, 50, 90]", "Victim: car [10, 10, 50, 90]", "Victim: tree " + values[0][7:]):
        p = parse.parse(bad, ctx)
        assert p.failures == 1 and "none of the listed candidates" in p.errors[0]


_corner = st.floats(0, 300, allow_nan=False)
_side = st.floats(2, 100, allow_nan=False)
_box = st.tuples(_corner, _corner, _side, _side).map(lambda b: (b[0], b[1], b[0] + b[2], b[1] + b[3]))
_label = st.sampled_from(["person", "car", "cell phone", "bag"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    boxes=st.lists(st.tuples(_label, _box), min_size=1, max_size=6),
    picks=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 9)), max_size=4),
    task=st.sampled_from(["visual_ee", "image_argument"]),
    codec_name=st.sampled_from(sorted(CODECS)),
    event_type=st.sampled_from(ontology.EVENT_TYPES),
)
def test_round_trip_with_candidates(boxes, picks, task, codec_name, event_type):
    codec, size = CODECS[codec_name], (400, 400)
    dets = tuple(Detection(label, Box(*b), 0.5) for label, b in boxes)
    roles = ontology.IMAGE_ROLES[event_type]
    args = tuple(BoxArgument(roles[r % len(roles)], dets[d % len(dets)].box) for d, r in picks)
    event = ImageEvent(event_type, args)
    item = ImageItem("x", (event,), "x.png", dets)
    (ex,) = render.render(task, item, image_size=size, codec=codec)
    parsed = parse.parse(ex.target, ex.context)
    assert parsed.failures == 0, parsed.errors
    assert parsed.events == grammar.canonical_image_events([event], size, codec)
