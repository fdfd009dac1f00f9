"""The report's cards: one per photo on disk, one per sentence with a gold or predicted event.

A card carries what the page's filters read: `data-types`, the gold and predicted event types
on it, and `data-errors`, the kinds of its errors (JSON lists). Card errors are those of
text_event, text_argument, image_event, image_argument and multimedia_event;
multimedia_argument repeats argument items of pairs and is counted in the error table only.
"""

from __future__ import annotations

import collections
import dataclasses
import html
import json

from PIL import UnidentifiedImageError

from rmpl_jax.eval.errors import ErrorItem
from rmpl_jax.eval.highlight import describe, highlight
from rmpl_jax.eval.photos import photo_thumbnail_uri
from rmpl_jax.eval.scorer import BoxGroups, StrictItems
from rmpl_jax.m2e2.corpus import M2E2Corpus
from rmpl_jax.m2e2.predictions import PredictionSet
from rmpl_jax.m2e2.records import TextEvent

CARD_SETTINGS = ("text_event", "text_argument", "image_event", "image_argument", "multimedia_event")
SIDE_NAMES = {"pred": "predicted", "gold": "gold"}


@dataclasses.dataclass
class Cards:
    """The cards' HTML and what could not be shown (counted on the page)."""

    photos: list[str]
    sentences: list[str]
    photos_without_file: list[str]  # predicted or annotated photos with no file on disk
    unreadable_photos: list[str]  # "image_id: error" for files PIL could not open
    sentences_not_in_gold: int


def _attrs(types: set[str], errors: list[ErrorItem]) -> str:
    kinds = sorted({e.kind for e in errors})
    return (
        f"data-types='{html.escape(json.dumps(sorted(types)), quote=True)}' "
        f"data-errors='{html.escape(json.dumps(kinds), quote=True)}'"
    )


def _box_text(role: str, box) -> str:
    return f"{role} box [{box.x1:.0f}, {box.y1:.0f}, {box.x2:.0f}, {box.y2:.0f}]"


def _error_text(e: ErrorItem, words: tuple[str, ...]) -> str:
    def span(start: int, end: int) -> str:
        inside = words[max(0, start) : max(0, end)]
        return f'"{" ".join(inside)}"' if inside else f"[{start}, {end})"

    if e.setting == "text_event":
        what = f"{e.event_type} trigger {span(e.item[2], e.item[3])}"
    elif e.setting == "text_argument":
        what = f"{e.item[6]}={span(e.item[4], e.item[5])} of {e.event_type} {span(e.item[2], e.item[3])}"
    elif e.setting == "image_event":
        what = f"{e.event_type} event"
    elif e.setting == "image_argument":
        what = f"{_box_text(e.item[2], e.item[3])} of {e.event_type}"
    else:
        what = f"{e.event_type} pair of sentence {e.item[0]} and photo {e.item[1]}"
    kind = f'<span class="kind {e.kind}">{e.kind.replace("_", " ")}</span>'
    return f'<li data-kind="{e.kind}">{kind} ({SIDE_NAMES[e.side]}): {html.escape(what)}</li>'


def _errors_html(errors: list[ErrorItem], words: tuple[str, ...] = ()) -> str:
    if not errors:
        return '<p class="ok">no errors</p>'
    return '<ul class="errs">' + "".join(_error_text(e, words) for e in errors) + "</ul>"


def _boxes_summary(groups: BoxGroups, image_id: str) -> list[str]:
    out = []
    for (iid, event_type), boxes in groups.items():
        if iid == image_id:
            roles = collections.Counter(r for r, _ in boxes)
            listed = ", ".join(f"{r} x{n}" if n > 1 else r for r, n in roles.items()) or "no boxes"
            out.append(f"{html.escape(event_type)}: {html.escape(listed)}")
    return out


