"""Target text -> structure (events, relation) for every task; never raises on the text.

Lines that do not fit the grammar (`grammar.py`) or the item's context are left out and
counted, so a model's answer always yields what it got right.
"""

from __future__ import annotations

import re

from rmpl_jax.m2e2 import ontology
from rmpl_jax.m2e2.grammar import (
    EVENT,
    IMAGE_ROLE,
    MULTIMEDIA,
    NONE,
    RELATION,
    SEP,
    TASKS,
    TEXT_TASKS,
    TRIGGER,
    TYPE_ORDER,
    Context,
    Parsed,
    resolve_span,
)
from rmpl_jax.m2e2.ontology import MNRE_RELATIONS
from rmpl_jax.m2e2.records import (
    Box,
    BoxArgument,
    ImageEvent,
    Span,
    TextArgument,
    TextEvent,
)

_HEAD = re.compile(r"([A-Za-z][A-Za-z-]*)(?:@(\d{1,6}))?")
_NUM = r"\s*(-?\d{1,12}(?:\.\d{1,12})?)\s*"
_BOX = re.compile(r"\[" + ",".join([_NUM] * 4) + r"\]")

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
    if context.task in ("visual_ee", "image_argument", MULTIMEDIA) and (
        context.codec is None or context.image_size is None
    ):
        raise ValueError(f"task {context.task} needs context.codec and context.image_size")
    if context.task in ("text_argument", "image_argument") and context.event_type not in TYPE_ORDER:
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
        args = [
            a
            for a in (_parse_argument(context, context.event_type, i, line, fails) for i, line in lines)
            if a is not None
        ]
        return _done(_given_event(context, args), fails)
    if context.task == MULTIMEDIA:
        return _done(_parse_multimedia(context, lines, fails), fails)
    return _done(_parse_events(context, lines, fails), fails)


def _done(events, fails) -> Parsed:
    return Parsed(events=tuple(events), failures=len(fails.errors), errors=tuple(fails.errors))


def _given_event(context: Context, args: list) -> tuple:
    if context.task == "text_argument":
        t = context.trigger
        trigger = Span(t.start, t.end, " ".join(context.words[t.start : t.end]))
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


def _parse_argument(context, event_type, i, line, fails, text: bool | None = None):
    """A `ROLE: VALUE` line: a span (text tasks, or `text=True`) or a box."""
    parts = _split(line, i, fails)
    if parts is None:
        return None
    role, k, value = parts
    text = context.task in TEXT_TASKS if text is None else text
    roles = (ontology.TEXT_ROLES if text else ontology.IMAGE_ROLES)[event_type]
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
    if context.candidates is not None:
        if value.strip() not in context.candidates:
            fails.add(i, f"{value[:80]!r} is none of the listed candidates")
            return None
        value = value.strip()[value.strip().rindex(" [") + 1 :]
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
            if k != 1 or value.strip() not in TYPE_ORDER:
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


def _parse_multimedia(context: Context, lines, fails) -> tuple:
    """One shared event: `event: T`, `trigger: W`, text `ROLE: W` lines and `image ROLE: BOX`
    lines -> (TextEvent, ImageEvent); () when the event line or the trigger is unusable."""
    (i, first), rest = lines[0], lines[1:]
    parts = _split(first, i, fails)
    if parts is None:
        return ()
    if parts[0] != EVENT or parts[1] != 1 or parts[2].strip() not in TYPE_ORDER:
        fails.add(i, f"expected 'event: TYPE' first, got {first[:80]!r}")
        return ()
    event_type = parts[2].strip()
    trigger, trigger_lines, text_args, image_args = None, 0, [], []
    for i, line in rest:
        if line.startswith(IMAGE_ROLE):
            arg = _parse_argument(context, event_type, i, line[len(IMAGE_ROLE) :], fails, text=False)
            if arg is not None:
                image_args.append(arg)
            continue
        parts = _split(line, i, fails)
        if parts is None:
            continue
        name, k, value = parts
        if name == EVENT:
            fails.add(i, "a second event line (the answer is one shared event)")
        elif name == TRIGGER:
            trigger_lines += 1
            if trigger_lines > 1:
                fails.add(i, "second trigger line for one event")
            else:
                trigger = _resolve(context.words, value, k, i, fails)
        else:
            arg = _parse_argument(context, event_type, i, line, fails, text=True)
            if arg is not None:
                text_args.append(arg)
    if trigger is None:  # a trigger line that did not resolve is counted already
        if not trigger_lines:
            fails.add(lines[0][0], f"event {event_type} has no trigger line; left out")
        return ()
    return TextEvent(event_type, trigger, tuple(text_args)), ImageEvent(event_type, tuple(image_args))


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
