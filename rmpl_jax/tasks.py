"""The unified event-centric schema: records -> (prompt, target), and target -> structure.

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
text_argument, image_argument (stage 2). Prompts are text only; for image tasks the
Example names the image and the processor adds the image tokens.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from rmpl_jax import schema
from rmpl_jax.boxes import BoxCodec, ImageSize
from rmpl_jax.data.mnre import MNRE_RELATIONS, MNRERecord
from rmpl_jax.records import Box, BoxArgument, ImageEvent, ImageItem, Sentence, Span, TextArgument, TextEvent

TEXT_TASKS = ("text_ee", "text_mention", "text_argument")
IMAGE_TASKS = ("visual_ee", "image_mention", "image_argument")
TASKS = TEXT_TASKS + IMAGE_TASKS + ("mnre",)

EVENT = "event"
TRIGGER = "trigger"
RELATION = "relation"
NONE = "none"
SEP = ": "
OCCURRENCE = "@"

assert not {EVENT, TRIGGER, RELATION, NONE} & {
    r for roles in (*schema.TEXT_ROLES.values(), *schema.IMAGE_ROLES.values()) for r in roles}

_HEAD = re.compile(r"([A-Za-z][A-Za-z-]*)(?:@(\d{1,6}))?")
_NUM = r"\s*(-?\d{1,12}(?:\.\d{1,12})?)\s*"
_BOX = re.compile(r"\[" + ",".join([_NUM] * 4) + r"\]")
_TYPE_ORDER = {t: i for i, t in enumerate(schema.EVENT_TYPES)}


# ---------------------------------------------------------------- data types

@dataclasses.dataclass(frozen=True)
class Context:
    """What `parse` needs besides the target: the task and the item it was asked about.

    words: the sentence (text tasks, mnre). image_size: (width, height) and codec: the
    box codec (visual_ee, image_argument). event_type/trigger: the given event
    (argument tasks; trigger for text_argument only).
    """

    task: str
    words: tuple[str, ...] = ()
    image_size: ImageSize | None = None
    codec: BoxCodec | None = None
    event_type: str | None = None
    trigger: Span | None = None


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
    """A parsed target: TextEvents (text tasks) or ImageEvents (image tasks), or a relation.

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
    text = " ".join(words[span.start:span.end])
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


def _head(name: str, k: int = 1) -> str:
    return name if k == 1 else f"{name}{OCCURRENCE}{k}"


def _span_line(name: str, words, span: Span) -> str:
    text, k = span_text(words, span)
    return f"{_head(name, k)}{SEP}{text}"


# ---------------------------------------------------------------- canonical forms

def _check_type(event_type: str) -> None:
    if event_type not in _TYPE_ORDER:
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
        _check_type(e.event_type)
        args = sorted(
            (TextArgument(a.role, Span(a.span.start, a.span.end, span_text(words, a.span)[0]))
             for a in e.arguments),
            key=lambda a: (_role_index(schema.TEXT_ROLES, e.event_type, a.role),
                           a.span.start, a.span.end))
        trigger = Span(e.trigger.start, e.trigger.end, span_text(words, e.trigger)[0])
        out.append(TextEvent(e.event_type, trigger, tuple(args)))
    out.sort(key=lambda e: (e.trigger.start, e.trigger.end, _TYPE_ORDER[e.event_type]))
    return tuple(out)


def canonical_image_events(events: Sequence[ImageEvent], image_size: ImageSize,
                           codec: BoxCodec) -> tuple[ImageEvent, ...]:
    """Events as the grammar orders them, each box replaced by codec.quantize(box).

    This is exactly what parse(render(...)) returns: the target carries the codes
    `codec.encode(box)` and parse decodes them with `codec.decode`.
    """
    out = []
    for e in events:
        _check_type(e.event_type)
        coded = sorted(((_role_index(schema.IMAGE_ROLES, e.event_type, a.role),
                         codec.encode(a.box, image_size), a.role) for a in e.arguments),
                       key=lambda x: (x[0], x[1]))
        out.append(ImageEvent(e.event_type, tuple(
            BoxArgument(role, codec.decode(codes, image_size)) for _, codes, role in coded)))
    out.sort(key=lambda e: _TYPE_ORDER[e.event_type])
    return tuple(out)


# ---------------------------------------------------------------- prompts

def _schema_line(roles: dict[str, tuple[str, ...]]) -> str:
    return "; ".join(f"{t} ({', '.join(roles[t])})" for t in schema.EVENT_TYPES)


_SPAN_RULE = ("Copy words exactly from the sentence; if those words occur more than once, "
              "write @k after the line's name for the k-th occurrence.")


def _prompt(*lines: str) -> str:
    return "\n".join(lines)


# ---------------------------------------------------------------- renderers

