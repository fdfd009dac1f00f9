"""The strict M2E2 scorer (shared/specs/m2e2_eval.md) and its named variants.

Every setting reduces gold and predictions to sets of items and counts micro
P/R/F1 with set semantics; image boxes are matched one-to-one, greedily by
descending IoU. Each item carries its event type so the same counts give the
per-type breakdown.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Iterable

from rmpl_jax.m2e2.corpus import M2E2Corpus
from rmpl_jax.m2e2.predictions import ImagePrediction, PredictionSet, TextPrediction
from rmpl_jax.m2e2.records import Box, ImageItem

SETTINGS = ("text_event", "text_argument", "image_event", "image_argument", "multimedia_event", "multimedia_argument")
VARIANTS = ("text_argument_head", "text_argument_no_trigger", "image_argument_inside")
IOU_THRESHOLD = 0.5
INSIDE_THRESHOLD = 0.9


@dataclasses.dataclass
class Counts:
    """True positives, predicted and gold item counts, overall and per event type."""

    tp: int = 0
    pred: int = 0
    gold: int = 0
    by_type: dict[str, list[int]] = dataclasses.field(
        default_factory=lambda: collections.defaultdict(lambda: [0, 0, 0])
    )

    def add(self, event_type: str, tp: int = 0, pred: int = 0, gold: int = 0) -> None:
        self.tp += tp
        self.pred += pred
        self.gold += gold
        row = self.by_type[event_type]
        row[0] += tp
        row[1] += pred
        row[2] += gold

    def merge(self, other: Counts) -> Counts:
        merged = Counts()
        for counts in (self, other):
            for event_type, (tp, pred, gold) in counts.by_type.items():
                merged.add(event_type, tp, pred, gold)
        return merged


def prf(tp: int, pred: int, gold: int) -> dict:
    """`{p, r, f1, tp, pred, gold}`; an empty denominator gives 0."""
    p = tp / pred if pred else 0.0
    r = tp / gold if gold else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"p": p, "r": r, "f1": f1, "tp": tp, "pred": pred, "gold": gold}


def _set_counts(gold: set[tuple], pred: set[tuple]) -> Counts:
    """Item sets whose element 1 is the event type (keys start with an item id)."""
    counts = Counts()
    for item in pred:
        counts.add(item[1], pred=1, tp=int(item in gold))
    for item in gold:
        counts.add(item[1], gold=1)
    return counts


# ---- item extraction -------------------------------------------------------------

TextEventRows = Iterable[tuple[str, object]]  # (sentence_id, TextEvent)


def _text_events(corpus: M2E2Corpus) -> list[tuple[str, object]]:
    return [(s.sentence_id, e) for s in corpus.sentences.values() for e in s.events]


def _predicted_text_events(preds: list[TextPrediction]) -> list[tuple[str, object]]:
    return [(p.sentence_id, e) for p in preds for e in p.events]


def event_items(rows: TextEventRows) -> set[tuple]:
    return {(sid, e.event_type, e.trigger.start, e.trigger.end) for sid, e in rows}


def argument_items(rows: TextEventRows) -> set[tuple]:
    """Strict text-argument keys: `(sid, type, trig_s, trig_e, arg_s, arg_e, role)`."""
    return {
        (sid, e.event_type, e.trigger.start, e.trigger.end, a.span.start, a.span.end, a.role)
        for sid, e in rows
        for a in e.arguments
    }


def _head_key(item: tuple) -> tuple:
    sid, t, ts, te, a_s, _, role = item
    return (sid, t, ts, te, a_s, role)


def _no_trigger_key(item: tuple) -> tuple:
    sid, t, _, _, a_s, a_e, role = item
    return (sid, t, a_s, a_e, role)


# ---- image boxes ----------------------------------------------------------------

# (image_id, event_type) -> boxes as (role, Box), duplicates removed, first-seen order.
BoxGroups = dict[tuple[str, str], list[tuple[str, Box]]]


def predicted_box_groups(preds: list[ImagePrediction]) -> BoxGroups:
    """Only the first event of an image record is scored."""
    groups: dict[tuple[str, str], dict] = {}
    for p in preds:
        if p.events:
            event = p.events[0]
            group = groups.setdefault((p.image_id, event.event_type), {})
            group.update(dict.fromkeys((a.role, a.box) for a in event.arguments))
    return {key: list(group) for key, group in groups.items()}


def gold_box_groups(images: Iterable[ImageItem]) -> BoxGroups:
    """Every gold box counts (gold boxes are never merged)."""
    return {
        (i.image_id, i.events[0].event_type): [(a.role, a.box) for a in i.events[0].arguments]
        for i in images
        if i.events
    }


def _eligible_iou(pred: Box, gold: Box) -> bool:
    return pred.iou(gold) >= IOU_THRESHOLD


def _eligible_iou_or_inside(pred: Box, gold: Box) -> bool:
    inside = pred.area > 0 and pred.intersection(gold) / pred.area >= INSIDE_THRESHOLD
    return inside or _eligible_iou(pred, gold)


def matched_pairs(
    pred: list[Box], gold: list[Box], eligible: Callable[[Box, Box], bool] = _eligible_iou
) -> list[tuple[int, int]]:
    """The (pred index, gold index) pairs matched one-to-one, taken greedily by descending IoU
    among eligible pairs. Ties keep enumeration order (prediction-major), so the result is
    deterministic."""
    pairs = [
        (pred_box.iou(gold_box), i, j)
        for i, pred_box in enumerate(pred)
        for j, gold_box in enumerate(gold)
        if eligible(pred_box, gold_box)
    ]
    pairs.sort(key=lambda x: -x[0])
    used_pred, used_gold, matched = set(), set(), []
    for _, i, j in pairs:
        if i not in used_pred and j not in used_gold:
            used_pred.add(i)
            used_gold.add(j)
            matched.append((i, j))
    return matched


def match_boxes(pred: list[Box], gold: list[Box], eligible: Callable[[Box, Box], bool] = _eligible_iou) -> int:
    """How many boxes `matched_pairs` matches."""
    return len(matched_pairs(pred, gold, eligible))


def box_counts(gold: BoxGroups, pred: BoxGroups, eligible: Callable[[Box, Box], bool] = _eligible_iou) -> Counts:
    """Boxes match only within an image whose predicted type equals the gold type,
    and only to gold boxes of the same role."""
    counts = Counts()
    for (image_id, event_type), boxes in pred.items():
        gold_boxes = gold.get((image_id, event_type), [])
        tp = 0
        for role in dict.fromkeys(r for r, _ in boxes):
            tp += match_boxes([b for r, b in boxes if r == role], [b for r, b in gold_boxes if r == role], eligible)
        counts.add(event_type, tp=tp, pred=len(boxes))
    for (_, event_type), boxes in gold.items():
        counts.add(event_type, gold=len(boxes))
    return counts


# ---- settings -------------------------------------------------------------------


@dataclasses.dataclass
class ScoreReport:
    settings: dict[str, Counts]
    variants: dict[str, Counts]

    def as_dict(self) -> dict:
        """The CLI's JSON: six settings plus `variants`, each `{p, r, f1, tp, pred, gold}`."""
        out = {name: prf(c.tp, c.pred, c.gold) for name, c in self.settings.items()}
        out["variants"] = {name: prf(c.tp, c.pred, c.gold) for name, c in self.variants.items()}
        return out

    def by_type(self) -> dict[str, dict[str, dict]]:
        """setting -> event type -> `{p, r, f1, tp, pred, gold}`."""
        return {
            name: {t: prf(*row) for t, row in sorted(c.by_type.items())}
            for name, c in {**self.settings, **self.variants}.items()
        }


