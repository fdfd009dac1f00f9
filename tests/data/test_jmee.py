"""JMEE reader on fixtures written here (ACE cannot ship) and on M2E2's text files."""

import json
import os

import pytest

from rmpl_jax.data.jmee import read_jmee
from rmpl_jax.io.read_report import DataError
from rmpl_jax.m2e2.records import Span, TextArgument

WORDS = ["Rebels", "attacked", "the", "town", "on", "Monday", "and", "later", "bought", "weapons", "."]


def _event(event_type, trigger, args=()):
    return {
        "event_type": event_type,
        "trigger": {"start": trigger[0], "end": trigger[1], "text": " ".join(WORDS[slice(*trigger)])},
        "arguments": [{"role": r, "start": s, "end": e, "text": " ".join(WORDS[s:e])} for r, s, e in args],
    }


def _sentence(events, **extra):
    return {
        "words": WORDS,
        "golden-entity-mentions": [{"entity-type": "ORG", "start": 0, "end": 1, "text": "Rebels"}],
        "golden-event-mentions": events,
        **extra,
    }


def _write(tmp_path, data, name="ace_train.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_reads_maps_and_counts(tmp_path):
    data = [
        _sentence(
            [
                _event("Conflict:Attack", (1, 2), [("Attacker", 0, 1), ("Target", 2, 4), ("Time-Within", 4, 6)]),
                _event("Transaction:Transfer-Ownership", (8, 9), [("Buyer", 0, 1)]),
            ],
            sentence_id="DOC_A_3",
        ),
        _sentence([_event("Justice||Arrest|Jail", (1, 2), [("person", 2, 4)])]),
        _sentence([]),
    ]
    sentences, report = read_jmee(_write(tmp_path, data))
    assert [s.sentence_id for s in sentences] == ["DOC_A_3", "ace_train_1", "ace_train_2"]
    assert [s.doc_id for s in sentences] == ["DOC_A", "ace_train", "ace_train"]
    (attack,) = sentences[0].events
    assert attack.event_type == "Conflict:Attack"
    assert attack.trigger == Span(1, 2, "attacked")
    assert attack.arguments == (
        TextArgument("Attacker", Span(0, 1, "Rebels")),
        TextArgument("Target", Span(2, 4, "the town")),
    )
    # canonical type spelling and case-forgiving role lookup
    assert sentences[1].events[0].event_type == "Justice:Arrest-Jail"
    assert sentences[1].events[0].arguments[0].role == "Person"
    assert sentences[2].events == ()
    assert sentences[0].entities[0].entity_type == "ORG"
    assert report.records == 3 and report.skipped == 0
    assert report.counts["events_other_type"] == 1
    assert report.counts["arguments_outside_schema"] == 1
    assert report.counts["events"] == 2 and report.counts["arguments"] == 3


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda s: s["golden-event-mentions"][0].update(event_type="Conflict:Riot"), "event_type"),
        (lambda s: s["golden-event-mentions"][0]["arguments"][0].update(end=99), "outside the sentence"),
        (lambda s: s["golden-event-mentions"][0]["trigger"].update(start=2, end=2), "empty"),
        (lambda s: s.pop("words"), "missing key 'words'"),
        (lambda s: s["golden-event-mentions"][0]["trigger"].update(start="1"), "must be int"),
        (lambda s: s["golden-event-mentions"][0].pop("arguments"), "missing key 'arguments'"),
        (lambda s: s["golden-entity-mentions"][0].pop("entity-type"), "entity-type"),
        (lambda s: s.update(words=["a", "", "c"] + WORDS[3:]), "token 1"),
    ],
)
def test_bad_record_strict_and_lenient(tmp_path, mutate, message):
    good = _sentence([_event("Conflict:Attack", (1, 2), [("Attacker", 0, 1)])], sentence_id="S_0")
    bad = _sentence([_event("Conflict:Attack", (1, 2), [("Attacker", 0, 1)])], sentence_id="S_1")
    mutate(bad)
    path = _write(tmp_path, [good, bad, good])
    with pytest.raises(DataError) as err:
        read_jmee(path)
    assert str(path) in str(err.value) and "record 1" in str(err.value)
    assert message in str(err.value)
    sentences, report = read_jmee(path, lenient=True)
    assert len(sentences) == 2 and report.skipped == 1 and report.records == 2
    assert message in report.problems[0]


def test_bad_files(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("{not json")
    with pytest.raises(DataError, match="invalid JSON at line"):
        read_jmee(path, lenient=True)
    path.write_text('{"a": 1}')
    with pytest.raises(DataError, match="JSON list"):
        read_jmee(path)


def test_text_mismatch_counted_tokens_win(tmp_path):
    s = _sentence([_event("Conflict:Attack", (1, 2))])
    s["golden-event-mentions"][0]["trigger"]["text"] = "attack"
    sentences, report = read_jmee(_write(tmp_path, [s]))
    assert report.counts["text_mismatch"] == 1
    assert sentences[0].events[0].trigger.text == "attacked"


def test_reads_m2e2_text_files(shared_data_dir):
    root = str(shared_data_dir)
    events = arguments = 0
    for name in ("text_only_event.json", "text_multimedia_event.json"):
        sentences, report = read_jmee(os.path.join(root, "m2e2", name))
        assert report.skipped == 0 and report.counts["events_other_type"] == 0
        assert report.counts["arguments_outside_schema"] == 0
        assert all(s.sentence_id and s.doc_id for s in sentences)
        events += report.counts["events"]
        arguments += report.counts["arguments"]
    # the strict-protocol gold totals (the 38 shared sentences carry different events)
    assert (events, arguments) == (1297, 1966)
