"""A sentence as HTML with one side's triggers and arguments highlighted.

Each token carries the classes of the spans covering it (`trg` for a trigger, `arg` for an
argument), and each span's label (the event type of a trigger, the role of an argument)
follows its last token. Spans outside the sentence (a prediction file may hold any offsets)
are clipped to it and their label says so, instead of failing.
"""

from __future__ import annotations

import collections
import html

from rmpl_jax.m2e2.records import TextEvent


def _spans(events: tuple[TextEvent, ...]) -> list[tuple[int, int, str, str]]:
    """(start, end, css class, label) of every trigger and argument, each once (a model may
    repeat an argument; set semantics score it once, and the page marks it once)."""
    out = []
    for e in events:
        out.append((e.trigger.start, e.trigger.end, "trg", e.event_type))
        out += [(a.span.start, a.span.end, "arg", a.role) for a in e.arguments]
    return list(dict.fromkeys(out))


def highlight(words: tuple[str, ...], events: tuple[TextEvent, ...]) -> str:
    """The sentence's tokens as HTML, with the events' triggers and arguments marked."""
    n = len(words)
    classes: list[set[str]] = [set() for _ in range(n)]
    labels: dict[int, list[str]] = collections.defaultdict(list)  # after token i
    for start, end, css, label in _spans(events):
        lo, hi = max(0, start), min(n, end)
        if lo >= hi:
            labels[n - 1].append(f"{label} [{start}, {end}) outside the sentence")
            continue
        for i in range(lo, hi):
            classes[i].add(css)
        labels[hi - 1].append(label if (lo, hi) == (start, end) else f"{label} [{start}, {end}) clipped")
    # Runs of tokens under the same spans share one element, so a span reads as one mark.
    out, run, run_classes = [], [], None
    for i, word in enumerate(words):
        if classes[i] != run_classes and run:
            out.append(_run(run, run_classes))
            run = []
        run_classes = classes[i]
        run.append(html.escape(word))
        if i in labels:
            out.append(_run(run, run_classes) + "".join(f'<sub class="lbl">{html.escape(x)}</sub>' for x in labels[i]))
            run = []
    if run:
        out.append(_run(run, run_classes))
    return " ".join(out)


def _run(tokens: list[str], classes: set[str]) -> str:
    text = " ".join(tokens)
    return f'<span class="{" ".join(sorted(classes))}">{text}</span>' if classes else text


def describe(words: tuple[str, ...], events: tuple[TextEvent, ...]) -> list[str]:
    """One plain line per event: type, trigger text and `role=text` arguments (HTML-escaped)."""

    def text(start: int, end: int) -> str:
        inside = words[max(0, start) : max(0, end)]
        return html.escape(" ".join(inside) if inside else f"[{start}, {end})")

    return [
        f"{html.escape(e.event_type)}: <b>{text(e.trigger.start, e.trigger.end)}</b>"
        + "".join(f"; {html.escape(a.role)}={text(a.span.start, a.span.end)}" for a in e.arguments)
        for e in events
    ]
