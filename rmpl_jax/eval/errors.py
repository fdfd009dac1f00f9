"""Errors by kind, from the strict scorer's own items and box matching.

Every false positive and false negative of a strict setting becomes one `ErrorItem`, so a
setting's predicted-side errors number `pred - tp` and its gold-side errors `gold - tp`.
A false positive is
- `wrong_role`: a gold item has the same trigger, type and argument (span or matched box)
  with another role;
- `wrong_type`: a gold item has the same trigger (and argument) with another event type, or
  (photos, pairs) the same photo or pair carries another type;
- `spurious`: anything else.
A false negative is `wrong_role` or `wrong_type` by the same tests against the predictions,
else `missed`. A box's "same argument" is a box of another role left unmatched by the strict
pass that the strict rule (IoU >= 0.5, one-to-one, greedy) pairs with it.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable

from rmpl_jax.eval.scorer import BoxGroups, StrictItems, matched_pairs

KINDS = ("missed", "spurious", "wrong_type", "wrong_role")
ERROR_SETTINGS = (
    "text_event",
    "text_argument",
    "image_event",
    "image_argument",
    "multimedia_event",
    "multimedia_argument",
)


@dataclasses.dataclass(frozen=True)
class ErrorItem:
    """One wrong item. `side` is "pred" (a false positive) or "gold" (a false negative);
    `item` is the scorer's key, or `(image_id, event_type, role, Box)` for a box."""

    setting: str
    kind: str
    side: str
    item: tuple
    event_type: str

    @property
    def sentence_id(self) -> str | None:
        """The sentence the item belongs to (None for a photo's box or event)."""
        return None if self.setting in ("image_event", "image_argument") or self.is_box else self.item[0]

    @property
    def image_id(self) -> str | None:
        """The photo the item belongs to (None for a sentence's trigger or argument)."""
        if self.setting == "multimedia_event":
            return self.item[1]
        return self.item[0] if self.setting == "image_event" or self.is_box else None

    @property
    def is_box(self) -> bool:
        return self.setting in ("image_argument", "multimedia_argument") and len(self.item) == 4


Relaxation = tuple[str, Callable[[tuple], tuple]]


def _set_errors(
    setting: str, gold: set[tuple], pred: set[tuple], relaxations: list[Relaxation], type_at: int = 1
) -> list[ErrorItem]:
    """Classifies the items of one side missing from the other: the first relaxation whose
    key meets an item of the other side names the kind."""
    out = []
    for side, mine, other, default in (("pred", pred, gold, "spurious"), ("gold", gold, pred, "missed")):
        keys = [(kind, key, {key(o) for o in other}) for kind, key in relaxations]
        for item in sorted(mine - other, key=repr):
            kind = next((k for k, key, found in keys if key(item) in found), default)
            out.append(ErrorItem(setting, kind, side, item, item[type_at]))
    return out


def _without_type(item: tuple) -> tuple:
    return item[:1] + item[2:]


def _text_argument_relaxations() -> list[Relaxation]:
    # (sid, type, trig_s, trig_e, arg_s, arg_e, role)
    return [("wrong_role", lambda i: i[:6]), ("wrong_type", lambda i: (i[0], *i[2:6]))]


def _box_errors(setting: str, gold: BoxGroups, pred: BoxGroups) -> list[ErrorItem]:
    """Box errors: the strict per-role matching of `box_counts`, then the same rule across
    roles on what it left unmatched."""
    gold_types, pred_types = collections.defaultdict(set), collections.defaultdict(set)
    for image_id, event_type in gold:
        gold_types[image_id].add(event_type)
    for image_id, event_type in pred:
        pred_types[image_id].add(event_type)
    out, gold_status = [], {}
    for key, boxes in pred.items():
        image_id, event_type = key
        gold_boxes = gold.get(key)
        if gold_boxes is None:
            kind = "wrong_type" if gold_types[image_id] else "spurious"
            out += [ErrorItem(setting, kind, "pred", (image_id, event_type, r, b), event_type) for r, b in boxes]
            continue
        used_pred, used_gold = set(), set()
        for role in dict.fromkeys(r for r, _ in boxes):
            pi = [i for i, (r, _) in enumerate(boxes) if r == role]
            gi = [j for j, (r, _) in enumerate(gold_boxes) if r == role]
            for a, b in matched_pairs([boxes[i][1] for i in pi], [gold_boxes[j][1] for j in gi]):
                used_pred.add(pi[a])
                used_gold.add(gi[b])
        rest_pred = [i for i in range(len(boxes)) if i not in used_pred]
        rest_gold = [j for j in range(len(gold_boxes)) if j not in used_gold]
        across = matched_pairs([boxes[i][1] for i in rest_pred], [gold_boxes[j][1] for j in rest_gold])
        role_pred = {rest_pred[a] for a, _ in across}
        gold_status[key] = (used_gold, {rest_gold[b] for _, b in across})
        for i in rest_pred:
            r, b = boxes[i]
            kind = "wrong_role" if i in role_pred else "spurious"
            out.append(ErrorItem(setting, kind, "pred", (image_id, event_type, r, b), event_type))
    for key, boxes in gold.items():
        image_id, event_type = key
        used_gold, role_gold = gold_status.get(key, (set(), set()))
        for j, (r, b) in enumerate(boxes):
            if j in used_gold:
                continue
            if j in role_gold:
                kind = "wrong_role"
            elif key not in pred and pred_types[image_id]:
                kind = "wrong_type"
            else:
                kind = "missed"
            out.append(ErrorItem(setting, kind, "gold", (image_id, event_type, r, b), event_type))
    return out


def find_errors(items: StrictItems) -> list[ErrorItem]:
    """Every false positive and false negative of the six strict settings, classified."""
    arguments = _text_argument_relaxations()
    return [
        *_set_errors("text_event", *items.text_event, [("wrong_type", _without_type)]),
        *_set_errors("text_argument", *items.text_argument, arguments),
        *_set_errors("image_event", *items.image_event, [("wrong_type", lambda i: i[:1])]),
        *_box_errors("image_argument", *items.image_argument),
        *_set_errors("multimedia_event", *items.multimedia_event, [("wrong_type", lambda i: i[:2])], type_at=2),
        *_set_errors("multimedia_argument", *items.multimedia_text_argument, arguments),
        *_box_errors("multimedia_argument", *items.multimedia_image_argument),
    ]


def error_counts(errors: list[ErrorItem]) -> dict[str, collections.Counter]:
    """setting -> Counter of (side, kind)."""
    out = {name: collections.Counter() for name in ERROR_SETTINGS}
    for e in errors:
        out[e.setting][(e.side, e.kind)] += 1
    return out
