"""Sentence highlighting: spans marked with their labels, odd offsets shown, text escaped."""

from rmpl_jax.eval.highlight import describe, highlight
from rmpl_jax.m2e2.records import Span, TextArgument, TextEvent

WORDS = ("Police", "arrested", "the", "man", "in", "<Paris>", ".")


def test_spans_are_marked_and_labelled():
    event = TextEvent(
        "Justice:Arrest-Jail",
        Span(1, 2),
        (TextArgument("Agent", Span(0, 1)), TextArgument("Person", Span(2, 4)), TextArgument("Place", Span(5, 6))),
    )
    html = highlight(WORDS, (event,))
    assert '<span class="trg">arrested</span><sub class="lbl">Justice:Arrest-Jail</sub>' in html
    assert '<span class="arg">the man</span><sub class="lbl">Person</sub>' in html  # one mark per span
    assert '<span class="arg">&lt;Paris&gt;</span><sub class="lbl">Place</sub>' in html
    assert html.endswith(" .")
    assert describe(WORDS, (event,)) == [
        "Justice:Arrest-Jail: <b>arrested</b>; Agent=Police; Person=the man; Place=&lt;Paris&gt;"
    ]


def test_offsets_outside_the_sentence_are_shown_not_fatal():
    event = TextEvent("Life:Die", Span(6, 9), (TextArgument("Victim", Span(20, 22)),))
    html = highlight(WORDS, (event,))
    assert "Life:Die [6, 9) clipped" in html and "Victim [20, 22) outside the sentence" in html
    assert describe(WORDS, (event,)) == ["Life:Die: <b>.</b>; Victim=[20, 22)"]
    assert highlight((), (event,)) == ""


def test_a_repeated_argument_is_marked_once():
    event = TextEvent(
        "Life:Die", Span(1, 2), (TextArgument("Place", Span(5, 6)),) * 3 + (TextArgument("Victim", Span(5, 6)),)
    )
    html = highlight(WORDS, (event,))
    assert html.count('<sub class="lbl">Place</sub>') == 1 and '<sub class="lbl">Victim</sub>' in html
