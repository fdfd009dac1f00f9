"""Confusion of event types: gold against predicted type of the same trigger or photo.

Items are aligned by where they are (a sentence's trigger span, a photo); a place's gold and
predicted types that agree count on the diagonal, the rest are paired in sorted order, and
what is left over is paired with None (missed: gold type, None; spurious: None, pred type).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable

Confusion = collections.Counter  # (gold type or None, predicted type or None) -> count


def confusion(gold: Iterable[tuple], pred: Iterable[tuple], place: Callable[[tuple], tuple], type_at: int = 1):
    """Counts (gold type, predicted type) over items aligned by `place(item)`."""
    by_place: dict[tuple, tuple[set, set]] = collections.defaultdict(lambda: (set(), set()))
    for item in gold:
        by_place[place(item)][0].add(item[type_at])
    for item in pred:
        by_place[place(item)][1].add(item[type_at])
    counts = Confusion()
    for gold_types, pred_types in by_place.values():
        for t in gold_types & pred_types:
            counts[(t, t)] += 1
        left_gold, left_pred = sorted(gold_types - pred_types), sorted(pred_types - gold_types)
        for i in range(max(len(left_gold), len(left_pred))):
            g = left_gold[i] if i < len(left_gold) else None
            p = left_pred[i] if i < len(left_pred) else None
            counts[(g, p)] += 1
    return counts


def trigger_confusion(text_event: tuple[set, set]) -> Confusion:
    """Text triggers `(sentence_id, type, start, end)` aligned by sentence and span."""
    gold, pred = text_event
    return confusion(gold, pred, lambda i: (i[0], i[2], i[3]))


def photo_confusion(image_event: tuple[set, set]) -> Confusion:
    """Photo events `(image_id, type)` aligned by photo."""
    gold, pred = image_event
    return confusion(gold, pred, lambda i: i[:1])
