"""Reader for OneIE's JSON Lines format (ACE2005/ERE as OneIE preprocesses them).

One sentence per line: `doc_id`, `sent_id`, `tokens`,
`entity_mentions[{id, start, end, entity_type, text}]`,
`event_mentions[{event_type, trigger{start,end,text}, arguments[{entity_id, role, text}]}]`.
Argument spans are the spans of the entity mentions their `entity_id` names.
Blank lines are ignored.

Report counts: as `jmee.read_jmee` (`events_other_type`, `arguments_outside_schema`,
`text_mismatch`, `events`, `arguments`).
"""

from __future__ import annotations

import json
import os

from rmpl_jax.data.jmee import event_from_json, span_from_json
from rmpl_jax.io.lines import numbered_lines
from rmpl_jax.io.read_report import DataError, ReadReport, require, require_words
from rmpl_jax.m2e2.records import EntityMention, Sentence, Span


def read_oneie(path: str | os.PathLike, *, lenient: bool = False) -> tuple[list[Sentence], ReadReport]:
    """Reads a OneIE JSONL file into Sentences mapped onto the M2E2 ontology.

    Raises DataError naming file, line and key on bad input; `lenient=True` skips the
    bad line and notes it in the returned report.
    """
    path = os.fspath(path)
    report = ReadReport(source=path, lenient=lenient)
    sentences = []
    for lineno, line in numbered_lines(path, on_error=report.skip):
        where = f"{path}:{lineno}"
        try:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{where}: not valid JSON ({e})") from None
            sentences.append(_sentence(obj, where, report))
        except DataError as e:
            report.skip(e)
    report.records = len(sentences)
    return sentences, report


def _sentence(obj, where, report) -> Sentence:
    doc_id = require(obj, "doc_id", str, where)
    sent_id = require(obj, "sent_id", str, where)
    where = f"{where} ({sent_id})"
    words = require_words(obj, "tokens", where)
    entities, by_id = [], {}
    for i, m in enumerate(require(obj, "entity_mentions", list, where)):
        w = f"{where} entity_mentions[{i}]"
        mention_id = require(m, "id", str, w)
        span = span_from_json(m, words, w, report)
        if mention_id in by_id:
            raise DataError(f"{w}: duplicate entity id {mention_id!r}")
        by_id[mention_id] = span
        entities.append(EntityMention(require(m, "entity_type", str, w), span))
    events = []
    for i, e in enumerate(require(obj, "event_mentions", list, where)):
        event = event_from_json(
            e, words, f"{where} event_mentions[{i}]", report, lambda a, w: _entity_span(a, by_id, w)
        )
        if event is not None:
            events.append(event)
    report.counts["events"] += len(events)
    report.counts["arguments"] += sum(len(e.arguments) for e in events)
    return Sentence(sentence_id=sent_id, words=words, events=tuple(events), entities=tuple(entities), doc_id=doc_id)


def _entity_span(argument, by_id, where) -> Span:
    """OneIE arguments name an entity mention instead of carrying offsets."""
    entity_id = require(argument, "entity_id", str, where)
    if entity_id not in by_id:
        raise DataError(f"{where}: key 'entity_id' {entity_id!r} names no entity mention")
    return by_id[entity_id]