def photo_cards(corpus: M2E2Corpus, preds: PredictionSet, items: StrictItems, errors: list[ErrorItem]):
    """(cards of photos on disk, ids of photos without a file, unreadable files)."""
    gold_groups, pred_groups = items.image_argument
    by_image = collections.defaultdict(list)
    for e in errors:
        if e.setting in CARD_SETTINGS and e.image_id is not None:
            by_image[e.image_id].append(e)
    pred_types = collections.defaultdict(set)
    for image_id, event_type in items.image_event[1]:
        pred_types[image_id].add(event_type)
    cards, without_file, unreadable = [], [], []
    ids = list(corpus.images) + [p.image_id for p in preds.images if p.image_id not in corpus.images]
    for image_id in dict.fromkeys(ids):
        item = corpus.images.get(image_id)
        gold = [b for (iid, _), boxes in gold_groups.items() if iid == image_id for b in boxes]
        pred = [b for (iid, _), boxes in pred_groups.items() if iid == image_id for b in boxes]
        if item is None or item.path is None:
            if gold or pred or pred_types[image_id]:
                without_file.append(image_id)
            continue
        try:
            uri = photo_thumbnail_uri(item.path, gold, pred)
        except (OSError, UnidentifiedImageError) as err:
            unreadable.append(f"{image_id}: {err}")
            continue
        types = {e.event_type for e in item.events} | pred_types[image_id]
        gold_lines = _boxes_summary(gold_groups, image_id) or ["no event"]
        pred_lines = _boxes_summary(pred_groups, image_id) or [html.escape(t) for t in sorted(pred_types[image_id])]
        card_errors = by_image[image_id]
        cards.append(
            f'<div class="card photo" data-image-id="{html.escape(image_id)}" {_attrs(types, card_errors)}>'
            f'<img src="{uri}" alt="{html.escape(image_id)}">'
            f"<h4>{html.escape(image_id)}</h4>"
            f'<p><span class="gold">gold</span> {"; ".join(gold_lines)}</p>'
            f'<p><span class="pred">predicted</span> {"; ".join(pred_lines) or "nothing"}</p>'
            f"{_errors_html(card_errors)}</div>"
        )
    return cards, without_file, unreadable


def _sentence_card(sentence_id: str, words: tuple, gold: tuple[TextEvent, ...], pred, errors) -> str:
    types = {e.event_type for e in gold} | {e.event_type for e in pred}
    if words:
        lines = (
            f'<p class="sent"><span class="gold">gold</span> {highlight(words, gold)}</p>'
            f'<p class="sent"><span class="pred">predicted</span> {highlight(words, pred)}</p>'
        )
    else:
        lines = '<p class="warn">not in the gold corpus: scored as predicted items only</p>'
    events = "".join(f'<li class="gold">{line}</li>' for line in describe(words, gold))
    events += "".join(f'<li class="pred">{line}</li>' for line in describe(words, pred))
    return (
        f'<div class="card sentence" data-sentence-id="{html.escape(sentence_id)}" {_attrs(types, errors)}>'
        f"<h4>{html.escape(sentence_id)}</h4>{lines}"
        f'<ul class="events">{events}</ul>{_errors_html(errors, words)}</div>'
    )


def sentence_cards(corpus: M2E2Corpus, preds: PredictionSet, errors: list[ErrorItem]) -> tuple[list[str], int]:
    """(cards of sentences with a gold or predicted event or an error, how many predicted
    sentences are not in the gold)."""
    predicted: dict[str, list[TextEvent]] = collections.defaultdict(list)
    for p in preds.text:
        predicted[p.sentence_id].extend(e for e in p.events if e not in predicted[p.sentence_id])
    by_sentence = collections.defaultdict(list)
    for e in errors:
        if e.setting in CARD_SETTINGS and e.sentence_id is not None:
            by_sentence[e.sentence_id].append(e)
    cards = []
    for sentence_id, s in corpus.sentences.items():
        pred = tuple(predicted.get(sentence_id, ()))
        if s.events or pred or by_sentence.get(sentence_id):
            cards.append(_sentence_card(sentence_id, s.words, s.events, pred, by_sentence[sentence_id]))
    unknown = [sid for sid in predicted if sid not in corpus.sentences and predicted[sid]]
    for sentence_id in unknown:
        cards.append(_sentence_card(sentence_id, (), (), tuple(predicted[sentence_id]), by_sentence[sentence_id]))
    return cards, len(unknown)


def build_cards(corpus: M2E2Corpus, preds: PredictionSet, items: StrictItems, errors: list[ErrorItem]) -> Cards:
    """Every card of the page."""
    photos, without_file, unreadable = photo_cards(corpus, preds, items, errors)
    sentences, not_in_gold = sentence_cards(corpus, preds, errors)
    return Cards(photos, sentences, without_file, unreadable, not_in_gold)