def _target(lines: list[str]) -> str:
    return "\n".join(lines) if lines else NONE


def render_text_ee(sentence: Sentence) -> Example:
    """Sentence -> all events with triggers and argument spans."""
    words = sentence.words
    lines = []
    for e in canonical_text_events(sentence.events, words):
        lines.append(f"{EVENT}{SEP}{e.event_type}")
        lines.append(_span_line(TRIGGER, words, e.trigger))
        lines.extend(_span_line(a.role, words, a.span) for a in e.arguments)
    prompt = _prompt(
        "Task: extract events from the sentence.",
        f"Event types (argument roles): {_schema_line(schema.TEXT_ROLES)}.",
        "For each event write 'event: TYPE', then 'trigger: WORDS', then 'ROLE: WORDS' per "
        f"argument. {_SPAN_RULE} Write 'none' if there is no event.",
        f"Sentence: {' '.join(words)}")
    return Example("text_ee", sentence.sentence_id, prompt, _target(lines),
                   Context("text_ee", words=words))


def render_text_mention(sentence: Sentence) -> Example:
    """Sentence -> event types and triggers only (stage 2, mention identification)."""
    words = sentence.words
    lines = []
    for e in canonical_text_events(sentence.events, words):
        lines.append(f"{EVENT}{SEP}{e.event_type}")
        lines.append(_span_line(TRIGGER, words, e.trigger))
    prompt = _prompt(
        "Task: find the event mentions in the sentence.",
        f"Event types: {', '.join(schema.EVENT_TYPES)}.",
        f"For each event write 'event: TYPE', then 'trigger: WORDS'. {_SPAN_RULE} "
        "Write 'none' if there is no event.",
        f"Sentence: {' '.join(words)}")
    return Example("text_mention", sentence.sentence_id, prompt, _target(lines),
                   Context("text_mention", words=words))


def render_text_argument(sentence: Sentence, event: TextEvent) -> Example:
    """Sentence + one event's type and trigger -> that event's arguments.

    At inference `event` is a predicted mention (its arguments are ignored by the prompt).
    """
    words = sentence.words
    (e,) = canonical_text_events([event], words)
    roles = schema.TEXT_ROLES[e.event_type]
    prompt = _prompt(
        "Task: extract the arguments of the given event from the sentence.",
        f"Roles of {e.event_type}: {', '.join(roles)}.",
        f"For each argument write 'ROLE: WORDS'. {_SPAN_RULE} Write 'none' if there is none.",
        f"Sentence: {' '.join(words)}",
        f"{EVENT}{SEP}{e.event_type}",
        _span_line(TRIGGER, words, e.trigger))
    lines = [_span_line(a.role, words, a.span) for a in e.arguments]
    return Example("text_argument", sentence.sentence_id, prompt, _target(lines),
                   Context("text_argument", words=words, event_type=e.event_type,
                           trigger=e.trigger))


def render_visual_ee(item: ImageItem, image_size: ImageSize, codec: BoxCodec) -> Example:
    """Image -> its event types and role boxes in the codec's numbers."""
    lines = []
    for e in canonical_image_events(item.events, image_size, codec):
        lines.append(f"{EVENT}{SEP}{e.event_type}")
        lines.extend(f"{a.role}{SEP}{codec.format(codec.encode(a.box, image_size))}"
                     for a in e.arguments)
    prompt = _prompt(
        "Task: extract the event shown in the image.",
        f"Event types (argument roles): {_schema_line(schema.IMAGE_ROLES)}.",
        "Write 'event: TYPE', then 'ROLE: [x1, y1, x2, y2]' per argument, with "
        f"{codec.description}. Write 'none' if there is no event.")
    return Example("visual_ee", item.image_id, prompt, _target(lines),
                   Context("visual_ee", image_size=tuple(image_size), codec=codec), item.path)


def render_image_mention(item: ImageItem) -> Example:
    """Image -> its event types only (stage 2, mention identification)."""
    lines = [f"{EVENT}{SEP}{e.event_type}"
             for e in sorted(item.events, key=lambda e: _type_key(e.event_type))]
    prompt = _prompt(
        "Task: find the events shown in the image.",
        f"Event types: {', '.join(schema.EVENT_TYPES)}.",
        "Write 'event: TYPE' per event, or 'none' if there is no event.")
    return Example("image_mention", item.image_id, prompt, _target(lines),
                   Context("image_mention"), item.path)


