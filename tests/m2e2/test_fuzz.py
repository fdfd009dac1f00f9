"""Fuzzing the task-level readers with 1,000 generated inputs each: the imSitu mapping file
and a predictions file either read or raise DataError / PredictionError naming the file and
line; the target parser never raises on the text at all."""

import json

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from rmpl_jax.io.read_report import DataError
from rmpl_jax.m2e2 import grammar, ontology, parse
from rmpl_jax.m2e2.predictions import PredictionError, read_predictions
from rmpl_jax.m2e2.records import Span
from rmpl_jax.models.qwen2_vl.boxes import Qwen25VLBoxes
from tests.testing.fuzz import FUZZ, JUNK, OFFSET, WORD, damaged, json_text, lines_text, often, record

GOOD_MAPPING = st.tuples(
    st.sampled_from(["arresting", "shooting"]),
    st.sampled_from(["agent", "tool"]),
    st.sampled_from(["Justice||Arrest|Jail", "Conflict||Attack", "justice:arrest_jail"]),
    st.sampled_from(["Agent", "Instrument"]),
)
FIELD = st.sampled_from(["arresting", "Life:Marry", "Nope", "", " "]) | WORD
MAPPING_LINE = often(GOOD_MAPPING, st.lists(FIELD, min_size=3, max_size=5)).map("\t".join)
TYPE = often(st.sampled_from(ontology.EVENT_TYPES), st.text(max_size=5))
PAIR = st.lists(OFFSET, min_size=2, max_size=2)
BOX = st.lists(st.integers(-5, 500) | st.floats(), min_size=4, max_size=4)
PREDICTION = st.one_of(
    record(
        {
            "kind": st.just("text"),
            "sentence_id": WORD,
            "events": st.lists(
                record(
                    {"event_type": TYPE, "trigger": PAIR}, {"arguments": st.lists(record({"role": WORD, "span": PAIR}))}
                ),
                max_size=2,
            ),
        }
    ),
    record(
        {
            "kind": st.just("image"),
            "image_id": WORD,
            "events": st.lists(
                record({"event_type": TYPE}, {"arguments": st.lists(record({"role": WORD, "box": BOX}))}), max_size=2
            ),
        }
    ),
    record({"kind": st.sampled_from(["coref", "other"]), "sentence_id": WORD, "image_id": WORD, "event_type": TYPE}),
)

WORDS = ("the", "soldiers", "fired", "at", "the", "crowd")
CONTEXTS = [
    grammar.Context("text_ee", words=WORDS),
    grammar.Context("text_mention", words=WORDS),
    grammar.Context("text_argument", words=WORDS, event_type="Conflict:Attack", trigger=Span(2, 3, "fired")),
    grammar.Context("visual_ee", image_size=(448, 448), codec=Qwen25VLBoxes()),
    grammar.Context("image_mention"),
    grammar.Context("image_argument", image_size=(448, 448), codec=Qwen25VLBoxes(), event_type="Life:Die"),
    grammar.Context("mnre", words=WORDS),
]
PIECE = st.sampled_from(
    [
        "event: ",
        "trigger: ",
        "trigger@2: ",
        "relation: ",
        "none",
        ": ",
        "\n",
        "Attacker: ",
        "Victim@3: ",
        "[1, 2, 30, 40]",
        "[1,2,3]",
        "[-1e400, 0, 5, 5]",
        "the",
        "the crowd",
        "fired",
        "Conflict:Attack",
        "Life:Die",
        "/per/per/parent",
        "@",
        "\r",
        "é",
    ]
)
LINE = st.sampled_from(
    [
        "event: Conflict:Attack",
        "event: Life:Die",
        "trigger: fired",
        "trigger@2: the",
        "Attacker: the soldiers",
        "Target: the crowd",
        "Target@2: the",
        "Instrument: [10, 20, 300, 400]",
        "Victim: [0, 0, 5, 5]",
        "relation: /per/per/parent",
        "none",
    ]
)
TARGET = st.lists(often(LINE, st.lists(PIECE | st.text(max_size=4), max_size=5).map("".join)), max_size=6).map(
    "\n".join
)


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(data=damaged(lines_text(MAPPING_LINE)))
def test_imsitu_mapping(place, data):
    (place / "mapping.txt").write_bytes(data)
    try:
        mapping = ontology.load_imsitu_mapping(place / "mapping.txt")
        event(f"{len(mapping.roles)} roles")
    except DataError as e:
        assert str(e).startswith(f"{place / 'mapping.txt'}:"), str(e)
        event("DataError")


@FUZZ
@given(data=damaged(lines_text(often(json_text(PREDICTION), JUNK.map(json.dumps)))))
def test_predictions_file(place, data):
    (place / "predictions.jsonl").write_bytes(data)
    try:
        predictions = read_predictions(str(place / "predictions.jsonl"))
        event(f"{bool(predictions.text or predictions.images or predictions.coref)} records")
    except PredictionError as e:
        assert str(e).startswith(f"{place / 'predictions.jsonl'}:"), str(e)
        event("PredictionError")


@FUZZ
@given(context=st.sampled_from(CONTEXTS), target=TARGET)
def test_target_parser_never_raises(context, target):
    parsed = parse.parse(target, context)
    assert parsed.failures == len(parsed.errors)
    event(f"{context.task}: {'events' if parsed.events or parsed.relation else 'nothing'}")
