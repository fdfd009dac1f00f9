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

from rmpl_jax import schema
from rmpl_jax.data.read_report import DataError, ReadReport, require, require_span, require_words
from rmpl_jax.records import EntityMention, Sentence, Span, TextArgument, TextEvent

_ROLE_KEYS = {t: {r.lower(): r for r in roles} for t, roles in schema.TEXT_ROLES.items()}


def read_oneie(path: str | os.PathLike, *, lenient: bool = False) -> tuple[list[Sentence], ReadReport]:
    """Reads a OneIE JSONL file into Sentences mapped onto the M2E2 ontology.

    Raises DataError naming file, line and key on bad input; `lenient=True` skips the
    bad line and notes it in the returned report.
    """
    path = os.fspath(path)
    report = ReadReport(source=path, lenient=lenient)
    sentences = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
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
        span = _span(m, words, w, report)
        if mention_id in by_id:
            raise DataError(f"{w}: duplicate entity id {mention_id!r}")
        by_id[mention_id] = span
        entities.append(EntityMention(require(m, "entity_type", str, w), span))
    events = []
    for i, e in enumerate(require(obj, "event_mentions", list, where)):
        event = _event(e, words, by_id, f"{where} event_mentions[{i}]", report)
        if event is not None:
            events.append(event)
    report.counts["events"] += len(events)
    report.counts["arguments"] += sum(len(e.arguments) for e in events)
    return Sentence(sentence_id=sent_id, words=words, events=tuple(events),
                    entities=tuple(entities), doc_id=doc_id)


def _event(e, words, by_id, where, report) -> TextEvent | None:
    raw_type = require(e, "event_type", str, where)
    try:
        event_type = schema.ace_to_m2e2(raw_type)
    except ValueError as err:
        raise DataError(f"{where}: key 'event_type': {err}") from None
    trigger = _span(require(e, "trigger", dict, where), words, f"{where} trigger", report)
    arguments = []
    for j, a in enumerate(require(e, "arguments", list, where)):
        w = f"{where} arguments[{j}]"
        role = require(a, "role", str, w)
        entity_id = require(a, "entity_id", str, w)
        if entity_id not in by_id:
            raise DataError(f"{w}: key 'entity_id' {entity_id!r} names no entity mention")
        if event_type is None:
            continue
        canonical = _ROLE_KEYS[event_type].get(role.lower())
        if canonical is None:
            report.counts["arguments_outside_schema"] += 1
            continue
        arguments.append(TextArgument(canonical, by_id[entity_id]))
    if event_type is None:
        report.counts["events_other_type"] += 1
        return None
    return TextEvent(event_type, trigger, tuple(arguments))


def _span(obj, words, where, report) -> Span:
    start, end = require_span(obj, len(words), where)
    given = obj.get("text")
    if isinstance(given, str) and "".join(given.split()) != "".join(words[start:end]):
        report.counts["text_mismatch"] += 1
    return Span(start, end, " ".join(words[start:end]))