def render_image_argument(item: ImageItem, event: ImageEvent, image_size: ImageSize,
                          codec: BoxCodec) -> Example:
    """Image + an event type -> that event's role boxes."""
    (e,) = canonical_image_events([event], image_size, codec)
    roles = schema.IMAGE_ROLES[e.event_type]
    prompt = _prompt(
        "Task: locate the arguments of the given event in the image.",
        f"Roles of {e.event_type}: {', '.join(roles)}.",
        f"Write 'ROLE: [x1, y1, x2, y2]' per argument, with {codec.description}. "
        "Write 'none' if there is none.",
        f"{EVENT}{SEP}{e.event_type}")
    lines = [f"{a.role}{SEP}{codec.format(codec.encode(a.box, image_size))}" for a in e.arguments]
    return Example("image_argument", item.image_id, prompt, _target(lines),
                   Context("image_argument", image_size=tuple(image_size), codec=codec,
                           event_type=e.event_type), item.path)


def render_mnre(record: MNRERecord) -> Example:
    """Sentence + image + head + tail -> their relation (MNRE)."""
    words = record.tokens
    if record.relation not in MNRE_RELATIONS:
        raise ValueError(f"{record.record_id}: {record.relation!r} is not an MNRE relation")
    prompt = _prompt(
        "Task: classify the relation between the head and tail entities, using the "
        "sentence and the image.",
        f"Relations: {', '.join(MNRE_RELATIONS)}.",
        "Write 'relation: LABEL'.",
        f"Sentence: {' '.join(words)}",
        _span_line("head", words, record.head),
        _span_line("tail", words, record.tail))
    return Example("mnre", record.record_id, prompt, f"{RELATION}{SEP}{record.relation}",
                   Context("mnre", words=words), record.image)


def _type_key(event_type: str) -> int:
    _check_type(event_type)
    return _TYPE_ORDER[event_type]


