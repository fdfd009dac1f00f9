"""Task renderer and parser: exact round trips (hypothesis), failure counting, real data."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmpl_jax.m2e2 import grammar, ontology, parse, render
from rmpl_jax.m2e2.ontology import MNRE_RELATIONS
from rmpl_jax.m2e2.records import (
    Box,
    BoxArgument,
    ImageEvent,
    ImageItem,
    MNRERecord,
    Sentence,
    Span,
    TextArgument,
    TextEvent,
)
from rmpl_jax.models.llava.boxes import LlavaBoxes
from rmpl_jax.models.qwen2_vl.boxes import Qwen2VLBoxes, Qwen25VLBoxes
from tests.conftest import REPO_ROOT

# Tokens chosen to collide with the grammar and with each other: repeated words,
# keywords, separators, markers, a token with an inner space, non-ASCII.
TOKENS = [
    "a",
    "b",
    "the",
    "a b",
    "@x",
    "#2",
    ":",
    ": ",
    "none",
    "event:",
    "trigger@2:",
    "Attacker:",
    "[1,",
    "]",
    "Über",
    "x",
    "x:",
    "@2",
]
CODECS = [Qwen2VLBoxes(), Qwen25VLBoxes(), LlavaBoxes()]


@st.composite
def sentences(draw):
    words = draw(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=14))
    n = len(words)

    def span():
        s = draw(st.integers(0, n - 1))
        return Span(s, draw(st.integers(s + 1, min(n, s + 4))))

    events = []
    for _ in range(draw(st.integers(0, 3))):
        t = draw(st.sampled_from(ontology.EVENT_TYPES))
        args = [
            TextArgument(draw(st.sampled_from(ontology.TEXT_ROLES[t])), span()) for _ in range(draw(st.integers(0, 4)))
        ]
        events.append(TextEvent(t, span(), tuple(args)))
    return Sentence("DOC_1", tuple(words), tuple(events))


@st.composite
def images(draw):
    w, h = draw(st.integers(28, 3000)), draw(st.integers(28, 3000))

    def box():
        xs = sorted(draw(st.floats(-10, w + 10)) for _ in range(2))
        ys = sorted(draw(st.floats(-10, h + 10)) for _ in range(2))
        return Box(xs[0], ys[0], xs[1], ys[1])

    events = []
    for _ in range(draw(st.integers(0, 2))):
        t = draw(st.sampled_from(ontology.EVENT_TYPES))
        events.append(
            ImageEvent(
                t,
                tuple(
                    BoxArgument(draw(st.sampled_from(ontology.IMAGE_ROLES[t])), box())
                    for _ in range(draw(st.integers(0, 4)))
                ),
            )
        )
    return ImageItem("IMG_1", tuple(events), "img.png"), (w, h), draw(st.sampled_from(CODECS))


@settings(max_examples=300, deadline=None)
@given(s=sentences())
def test_text_round_trip(s):
    canonical = grammar.canonical_text_events(s.events, s.words)
    ex = render.render_text_ee(s)
    got = parse.parse(ex.target, ex.context)
    assert got.failures == 0, got.errors
    assert got.events == canonical
    # mentions: the same events without arguments
    ex = render.render_text_mention(s)
    got = parse.parse(ex.target, ex.context)
    assert got.failures == 0
    assert got.events == tuple(TextEvent(e.event_type, e.trigger) for e in canonical)
    # arguments given the event
    examples = render.render("text_argument", s)
    assert len(examples) == len(s.events)
    for ex, e in zip(examples, canonical):
        got = parse.parse(ex.target, ex.context)
        assert got.failures == 0 and got.events == (e,)
    # canonical form is a fixed point of rendering
    again = Sentence(s.sentence_id, s.words, canonical)
    assert render.render_text_ee(again).target == render.render_text_ee(s).target


@settings(max_examples=300, deadline=None)
@given(case=images())
def test_image_round_trip(case):
    item, size, codec = case
    canonical = grammar.canonical_image_events(item.events, size, codec)

    # canonical = same events sorted, each box replaced by codec.quantize(box)
    def key(a):
        return a.role, (a.box.x1, a.box.y1, a.box.x2, a.box.y2)

    ordered = sorted(item.events, key=lambda e: ontology.EVENT_TYPES.index(e.event_type))
    assert [e.event_type for e in ordered] == [e.event_type for e in canonical]
    for e_in, e_out in zip(ordered, canonical):
        quantised = [BoxArgument(a.role, codec.quantize(a.box, size)) for a in e_in.arguments]
        assert sorted(quantised, key=key) == sorted(e_out.arguments, key=key)
    ex = render.render_visual_ee(item, size, codec)
    assert ex.image == "img.png"
    got = parse.parse(ex.target, ex.context)
    assert got.failures == 0, got.errors
    assert got.events == canonical
    ex = render.render_image_mention(item)
    got = parse.parse(ex.target, ex.context)
    assert got.failures == 0
    assert got.events == tuple(ImageEvent(e.event_type) for e in canonical)
    for ex, e in zip(render.render("image_argument", item, image_size=size, codec=codec), canonical):
        got = parse.parse(ex.target, ex.context)
        assert got.failures == 0 and got.events == (e,)


def test_quantised_boxes_are_codec_round_trips():
    item = ImageItem(
        "I",
        (
            ImageEvent(
                "Conflict:Attack",
                (BoxArgument("Target", Box(10.3, 20.7, 300.2, 199.9)), BoxArgument("Attacker", Box(0, 0, 50, 60))),
            ),
        ),
    )
    size, codec = (640, 480), Qwen2VLBoxes()
    ex = render.render_visual_ee(item, size, codec)
    assert ex.target == ("event: Conflict:Attack\nAttacker: [0, 0, 78, 125]\nTarget: [16, 43, 469, 416]")
    (event,) = parse.parse(ex.target, ex.context).events
    assert event.arguments[1].box == codec.decode((16, 43, 469, 416), size)


def test_documented_example():
    words = ("Police", "arrested", "the", "suspect", "after", "the", "suspect", "fled", "Kabul", ".")
    s = Sentence(
        "S_0",
        words,
        (
            TextEvent(
                "Movement:Transport",
                Span(7, 8),
                (TextArgument("Origin", Span(8, 9)), TextArgument("Artifact", Span(5, 7))),
            ),
            TextEvent(
                "Justice:Arrest-Jail",
                Span(1, 2),
                (TextArgument("Person", Span(2, 4)), TextArgument("Agent", Span(0, 1))),
            ),
        ),
    )
    ex = render.render_text_ee(s)
    assert ex.target == (
        "event: Justice:Arrest-Jail\ntrigger: arrested\nAgent: Police\n"
        "Person: the suspect\nevent: Movement:Transport\ntrigger: fled\n"
        "Artifact@2: the suspect\nOrigin: Kabul"
    )
    with open(REPO_ROOT / "docs" / "target_grammar.md") as f:
        assert ex.target in f.read()
    parsed = parse.parse(ex.target, ex.context)
    assert parsed.events[1].arguments[0].span == Span(5, 7, "the suspect")
    assert render.render_text_ee(Sentence("S_1", words)).target == "none"


def test_span_occurrences():
    words = ["a", "b", "a", "b", "a b"]
    assert grammar.span_occurrences(words, "a b") == [(0, 2), (2, 4), (4, 5)]
    assert grammar.span_occurrences(words, "b a") == [(1, 3)]
    assert grammar.span_occurrences(words, "a") == [(0, 1), (2, 3)]
    assert grammar.span_occurrences(words, "b a b") == [(1, 4), (3, 5)]
    assert grammar.span_occurrences(words, "") == []
    assert grammar.span_text(words, Span(4, 5)) == ("a b", 3)


CTX = grammar.Context("text_ee", words=("Rebels", "attacked", "the", "town", "and", "the", "army", "fled", "."))


@pytest.mark.parametrize(
    "target, n_events, failures",
    [
        ("none", 0, 0),
        ("", 0, 1),
        ("\n\n", 0, 1),
        ("event: Conflict:Attack\ntrigger: attacked\nAttacker: Rebels", 1, 0),
        ("event: Conflict:Attack\r\ntrigger: attacked\r\n", 1, 0),
        ("event: Conflict:Attack\ntrigger@1: attacked", 1, 0),
        ("event: Conflict:Riot\ntrigger: attacked\nAttacker: Rebels", 0, 3),
        ("event: Conflict:Attack\ntrigger: bombed", 0, 1),
        ("event: Conflict:Attack\ntrigger@2: attacked", 0, 1),
        ("event: Conflict:Attack\ntrigger: attacked\nVictim: the town", 1, 1),
        ("event: Conflict:Attack\ntrigger: attacked\nTarget@3: the", 1, 1),
        ("event: Conflict:Attack\nAttacker: Rebels", 0, 1),
        ("event: Conflict:Attack\ntrigger: attacked\ntrigger: fled", 1, 1),
        ("Attacker: Rebels\nevent: Life:Die\ntrigger: fled", 1, 1),
        ("none\nevent: Movement:Transport\ntrigger: fled\nArtifact@2: the", 1, 1),
        ("event: Movement:Transport\ntrigger: fled\nArtifact:  the army ", 1, 0),
        ("garbage without separator", 0, 1),
        ("event@2: Conflict:Attack\ntrigger: attacked", 0, 2),
    ],
)
def test_text_failures(target, n_events, failures):
    got = parse.parse(target, CTX)
    assert (len(got.events), got.failures) == (n_events, failures), got.errors
    assert len(got.errors) == got.failures


IMG_CTX = grammar.Context("visual_ee", image_size=(100, 50), codec=Qwen2VLBoxes())


@pytest.mark.parametrize(
    "target, n_args, failures",
    [
        ("event: Life:Die\nVictim: [0, 0, 500, 1000]", 1, 0),
        ("event: Life:Die\nVictim: [0,0,500,1000]", 1, 0),
        ("event: Life:Die\nVictim: [0, 0, 500]", 0, 1),
        ("event: Life:Die\nVictim: [a, 0, 500, 7]", 0, 1),
        ("event: Life:Die\nVictim@2: [0, 0, 500, 1000]", 0, 1),
        ("event: Life:Die\nPlace: [0, 0, 500, 1000]", 0, 1),
        ("event: Life:Die\nVictim: [0, 0, 99999999999999999999, 1]", 0, 1),
        ("event: Life:Die\ntrigger: x", 0, 1),
    ],
)
def test_image_failures(target, n_args, failures):
    got = parse.parse(target, IMG_CTX)
    assert got.failures == failures, got.errors
    assert sum(len(e.arguments) for e in got.events) == n_args


def test_image_decode_clamps():
    got = parse.parse("event: Life:Die\nVictim: [0, 0, 1500, 1000]", IMG_CTX)
    assert got.events[0].arguments[0].box == Box(0, 0, 100, 50)


CONTEXTS = [
    CTX,
    grammar.Context("text_mention", words=CTX.words),
    grammar.Context("text_argument", words=CTX.words, event_type="Conflict:Attack", trigger=Span(1, 2)),
    IMG_CTX,
    grammar.Context("image_mention"),
    grammar.Context("image_argument", image_size=(30, 40), codec=LlavaBoxes(), event_type="Contact:Meet"),
    grammar.Context("mnre", words=("a",)),
]
FRAGMENTS = [
    "event",
    "trigger",
    "relation",
    ": ",
    ":",
    "@",
    "@2",
    "@99999999",
    "\n",
    "none",
    "Conflict:Attack",
    "Attacker",
    "Entity",
    "Rebels",
    "the",
    " ",
    "[",
    "]",
    ", ",
    "1",
    "0.5",
    "-3",
    "/per/per/peer",
    "None",
    "\r",
    "é",
    "\x00",
]


@settings(max_examples=400, deadline=None)
@given(
    text=st.one_of(st.text(max_size=200), st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join)),
    ctx=st.sampled_from(CONTEXTS),
)
def test_parse_never_raises(text, ctx):
    got = parse.parse(text, ctx)
    assert got.failures == len(got.errors) >= 0
    assert isinstance(got.events, tuple)


def test_parse_rejects_unusable_context_but_not_strings():
    with pytest.raises(ValueError):
        parse.parse("none", grammar.Context("visual_ee"))
    with pytest.raises(ValueError):
        parse.parse("none", grammar.Context("poetry"))
    assert parse.parse(None, CTX).failures == 1


def test_render_rejects_off_schema_records():
    words = ("a", "b")
    with pytest.raises(ValueError, match="not in the schema"):
        render.render_text_ee(
            Sentence("S", words, (TextEvent("Life:Die", Span(0, 1), (TextArgument("Attacker", Span(1, 2)),)),))
        )
    with pytest.raises(ValueError, match="M2E2 event type"):
        render.render_text_ee(Sentence("S", words, (TextEvent("Life:Marry", Span(0, 1)),)))
    with pytest.raises(ValueError, match="outside"):
        render.render_text_ee(Sentence("S", words, (TextEvent("Life:Die", Span(1, 3)),)))
    with pytest.raises(ValueError, match="line break"):
        render.render_text_ee(Sentence("S", ("a\nb",), (TextEvent("Life:Die", Span(0, 1)),)))
    with pytest.raises(ValueError, match="not in the schema"):  # Place is no image role of Die
        render.render_visual_ee(
            ImageItem("I", (ImageEvent("Life:Die", (BoxArgument("Place", Box(0, 0, 1, 1)),)),)),
            (10, 10),
            Qwen2VLBoxes(),
        )
    with pytest.raises(TypeError):
        render.render("text_ee", ImageItem("I"))
    with pytest.raises(ValueError, match="image_size"):
        render.render("visual_ee", ImageItem("I"))


def test_mnre_round_trip_and_failures():
    rec = MNRERecord(
        "m:1",
        ("Bill", "met", "Bill", "Gates"),
        Span(2, 4, "Bill Gates"),
        Span(0, 1, "Bill"),
        "/per/per/peer",
        "x.jpg",
        None,
    )
    (ex,) = render.render("mnre", rec)
    assert ex.target == "relation: /per/per/peer"
    assert "head: Bill Gates" in ex.prompt and "tail: Bill" in ex.prompt
    rec2 = MNRERecord("m:2", rec.tokens, rec.tail, Span(2, 3, "Bill"), "None", "x.jpg")
    assert "tail@2: Bill" in render.render_mnre(rec2).prompt
    assert parse.parse(ex.target, ex.context).relation == "/per/per/peer"
    got = parse.parse("relation: /per/per/friend\nrelation: None\nrelation: /per/per/peer", ex.context)
    assert got.relation == "None" and got.failures == 2
    assert parse.parse("none", ex.context).failures == 1


def test_argument_prompts_name_the_event():
    words = ("He", "was", "shot", "and", "then", "shot", "again", ".")
    event = TextEvent("Conflict:Attack", Span(5, 6), (TextArgument("Target", Span(0, 1)),))
    ex = render.render_text_argument(Sentence("S", words, (event,)), event)
    assert ex.prompt.endswith("event: Conflict:Attack\ntrigger@2: shot")
    assert ex.target == "Target: He"
    assert parse.parse("none", ex.context).events == (TextEvent("Conflict:Attack", Span(5, 6, "shot")),)


@pytest.mark.parametrize("task", grammar.TEXT_TASKS)
def test_brief_prompts_keep_the_inputs_and_the_target(task):
    words = ("He", "was", "shot", "and", "then", "shot", "again", ".")
    event = TextEvent("Conflict:Attack", Span(5, 6), (TextArgument("Target", Span(0, 1)),))
    sentence = Sentence("S", words, (event,))
    (full,) = render.render(task, sentence)
    (brief,) = render.render(task, sentence, brief=True)
    assert brief.target == full.target and brief.context == full.context
    full_lines, brief_lines = full.prompt.split("\n"), brief.prompt.split("\n")
    assert brief_lines[0] == full_lines[0] and brief_lines[1:] == full_lines[3:]  # the task line, then the inputs
    assert "Sentence: He was shot" in brief.prompt and "Conflict:Demonstrate" not in brief.prompt


def test_real_m2e2_text_round_trip(shared_data_dir):
    from rmpl_jax.data.jmee import read_jmee

    n = 0
    for name in ("text_only_event.json", "text_multimedia_event.json"):
        sentences, _ = read_jmee(shared_data_dir / "m2e2" / name)
        for s in sentences:
            ex = render.render_text_ee(s)
            got = parse.parse(ex.target, ex.context)
            assert got.failures == 0 and got.events == grammar.canonical_text_events(s.events, s.words)
            n += len(got.events)
    assert n == 1297


def test_real_mnre_round_trip(shared_data_dir):
    from rmpl_jax.data.mnre import read_mnre

    records, _ = read_mnre(shared_data_dir / "mnre" / "mnre_val.txt")
    for r in records:
        ex = render.render_mnre(r)
        assert parse.parse(ex.target, ex.context).relation == r.relation
    assert set(MNRE_RELATIONS) >= {r.relation for r in records}