def _in_pairs(pairs: set[tuple], items: set[tuple]) -> set[tuple]:
    """Text items whose (sentence_id, event_type) is in a coref pair."""
    keys = {(sid, t) for sid, _, t in pairs}
    return {item for item in items if (item[0], item[1]) in keys}


def _groups_in_pairs(pairs: set[tuple], groups: BoxGroups) -> BoxGroups:
    """Box groups of images in a pair whose type equals the image's event type."""
    keys = {(iid, t) for _, iid, t in pairs}
    return {key: boxes for key, boxes in groups.items() if key in keys}


@dataclasses.dataclass(frozen=True)
class StrictItems:
    """Gold and predicted items of each strict setting, `(gold, pred)`, exactly as `score`
    counts them: key sets for the text and pair settings, box groups for the image ones.
    Multimedia arguments are the text items and box groups of coref pairs."""

    text_event: tuple[set[tuple], set[tuple]]
    text_argument: tuple[set[tuple], set[tuple]]
    image_event: tuple[set[tuple], set[tuple]]
    image_argument: tuple[BoxGroups, BoxGroups]
    multimedia_event: tuple[set[tuple], set[tuple]]  # (sentence_id, image_id, event_type)
    multimedia_text_argument: tuple[set[tuple], set[tuple]]
    multimedia_image_argument: tuple[BoxGroups, BoxGroups]


