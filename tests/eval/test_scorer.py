"""The strict scorer: gold against itself on real M2E2, and hand-computed small cases."""

import pytest

from rmpl_jax.data.m2e2 import read_m2e2
from rmpl_jax.eval.scorer import gold_as_predictions, match_boxes, score
from rmpl_jax.io.read_report import ReadReport
from rmpl_jax.m2e2.corpus import M2E2Corpus
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

ATTACK, DIE, MEET = "Conflict:Attack", "Life:Die", "Contact:Meet"


def test_gold_scores_one_with_spec_totals(m2e2_dir):
    corpus = read_m2e2(str(m2e2_dir))
    result = score(corpus, gold_as_predictions(corpus)).as_dict()
    totals = {
        name: result[name]["gold"]
        for name in (
            "text_event",
            "text_argument",
            "image_event",
            "image_argument",
            "multimedia_event",
            "multimedia_argument",
        )
    }
    assert totals == {
        "text_event": 1297,
        "text_argument": 1966,
        "image_event": 391,
        "image_argument": 1429,
        "multimedia_event": 309,
        "multimedia_argument": 1046,
    }
    for name, s in list(result.items()) + list(result["variants"].items()):
        if name != "variants":
            assert (s["p"], s["r"], s["f1"]) == (1.0, 1.0, 1.0), name
            assert s["tp"] == s["pred"] == s["gold"], name


def ev(event_type, trigger, *args):
    return TextEvent(event_type, Span(*trigger), tuple(TextArgument(r, Span(*s)) for r, s in args))


def img(event_type, *args):
    return ImageEvent(event_type, tuple(BoxArgument(r, Box(*b)) for r, b in args))


def small_corpus():
    """Two sentences and three photos of one document; s1 and p1 corefer (Attack)."""
    words = tuple(f"w{i}" for i in range(12))
    sentences = {
        "d_1": Sentence("d_1", words, (ev(ATTACK, (2, 3), ("Attacker", (0, 2)), ("Target", (4, 6))),), doc_id="d"),
        "d_2": Sentence("d_2", words, (ev(DIE, (7, 8), ("Victim", (8, 10))),), doc_id="d"),
    }
    images = {
        "d_p1": ImageItem(
            "d_p1",
            (
                img(
                    ATTACK,
                    ("Attacker", (0, 0, 100, 100)),
                    ("Attacker", (20, 0, 120, 100)),
                    ("Target", (300, 300, 400, 400)),
                ),
            ),
        ),
        "d_p2": ImageItem("d_p2", (img(MEET, ("Entity", (0, 0, 50, 50))),)),
        "d_p3": ImageItem("d_p3"),  # referenced, not annotated
    }
    coref = (CorefPair("d_1", "d_p1", ATTACK),)
    return M2E2Corpus(sentences, images, coref, (), ReadReport("test"))


def run(preds, setting, variant=False):
    report = score(small_corpus(), preds).as_dict()
    s = report["variants"][setting] if variant else report[setting]
    return s["tp"], s["pred"], s["gold"]


def test_duplicate_text_predictions_count_once():
    e = ev(ATTACK, (2, 3), ("Attacker", (0, 2)))
    preds = PredictionSet(text=[TextPrediction("d_1", (e, e)), TextPrediction("d_1", (e,))])
    assert run(preds, "text_event") == (1, 1, 2)
    assert run(preds, "text_argument") == (1, 1, 3)


def test_text_event_needs_type_and_exact_trigger():
    preds = PredictionSet(
        text=[TextPrediction("d_1", (ev(DIE, (2, 3)), ev(ATTACK, (2, 4)))), TextPrediction("d_2", (ev(DIE, (7, 8)),))]
    )
    assert run(preds, "text_event") == (1, 3, 2)


def test_text_argument_strict_and_variants():
    # Right trigger, Attacker span too long: strict wrong, head variant right.
    # Wrong trigger, Target span right: strict wrong, no-trigger variant right.
    preds = PredictionSet(
        text=[TextPrediction("d_1", (ev(ATTACK, (2, 3), ("Attacker", (0, 3))), ev(ATTACK, (3, 4), ("Target", (4, 6)))))]
    )
    assert run(preds, "text_argument") == (0, 2, 3)
    assert run(preds, "text_argument_head", variant=True) == (1, 2, 3)
    assert run(preds, "text_argument_no_trigger", variant=True) == (1, 2, 3)
    # An unknown role scores as wrong, no error.
    preds = PredictionSet(text=[TextPrediction("d_1", (ev(ATTACK, (2, 3), ("Shooter", (0, 2))),))])
    assert run(preds, "text_argument") == (0, 1, 3)


def test_one_box_matching_two_gold_boxes_counts_once():
    # IoU 0.82 with both Attacker gold boxes.
    preds = PredictionSet(images=[ImagePrediction("d_p1", (img(ATTACK, ("Attacker", (10, 0, 110, 100))),))])
    assert run(preds, "image_argument") == (1, 1, 4)
    assert run(preds, "image_event") == (1, 1, 2)


def test_box_role_must_match():
    preds = PredictionSet(images=[ImagePrediction("d_p1", (img(ATTACK, ("Target", (0, 0, 100, 100))),))])
    assert run(preds, "image_argument") == (0, 1, 4)


def test_wrong_image_type_with_right_boxes():
    preds = PredictionSet(
        images=[ImagePrediction("d_p1", (img(DIE, ("Attacker", (0, 0, 100, 100)), ("Target", (300, 300, 400, 400))),))]
    )
    assert run(preds, "image_event") == (0, 1, 2)
    assert run(preds, "image_argument") == (0, 2, 4)


