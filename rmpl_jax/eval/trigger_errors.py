"""Where text-event errors fall: per event type (missed, spurious, wrong type) and by trigger word.

Built on `errors.find_errors`, so the counts add up to the strict scorer's: a type's gold-side
errors are `gold - tp` (missed + wrong type on the gold side) and its predicted-side errors
`pred - tp` (spurious + wrong type on the predicted side).
"""

from __future__ import annotations

import collections
import dataclasses

from rmpl_jax.eval.errors import ErrorItem
from rmpl_jax.eval.scorer import Counts
from rmpl_jax.m2e2.records import Sentence

UNKNOWN_SENTENCE = "(sentence not in the annotations)"


@dataclasses.dataclass
class TypeErrors:
    """One event type's strict text_event counts and its errors by kind."""

    tp: int = 0
    pred: int = 0
    gold: int = 0
    missed: int = 0  # gold triggers no prediction has, under any type
    spurious: int = 0  # predicted triggers no gold event has, under any type
    wrong_type_gold: int = 0  # gold triggers predicted with another type
    wrong_type_pred: int = 0  # predicted triggers whose gold event has another type


def type_errors(counts: Counts, errors: list[ErrorItem]) -> dict[str, TypeErrors]:
    """Event type -> its counts and errors, from the text_event counts and errors of one scoring."""
    out = {t: TypeErrors(tp=tp, pred=pred, gold=gold) for t, (tp, pred, gold) in counts.by_type.items()}
    for e in errors:
        if e.setting != "text_event":
            continue
        row = out.setdefault(e.event_type, TypeErrors())
        field = f"wrong_type_{e.side}" if e.kind == "wrong_type" else e.kind
        setattr(row, field, getattr(row, field) + 1)
    return dict(sorted(out.items()))


def trigger_words(errors: list[ErrorItem], sentences: dict[str, Sentence], kind: str) -> collections.Counter:
    """Lower-cased trigger text -> how often text_event errors of `kind` ("missed",
    "spurious") have it. A predicted sentence absent from `sentences` counts as
    "(sentence not in the annotations)"."""
    words = collections.Counter()
    for e in errors:
        if e.setting == "text_event" and e.kind == kind:
            sentence_id, _, start, end = e.item
            sentence = sentences.get(sentence_id)
            words[" ".join(sentence.words[start:end]).lower() if sentence else UNKNOWN_SENTENCE] += 1
    return words


def format_type_errors(rows: dict[str, TypeErrors]) -> str:
    """A markdown table of `type_errors`, with a total row."""
    names = [f.name for f in dataclasses.fields(TypeErrors)]
    head = "| event type | tp | pred | gold | missed | spurious | wrong type (gold) | wrong type (pred) |"
    total = [sum(getattr(r, n) for r in rows.values()) for n in names]
    body = [[name, *(getattr(r, n) for n in names)] for name, r in rows.items()] + [["all", *total]]
    return "\n".join([head, "|" + " --- |" * 8, *("| " + " | ".join(map(str, cells)) + " |" for cells in body)])
