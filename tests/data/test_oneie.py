"""OneIE JSONL reader on fixtures written here."""

import json

import pytest

from rmpl_jax.data.oneie import read_oneie
from rmpl_jax.io.read_report import DataError
from rmpl_jax.m2e2.records import Span, TextArgument

TOKENS = ["Police", "arrested", "two", "men", "in", "Paris", "on", "Friday", "."]


def _line(sent_id="D1-0", **over):
    obj = {
        "doc_id": "D1",
        "sent_id": sent_id,
        "tokens": TOKENS,
        "entity_mentions": [
            {"id": "D1-E1", "start": 0, "end": 1, "entity_type": "PER", "text": "Police"},
            {"id": "D1-E2", "start": 2, "end": 4, "entity_type": "PER", "text": "two men"},
            {"id": "D1-E3", "start": 5, "end": 6, "entity_type": "GPE", "text": "Paris"},
            {"id": "D1-E4", "start": 7, "end": 8, "entity_type": "TIME", "text": "Friday"},
        ],
        "event_mentions": [
            {
                "id": "D1-EV1",
                "event_type": "Justice:Arrest-Jail",
                "trigger": {"start": 1, "end": 2, "text": "arrested"},
                "arguments": [
                    {"entity_id": "D1-E1", "role": "Agent", "text": "Police"},
                    {"entity_id": "D1-E2", "role": "Person", "text": "two men"},
                    {"entity_id": "D1-E3", "role": "Place", "text": "Paris"},
                    {"entity_id": "D1-E4", "role": "Time-Within", "text": "Friday"},
                ],
            },
            {
                "id": "D1-EV2",
                "event_type": "Justice:Charge-Indict",
                "trigger": {"start": 1, "end": 2, "text": "arrested"},
                "arguments": [],
            },
        ],
    }
    obj.update(over)
    return json.dumps(obj)


def test_reads_and_resolves_entity_ids(tmp_path):
    path = tmp_path / "dev.oneie.json"
    path.write_text(_line() + "\n\n" + _line("D1-1", event_mentions=[]) + "\n")
    sentences, report = read_oneie(path)
    assert [s.sentence_id for s in sentences] == ["D1-0", "D1-1"]
    assert sentences[0].doc_id == "D1"
    (event,) = sentences[0].events
    assert event.event_type == "Justice:Arrest-Jail" and event.trigger == Span(1, 2, "arrested")
    assert event.arguments == (
        TextArgument("Agent", Span(0, 1, "Police")),
        TextArgument("Person", Span(2, 4, "two men")),
        TextArgument("Place", Span(5, 6, "Paris")),
    )
    assert len(sentences[0].entities) == 4
    assert report.counts["events_other_type"] == 1
    assert report.counts["arguments_outside_schema"] == 1
    assert report.records == 2


@pytest.mark.parametrize(
    "line, message",
    [
        ("{broken", "not valid JSON"),
        (
            _line(
                event_mentions=[
                    {
                        "event_type": "Justice:Arrest-Jail",
                        "trigger": {"start": 1, "end": 2},
                        "arguments": [{"entity_id": "NOPE", "role": "Agent"}],
                    }
                ]
            ),
            "NOPE",
        ),
        (
            _line(event_mentions=[{"event_type": "Made:Up", "trigger": {"start": 1, "end": 2}, "arguments": []}]),
            "event_type",
        ),
        (_line(entity_mentions=[{"id": "X", "start": 5, "end": 40, "entity_type": "PER"}]), "outside the sentence"),
        (json.dumps({"doc_id": "D", "tokens": TOKENS}), "missing key 'sent_id'"),
    ],
)
def test_bad_lines(tmp_path, line, message):
    path = tmp_path / "bad.json"
    path.write_text(_line() + "\n" + line + "\n" + _line("D1-2") + "\n")
    with pytest.raises(DataError) as err:
        read_oneie(path)
    assert f"{path}:2" in str(err.value) and message in str(err.value)
    sentences, report = read_oneie(path, lenient=True)
    assert len(sentences) == 2 and report.skipped == 1