def test_only_first_image_event_is_scored():
    preds = PredictionSet(
        images=[
            ImagePrediction(
                "d_p1", (img(ATTACK, ("Target", (300, 300, 400, 400))), img(MEET, ("Entity", (0, 0, 50, 50))))
            )
        ]
    )
    assert run(preds, "image_event") == (1, 1, 2)
    assert run(preds, "image_argument") == (1, 1, 4)


def test_unannotated_image_predictions_are_false_positives():
    preds = PredictionSet(
        images=[
            ImagePrediction("d_p3", (img(MEET, ("Entity", (0, 0, 50, 50))),)),
            ImagePrediction("d_p2", (img(MEET, ("Entity", (0, 0, 50, 50))),)),
        ]
    )
    assert run(preds, "image_event") == (1, 2, 2)
    assert run(preds, "image_argument") == (1, 2, 4)


def test_duplicate_boxes_count_once():
    box = ("Entity", (0, 0, 50, 50))
    preds = PredictionSet(
        images=[ImagePrediction("d_p2", (img(MEET, box, box),)), ImagePrediction("d_p2", (img(MEET, box),))]
    )
    assert run(preds, "image_argument") == (1, 1, 4)


def test_iou_threshold_is_inclusive_and_inside_variant():
    # IoU exactly 0.5 counts; a small box inside a gold box counts only in the variant.
    preds = PredictionSet(
        images=[
            ImagePrediction("d_p1", (img(ATTACK, ("Attacker", (0, 0, 100, 50)), ("Target", (310, 310, 340, 340))),))
        ]
    )
    assert run(preds, "image_argument") == (1, 2, 4)
    assert run(preds, "image_argument_inside", variant=True) == (2, 2, 4)


def test_greedy_matching_by_descending_iou():
    gold = [Box(0, 0, 100, 100), Box(40, 0, 140, 100)]
    # p0 overlaps g0 at IoU 0.82 and g1 at 0.54; p1 only g0 at IoU 0.6.
    # Greedy takes (p0, g0) first, so p1 is left without a partner: 1 match, where a
    # maximum matching would find 2.
    pred = [Box(10, 0, 110, 100), Box(0, 0, 100, 60)]
    assert [round(pred[0].iou(g), 2) for g in gold] == [0.82, 0.54]
    assert [round(pred[1].iou(g), 2) for g in gold] == [0.6, 0.29]
    assert match_boxes(pred, gold) == 1
    assert match_boxes(list(reversed(pred)), gold) == 1
    assert match_boxes(gold, gold) == 2


def test_multimedia_event_and_wrong_type_pair():
    preds = PredictionSet(
        coref=[CorefPair("d_1", "d_p1", ATTACK), CorefPair("d_1", "d_p1", ATTACK), CorefPair("d_2", "d_p1", DIE)]
    )
    assert run(preds, "multimedia_event") == (1, 2, 1)


def test_multimedia_argument_sums_text_and_image():
    gold_total = 2 + 3  # d_1's two arguments + d_p1's three boxes
    text = TextPrediction("d_1", (ev(ATTACK, (2, 3), ("Attacker", (0, 2)), ("Place", (9, 10))),))
    image = ImagePrediction("d_p1", (img(ATTACK, ("Target", (300, 300, 400, 400))),))
    right = PredictionSet(text=[text], images=[image], coref=[CorefPair("d_1", "d_p1", ATTACK)])
    assert run(right, "multimedia_argument") == (2, 3, gold_total)
    # A pair of the wrong type brings no items: the sentence's Attack arguments and the
    # Attack image do not belong to a Die pair.
    wrong = PredictionSet(text=[text], images=[image], coref=[CorefPair("d_1", "d_p1", DIE)])
    assert run(wrong, "multimedia_argument") == (0, 0, gold_total)
    # No pair at all: nothing predicted for the multimedia setting.
    none = PredictionSet(text=[text], images=[image])
    assert run(none, "multimedia_argument") == (0, 0, gold_total)


def test_empty_predictions():
    report = score(small_corpus(), PredictionSet()).as_dict()
    for name in ("text_event", "image_argument", "multimedia_argument"):
        assert report[name]["p"] == report[name]["r"] == report[name]["f1"] == 0.0
        assert report[name]["gold"] > 0


def test_per_type_breakdown_sums_to_total():
    preds = PredictionSet(text=[TextPrediction("d_1", (ev(ATTACK, (2, 3)), ev("Made:Up", (5, 6))))])
    report = score(small_corpus(), preds)
    rows = report.by_type()["text_event"]
    assert rows["Made:Up"]["pred"] == 1 and rows["Made:Up"]["tp"] == 0
    assert sum(r["pred"] for r in rows.values()) == report.settings["text_event"].pred
    assert sum(r["gold"] for r in rows.values()) == report.settings["text_event"].gold


@pytest.mark.parametrize("setting", ["text_event", "image_event"])
def test_f1_is_harmonic_mean(setting):
    preds = PredictionSet(
        text=[TextPrediction("d_1", (ev(ATTACK, (2, 3)), ev(DIE, (0, 1))))],
        images=[ImagePrediction("d_p1", (img(ATTACK),))],
    )
    s = score(small_corpus(), preds).as_dict()[setting]
    assert s["f1"] == pytest.approx(2 * s["p"] * s["r"] / (s["p"] + s["r"]))
