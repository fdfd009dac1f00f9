"""Errors by kind come from the scorer's own items: they add up to its false positives and
false negatives in every setting, and each kind names the mistake it is."""

import collections

from rmpl_jax.data.m2e2 import read_m2e2
from rmpl_jax.eval.errors import ERROR_SETTINGS, error_counts, find_errors
from rmpl_jax.eval.scorer import score, strict_items
from rmpl_jax.m2e2.predictions import ImagePrediction
from rmpl_jax.m2e2.records import Box, BoxArgument, ImageEvent
from tests.testing.report_cases import perturbed_gold, small_case


def _assert_adds_up(corpus, predictions):
    report = score(corpus, predictions)
    counts = error_counts(find_errors(strict_items(corpus, predictions)))
    for name in ERROR_SETTINGS:
        c = report.settings[name]
        by_side = collections.Counter()
        for (side, _), n in counts[name].items():
            by_side[side] += n
        assert by_side["pred"] == c.pred - c.tp, name
        assert by_side["gold"] == c.gold - c.tp, name
    return counts


def test_errors_add_up_to_the_scorers_counts_on_m2e2(m2e2_dir):
    corpus = read_m2e2(str(m2e2_dir))
    counts = _assert_adds_up(corpus, perturbed_gold(corpus))
    # The perturbation makes every kind happen, so the sums above are not trivially zero.
    seen = {(name, kind) for name, c in counts.items() for (_, kind), n in c.items() if n}
    for name in ("text_event", "image_event", "multimedia_event"):
        assert {(name, "wrong_type"), (name, "missed")} <= seen
    for name in ("text_argument", "image_argument", "multimedia_argument"):
        assert {(name, "wrong_role"), (name, "missed"), (name, "spurious")} <= seen
    assert ("text_event", "spurious") in seen and ("text_argument", "wrong_type") in seen


def test_each_mistake_gets_its_kind(tmp_path):
    corpus, predictions = small_case(tmp_path)
    errors = find_errors(strict_items(corpus, predictions))
    _assert_adds_up(corpus, predictions)
    found = {(e.setting, e.side, e.kind, e.item[0]) for e in errors if e.setting != "multimedia_argument"}
    assert found == {
        ("text_argument", "pred", "wrong_role", "d_1"),
        ("text_argument", "gold", "wrong_role", "d_1"),
        ("text_event", "pred", "wrong_type", "d_2"),
        ("text_event", "gold", "wrong_type", "d_2"),
        ("text_argument", "pred", "wrong_type", "d_2"),
        ("text_argument", "gold", "wrong_type", "d_2"),
        ("text_event", "gold", "missed", "d_3"),
        ("text_event", "pred", "spurious", "d_4"),
        ("image_argument", "pred", "wrong_role", "d_p1"),
        ("image_argument", "gold", "wrong_role", "d_p1"),
        ("image_event", "pred", "wrong_type", "d_p2"),
        ("image_event", "gold", "wrong_type", "d_p2"),
        ("image_argument", "pred", "wrong_type", "d_p2"),
        ("image_argument", "gold", "wrong_type", "d_p2"),
        ("image_event", "pred", "spurious", "d_p3"),
        ("image_argument", "pred", "spurious", "d_p3"),
        ("image_event", "gold", "missed", "d_p4"),
        ("image_argument", "gold", "missed", "d_p4"),
        ("image_event", "pred", "spurious", "d_p6"),
    }
    boxes = [e for e in errors if e.setting == "image_argument" and e.kind == "wrong_role"]
    assert sorted((e.side, e.item[2]) for e in boxes) == [("gold", "Target"), ("pred", "Instrument")]
    assert {e.image_id for e in boxes} == {"d_p1"} and {e.sentence_id for e in boxes} == {None}


def test_a_box_far_from_every_gold_box_is_spurious_not_wrong_role(tmp_path):
    corpus, predictions = small_case(tmp_path)
    event = predictions.images[0].events[0]
    moved = [a if a.role != "Instrument" else BoxArgument(a.role, Box(300, 250, 390, 290)) for a in event.arguments]
    predictions.images[0] = ImagePrediction("d_p1", (ImageEvent(event.event_type, tuple(moved)),))
    kinds = {
        (e.side, e.kind)
        for e in find_errors(strict_items(corpus, predictions))
        if e.setting == "image_argument" and e.image_id == "d_p1"
    }
    assert kinds == {("pred", "spurious"), ("gold", "missed")}
