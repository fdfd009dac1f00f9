"""The unified event-centric schema: its tasks, line grammar, spans and canonical order.

`render.py` writes records in it, `parse.py` reads answers back.

Every task writes its answer in one line-based grammar (docs/target_grammar.md):

    event: Conflict:Attack
    trigger: fired
    Attacker: the soldiers
    Target@2: the crowd
    Instrument: [120, 40, 610, 388]

A line is `HEAD: VALUE`; HEAD is a keyword (`event`, `trigger`, `relation`) or a role
of the current event's type, optionally followed by `@k` (k >= 2) when VALUE is the
k-th occurrence of a word sequence that occurs more than once in the sentence. VALUE is
an event type, words copied from the sentence joined by single spaces, a box in the
model family's codec, or a relation label. `none` alone is the empty answer. Order is
deterministic: events by trigger offset (then type order), arguments by schema role
order then offset (boxes: then codes), so parse(render(x)) gives x back exactly (boxes:
quantised by the codec, see `canonical_image_events`).

Task kinds: text_ee, visual_ee, mnre (stage 1); text_mention, image_mention,
text_argument, image_argument (stage 2); multimedia (a sentence and a photo of one document:
the event both report, with its trigger, text arguments and `image ROLE: BOX` lines, or `none`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from rmpl_jax.m2e2 import ontology
from rmpl_jax.m2e2.boxes import BoxCodec, ImageSize
from rmpl_jax.m2e2.records import BoxArgument, ImageEvent, Span, TextArgument, TextEvent

TEXT_TASKS = ("text_ee", "text_mention", "text_argument")
IMAGE_TASKS = ("visual_ee", "image_mention", "image_argument")
MULTIMEDIA = "multimedia"
TASKS = TEXT_TASKS + IMAGE_TASKS + ("mnre", MULTIMEDIA)
VISION_TASKS = IMAGE_TASKS + (MULTIMEDIA,)  # tasks that always show a photo

EVENT = "event"
TRIGGER = "trigger"
RELATION = "relation"
NONE = "none"
SEP = ": "
OCCURRENCE = "@"
IMAGE_ROLE = "image "  # multimedia answers: `image ROLE: BOX` sets image arguments apart from text ones

assert not {EVENT, TRIGGER, RELATION, NONE, IMAGE_ROLE.strip()} & {
    r for roles in (*ontology.TEXT_ROLES.values(), *ontology.IMAGE_ROLES.values()) for r in roles
}

TYPE_ORDER = {t: i for i, t in enumerate(ontology.EVENT_TYPES)}


# ---------------------------------------------------------------- data types


@dataclasses.dataclass(frozen=True)
class Context:
    """What `parse` needs besides the target: the task and the item it was asked about.

    words: the sentence (text tasks, mnre, multimedia). image_size: (width, height) and codec:
    the box codec (visual_ee, image_argument, multimedia). event_type/trigger: the given event
    (argument tasks; trigger for text_argument only). candidates: the values
    (`LABEL [x1, y1, x2, y2]`) a box argument must be one of, or None for free boxes.
    """

    task: str
    words: tuple[str, ...] = ()
    image_size: ImageSize | None = None
    codec: BoxCodec | None = None
    event_type: str | None = None
    trigger: Span | None = None
    candidates: tuple[str, ...] | None = None


@dataclasses.dataclass(frozen=True)
class Example:
    """One rendered training/inference example. `image` is the image file, if any."""

    task: str
    item_id: str
    prompt: str
    target: str
    context: Context
    image: str | None = None


@dataclasses.dataclass(frozen=True)
class Parsed:
    """A parsed target: TextEvents (text tasks) or ImageEvents (image tasks), or a relation;
    multimedia: `(TextEvent, ImageEvent)` of the shared event, or `()`.

    `failures` counts lines (or events) that did not fit the grammar or the context and
    were left out; `errors` says why, one message each.
    """

    events: tuple = ()
    relation: str | None = None
    failures: int = 0
    errors: tuple[str, ...] = ()


# ---------------------------------------------------------------- spans


def span_occurrences(words: Sequence[str], text: str) -> list[tuple[int, int]]:
    """All token spans [start, end) whose words joined by single spaces equal `text`,
    in order of start. The k-th of them is what `text` with `@k` means."""
    if not text:
        return []
    starts, ends, pos = {}, {}, 0
    for i, w in enumerate(words):
        starts[pos] = i
        pos += len(w)
        ends[pos] = i + 1
        pos += 1
    joined = " ".join(words)
    found, at = [], joined.find(text)
    while at >= 0:
        s, e = starts.get(at), ends.get(at + len(text))
        if s is not None and e is not None and s < e:
            found.append((s, e))
        at = joined.find(text, at + 1)
    return found


def span_text(words: Sequence[str], span: Span) -> tuple[str, int]:
    """(text, k): the span's words joined by single spaces and which occurrence it is."""
    if not 0 <= span.start < span.end <= len(words):
        raise ValueError(f"span [{span.start}, {span.end}) outside a sentence of {len(words)} words")
    text = " ".join(words[span.start : span.end])
    if "\n" in text or "\r" in text:
        raise ValueError(f"span {text!r} contains a line break; the grammar is line based")
    return text, span_occurrences(words, text).index((span.start, span.end)) + 1