def strict_items(corpus: M2E2Corpus, preds: PredictionSet) -> StrictItems:
    """Reduces the corpus and the predictions to the items of every strict setting."""
    gold_rows = _text_events(corpus)
    pred_rows = _predicted_text_events(preds.text)
    gold_args, pred_args = argument_items(gold_rows), argument_items(pred_rows)
    gold_images = gold_box_groups(corpus.images.values())
    pred_images = predicted_box_groups(preds.images)
    gold_pairs = {(c.sentence_id, c.image_id, c.event_type) for c in corpus.coref}
    pred_pairs = {(c.sentence_id, c.image_id, c.event_type) for c in preds.coref}
    return StrictItems(
        text_event=(event_items(gold_rows), event_items(pred_rows)),
        text_argument=(gold_args, pred_args),
        image_event=(set(gold_images), {(p.image_id, p.events[0].event_type) for p in preds.images if p.events}),
        image_argument=(gold_images, pred_images),
        multimedia_event=(gold_pairs, pred_pairs),
        multimedia_text_argument=(_in_pairs(gold_pairs, gold_args), _in_pairs(pred_pairs, pred_args)),
        multimedia_image_argument=(
            _groups_in_pairs(gold_pairs, gold_images),
            _groups_in_pairs(pred_pairs, pred_images),
        ),
    )


def score(corpus: M2E2Corpus, preds: PredictionSet) -> ScoreReport:
    """Scores predictions against the corpus under the strict protocol and variants."""
    items = strict_items(corpus, preds)
    gold_pairs, pred_pairs = items.multimedia_event
    multimedia_event = Counts()
    for sid, iid, t in pred_pairs:
        multimedia_event.add(t, pred=1, tp=int((sid, iid, t) in gold_pairs))
    for _, _, t in gold_pairs:
        multimedia_event.add(t, gold=1)

    gold_args, pred_args = items.text_argument
    settings = {
        "text_event": _set_counts(*items.text_event),
        "text_argument": _set_counts(gold_args, pred_args),
        "image_event": _set_counts(*items.image_event),
        "image_argument": box_counts(*items.image_argument),
        "multimedia_event": multimedia_event,
        "multimedia_argument": _set_counts(*items.multimedia_text_argument).merge(
            box_counts(*items.multimedia_image_argument)
        ),
    }
    variants = {
        "text_argument_head": _set_counts({_head_key(i) for i in gold_args}, {_head_key(i) for i in pred_args}),
        "text_argument_no_trigger": _set_counts(
            {_no_trigger_key(i) for i in gold_args}, {_no_trigger_key(i) for i in pred_args}
        ),
        "image_argument_inside": box_counts(*items.image_argument, _eligible_iou_or_inside),
    }
    return ScoreReport(settings, variants)


def gold_as_predictions(corpus: M2E2Corpus) -> PredictionSet:
    """The gold annotations in prediction form (scores 1.0 everywhere)."""
    return PredictionSet(
        text=[TextPrediction(s.sentence_id, s.events) for s in corpus.sentences.values()],
        images=[ImagePrediction(i.image_id, i.events) for i in corpus.images.values() if i.events],
        coref=list(corpus.coref),
    )
