"""Reader for text event extraction in the JMEE JSON format (ACE2005 as JMEE ships it).

The file is a JSON list of sentence objects:
`sentence_id` (optional; synthesised as `<file stem>_<index>` when absent), `words`,
`golden-entity-mentions` (optional) `[{entity-type, start, end, text}]`,
`golden-event-mentions` `[{trigger{start,end,text}, event_type, arguments[{role,start,end,text}]}]`,
`image` (optional, M2E2's photo file names). Offsets are token indices, end-exclusive.
M2E2's text files use the same keys, so `sentence_from_jmee` reads them too.

Report counts: `events_other_type` (ACE subtypes outside the 8 M2E2 types, dropped),
`arguments_outside_schema` (roles not in `ontology.TEXT_ROLES[type]`, dropped, e.g. Time-*),
`text_mismatch` (a `text` field that differs from its tokens beyond whitespace; the tokens win),
`events` and `arguments` kept.
"""

from __future__ import annotations

import os

from rmpl_jax.io.read_report import (
    DataError,
    ReadReport,
    load_json,
    require,
    require_span,
    require_words,
)
from rmpl_jax.m2e2 import ontology
from rmpl_jax.m2e2.records import (
    EntityMention,
    Sentence,
    Span,
    TextArgument,
    TextEvent,
    doc_id_of,
)

# Role lookup that forgives case ("attacker"); the schema spelling is what we keep.
_ROLE_KEYS = {t: {r.lower(): r for r in roles} for t, roles in ontology.TEXT_ROLES.items()}


def read_jmee(path: str | os.PathLike, *, lenient: bool = False) -> tuple[list[Sentence], ReadReport]:
    """Reads a JMEE-format JSON file into Sentences mapped onto the M2E2 ontology.

    Raises DataError naming the file, record index and key on bad input; with
    `lenient=True` the bad record is skipped and noted in the returned report instead.
    A file that is not a JSON list is always an error.
    """
    path = os.fspath(path)
    report = ReadReport(source=path, lenient=lenient)
    data = load_json(path)
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of sentences, got {type(data).__name__}")
    stem = os.path.splitext(os.path.basename(path))[0]
    sentences = []
    for index, obj in enumerate(data):
        where = f"{path}: record {index}"
        try:
            sentences.append(sentence_from_jmee(obj, where, report, default_id=f"{stem}_{index}"))
        except DataError as e:
            report.skip(e)
    report.records = len(sentences)
    return sentences, report


def sentence_from_jmee(obj, where: str, report: ReadReport, default_id: str | None = None) -> Sentence:
    """One JMEE/M2E2 sentence object -> Sentence; raises DataError, counts drops in report."""
    if isinstance(obj, dict) and "sentence_id" in obj:
        sentence_id = require(obj, "sentence_id", str, where)
    elif default_id is not None:
        sentence_id = default_id
    else:
        sentence_id = require(obj, "sentence_id", str, where)
    where = f"{where} ({sentence_id})"
    words = require_words(obj, "words", where)
    entities = []
    mentions = obj.get("golden-entity-mentions", [])
    if not isinstance(mentions, list):
        raise DataError(f"{where}: key 'golden-entity-mentions' must be a list, got {type(mentions).__name__}")
    for i, m in enumerate(mentions):
        w = f"{where} golden-entity-mentions[{i}]"
        etype = require(m, "entity-type", str, w)
        entities.append(EntityMention(etype, span_from_json(m, words, w, report)))
    events = []
    for i, e in enumerate(require(obj, "golden-event-mentions", list, where)):
        event = event_from_json(
            e, words, f"{where} golden-event-mentions[{i}]", report, lambda a, w: span_from_json(a, words, w, report)
        )
        if event is not None:
            events.append(event)
    images = obj.get("image", [])
    if not isinstance(images, list) or not all(isinstance(x, str) for x in images):
        raise DataError(f"{where}: key 'image' must be a list of file names")
    report.counts["events"] += len(events)
    report.counts["arguments"] += sum(len(e.arguments) for e in events)
    return Sentence(
        sentence_id=sentence_id,
        words=words,
        events=tuple(events),
        entities=tuple(entities),
        doc_id=doc_id_of(sentence_id),
        images=tuple(images),
    )


def event_from_json(e, words, where, report, argument_span) -> TextEvent | None:
    """One event object -> TextEvent on the M2E2 ontology, or None (counted) for an ACE
    subtype outside the 8; roles outside the schema are dropped and counted.
    `argument_span(arg, where)` resolves an argument object to its Span (JMEE: its own
    offsets; OneIE: its entity mention)."""
    raw_type = require(e, "event_type", str, where)
    try:
        event_type = ontology.ace_to_m2e2(raw_type)
    except ValueError as err:
        raise DataError(f"{where}: key 'event_type': {err}") from None
    trigger = span_from_json(require(e, "trigger", dict, where), words, f"{where} trigger", report)
    arguments = []
    for j, a in enumerate(require(e, "arguments", list, where)):
        w = f"{where} arguments[{j}]"
        role = require(a, "role", str, w)
        span = argument_span(a, w)  # checked even when dropped: bad offsets are bugs
        if event_type is None:
            continue
        canonical = _ROLE_KEYS[event_type].get(role.lower())
        if canonical is None:
            report.counts["arguments_outside_schema"] += 1
            continue
        arguments.append(TextArgument(canonical, span))
    if event_type is None:
        report.counts["events_other_type"] += 1
        return None
    return TextEvent(event_type, trigger, tuple(arguments))


def span_from_json(obj, words, where, report) -> Span:
    """`{start, end[, text]}` -> Span; a `text` that disagrees with the tokens is counted."""
    start, end = require_span(obj, len(words), where)
    text = " ".join(words[start:end])
    given = obj.get("text")
    if isinstance(given, str) and "".join(given.split()) != "".join(words[start:end]):
        report.counts["text_mismatch"] += 1
    return Span(start, end, text)