def resolve_span(words: Sequence[str], text: str, k: int = 1) -> Span | None:
    """The k-th occurrence of `text` in the sentence, or None."""
    found = span_occurrences(words, text)
    if not 1 <= k <= len(found):
        return None
    s, e = found[k - 1]
    return Span(s, e, text)


def head_text(name: str, k: int = 1) -> str:
    return name if k == 1 else f"{name}{OCCURRENCE}{k}"


def span_line(name: str, words, span: Span) -> str:
    text, k = span_text(words, span)
    return f"{head_text(name, k)}{SEP}{text}"


# ---------------------------------------------------------------- canonical forms


def check_type(event_type: str) -> None:
    if event_type not in TYPE_ORDER:
        raise ValueError(f"{event_type!r} is not an M2E2 event type")


def _role_index(roles: dict, event_type: str, role: str) -> int:
    try:
        return roles[event_type].index(role)
    except ValueError:
        raise ValueError(f"role {role!r} is not in the schema of {event_type}") from None


def canonical_text_events(events: Sequence[TextEvent], words: Sequence[str]) -> tuple[TextEvent, ...]:
    """Events as the grammar orders them, span texts set to the joined words.

    Raises ValueError on types or roles outside the schema or spans outside the sentence.
    """
    out = []
    for e in events:
        check_type(e.event_type)
        args = sorted(
            (TextArgument(a.role, Span(a.span.start, a.span.end, span_text(words, a.span)[0])) for a in e.arguments),
            key=lambda a: (_role_index(ontology.TEXT_ROLES, e.event_type, a.role), a.span.start, a.span.end),
        )
        trigger = Span(e.trigger.start, e.trigger.end, span_text(words, e.trigger)[0])
        out.append(TextEvent(e.event_type, trigger, tuple(args)))
    out.sort(key=lambda e: (e.trigger.start, e.trigger.end, TYPE_ORDER[e.event_type]))
    return tuple(out)


def canonical_image_events(
    events: Sequence[ImageEvent], image_size: ImageSize, codec: BoxCodec
) -> tuple[ImageEvent, ...]:
    """Events as the grammar orders them, each box replaced by codec.quantize(box).

    This is exactly what parse(render(...)) returns: the target carries the codes
    `codec.encode(box)` and parse decodes them with `codec.decode`.
    """
    out = []
    for e in events:
        check_type(e.event_type)
        coded = sorted(
            (
                (_role_index(ontology.IMAGE_ROLES, e.event_type, a.role), codec.encode(a.box, image_size), a.role)
                for a in e.arguments
            ),
            key=lambda x: (x[0], x[1]),
        )
        out.append(
            ImageEvent(
                e.event_type, tuple(BoxArgument(role, codec.decode(codes, image_size)) for _, codes, role in coded)
            )
        )
    out.sort(key=lambda e: TYPE_ORDER[e.event_type])
    return tuple(out)


def type_key(event_type: str) -> int:
    check_type(event_type)
    return TYPE_ORDER[event_type]