def render(task: str, record, *, image_size: ImageSize | None = None,
           codec: BoxCodec | None = None) -> list[Example]:
    """All examples of `task` for one record (argument tasks: one per event)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {TASKS}")
    if task == "mnre":
        return [render_mnre(record)]
    if task in TEXT_TASKS:
        if not isinstance(record, Sentence):
            raise TypeError(f"task {task} renders a Sentence, got {type(record).__name__}")
        if task == "text_ee":
            return [render_text_ee(record)]
        if task == "text_mention":
            return [render_text_mention(record)]
        return [render_text_argument(record, e) for e in canonical_text_events(record.events, record.words)]
    if not isinstance(record, ImageItem):
        raise TypeError(f"task {task} renders an ImageItem, got {type(record).__name__}")
    if task == "image_mention":
        return [render_image_mention(record)]
    if image_size is None or codec is None:
        raise ValueError(f"task {task} needs image_size and codec")
    if task == "visual_ee":
        return [render_visual_ee(record, image_size, codec)]
    return [render_image_argument(record, e, image_size, codec)
            for e in sorted(record.events, key=lambda e: _type_key(e.event_type))]


# ---------------------------------------------------------------- parser

class _Failures:
    def __init__(self):
        self.errors: list[str] = []

    def add(self, lineno: int, message: str) -> None:
        self.errors.append(f"line {lineno}: {message}")


def parse(target: str, context: Context) -> Parsed:
    """Recovers the structure of a target of `context.task`; never raises on the string.

    Lines that do not fit are left out and counted in `failures`. Raises ValueError only
    when `context` itself is unusable (unknown task, image task without size/codec).
    """
    if context.task not in TASKS:
        raise ValueError(f"unknown task {context.task!r}")
    if context.task in ("visual_ee", "image_argument") and (context.codec is None
                                                           or context.image_size is None):
        raise ValueError(f"task {context.task} needs context.codec and context.image_size")
    if context.task in ("text_argument", "image_argument") and context.event_type not in _TYPE_ORDER:
        raise ValueError(f"task {context.task} needs context.event_type, one of the 8 types")
    if context.task == "text_argument" and context.trigger is None:
        raise ValueError("task text_argument needs context.trigger")
    if not isinstance(target, str):
        return Parsed(failures=1, errors=(f"target is {type(target).__name__}, not a string",))
    fails = _Failures()
    lines = [(i, line.rstrip("\r")) for i, line in enumerate(target.split("\n"), 1)]
    lines = [(i, line) for i, line in lines if line.strip()]
    if not lines:
        fails.add(1, f"empty answer (the empty answer is {NONE!r})")
        return Parsed(failures=1, errors=tuple(fails.errors))
    if len(lines) == 1 and lines[0][1].strip() == NONE and context.task != "mnre":
        return Parsed(events=_given_event(context, []))
    if context.task == "mnre":
        return _parse_mnre(lines, fails)
    if context.task in ("text_argument", "image_argument"):
        args = [a for a in (_parse_argument(context, context.event_type, i, line, fails)
                            for i, line in lines) if a is not None]
        return _done(_given_event(context, args), fails)
    return _done(_parse_events(context, lines, fails), fails)


def _done(events, fails) -> Parsed:
    return Parsed(events=tuple(events), failures=len(fails.errors), errors=tuple(fails.errors))


def _given_event(context: Context, args: list) -> tuple:
    if context.task == "text_argument":
        t = context.trigger
        trigger = Span(t.start, t.end, " ".join(context.words[t.start:t.end]))
        return (TextEvent(context.event_type, trigger, tuple(args)),)
    if context.task == "image_argument":
        return (ImageEvent(context.event_type, tuple(args)),)
    return ()


def _split(line: str, i: int, fails) -> tuple[str, int, str] | None:
    head, sep, value = line.partition(SEP)
    m = _HEAD.fullmatch(head.strip())
    if not sep or m is None:
        fails.add(i, f"expected 'NAME: VALUE' or 'NAME@k: VALUE', got {line[:80]!r}")
        return None
    k = int(m.group(2)) if m.group(2) else 1
    return m.group(1), k, value


def _resolve(words, value: str, k: int, i: int, fails) -> Span | None:
    span = resolve_span(words, value, k)
    if span is None and value.strip() != value:
        span = resolve_span(words, value.strip(), k)
    if span is None:
        fails.add(i, f"{value[:80]!r} (occurrence {k}) is not words of the sentence")
    return span


def _parse_argument(context, event_type, i, line, fails):
    parts = _split(line, i, fails)
    if parts is None:
        return None
    role, k, value = parts
    text = context.task in TEXT_TASKS
    roles = (schema.TEXT_ROLES if text else schema.IMAGE_ROLES)[event_type]
    if role not in roles:
        fails.add(i, f"{role!r} is not a role of {event_type}")
        return None
    if text:
        span = _resolve(context.words, value, k, i, fails)
        return None if span is None else TextArgument(role, span)
    if k != 1:
        fails.add(i, "boxes take no occurrence index")
        return None
    box = _parse_box(value, context, i, fails)
    return None if box is None else BoxArgument(role, box)


def _parse_box(value: str, context: Context, i: int, fails) -> Box | None:
    m = _BOX.fullmatch(value.strip())
    if m is None:
        fails.add(i, f"expected a box [x1, y1, x2, y2], got {value[:80]!r}")
        return None
    try:
        return context.codec.decode([float(g) for g in m.groups()], context.image_size)
    except ValueError as e:
        fails.add(i, f"bad box {value[:80]!r}: {e}")
        return None


def _parse_events(context: Context, lines, fails) -> list:
    """text_ee, text_mention, visual_ee, image_mention: blocks opened by `event:` lines."""
    task = context.task
    with_trigger = task in ("text_ee", "text_mention")
    with_args = task in ("text_ee", "visual_ee")
    events = []
    block = None  # dict(type, trigger, args, line) of the open event; False: a bad one

    def close():
        if not block:
            return
        if with_trigger and block["trigger"] is None:
            fails.add(block["line"], f"event {block['type']} has no trigger line; left out")
            return
        if with_trigger:
            events.append(TextEvent(block["type"], block["trigger"], tuple(block["args"])))
        else:
            events.append(ImageEvent(block["type"], tuple(block["args"])))

    for i, line in lines:
        if line.strip() == NONE:
            fails.add(i, f"{NONE!r} among other lines")
            continue
        parts = _split(line, i, fails)
        if parts is None:
            continue
        name, k, value = parts
        if name == EVENT:
            close()
            if k != 1 or value.strip() not in _TYPE_ORDER:
                fails.add(i, f"{value[:80]!r} is not an event type")
                block = False
            else:
                block = {"type": value.strip(), "trigger": None, "args": [], "line": i}
        elif block is None or block is False:
            fails.add(i, "line outside a valid event block")
        elif name == TRIGGER and with_trigger:
            if block["trigger"] is not None:
                fails.add(i, "second trigger line for one event")
                continue
            block["trigger"] = _resolve(context.words, value, k, i, fails)
            if block["trigger"] is None:
                block = False  # the event is dropped; its trigger line is the counted failure
        elif with_args:
            arg = _parse_argument(context, block["type"], i, line, fails)
            if arg is not None:
                block["args"].append(arg)
        else:
            fails.add(i, f"{name!r} lines are not part of a {task} answer")
    close()
    return events


def _parse_mnre(lines, fails) -> Parsed:
    relation = None
    for i, line in lines:
        parts = _split(line, i, fails)
        if parts is None:
            continue
        name, k, value = parts
        if name != RELATION or k != 1:
            fails.add(i, f"expected 'relation: LABEL', got {line[:80]!r}")
        elif value.strip() not in MNRE_RELATIONS:
            fails.add(i, f"{value[:80]!r} is not an MNRE relation")
        elif relation is not None:
            fails.add(i, "second relation line")
        else:
            relation = value.strip()
    return Parsed(relation=relation, failures=len(fails.errors), errors=tuple(fails.errors))
