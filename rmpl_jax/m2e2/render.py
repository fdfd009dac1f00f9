"""Records -> (prompt, target) examples of every task in the unified grammar (`grammar.py`).

Prompts are text only; for image tasks the Example names the image and the processor adds the
image tokens. Argument tasks render one example per event.
"""

from __future__ import annotations

from rmpl_jax.m2e2 import ontology
from rmpl_jax.m2e2.boxes import BoxCodec, ImageSize
from rmpl_jax.m2e2.candidates import candidate_value, candidate_values
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
    Context,
    Example,
    canonical_image_events,
    canonical_text_events,
    span_line,
    type_key,
)
from rmpl_jax.m2e2.ontology import MNRE_RELATIONS
from rmpl_jax.m2e2.records import ImageEvent, ImageItem, MNRERecord, MultimediaPair, Sentence, TextEvent

# ---------------------------------------------------------------- prompts


def _schema_line(roles: dict[str, tuple[str, ...]]) -> str:
    return "; ".join(f"{t} ({', '.join(roles[t])})" for t in ontology.EVENT_TYPES)


_SPAN_RULE = (
    "Copy words exactly from the sentence; if those words occur more than once, "
    "write @k after the line's name for the k-th occurrence."
)


PROMPT_STYLES = ("full", "brief")


def _instructions(brief: bool, *lines: str) -> tuple[str, ...]:
    """The schema and format lines of a text prompt, or none in a brief prompt: a fine-tuned
    model learns both from its targets (constrained decoding enforces them), and with a small
    model on a CPU they were most of every example's tokens (SmolLM2: 186 -> about 80 per
    text_mention prompt)."""
    return () if brief else lines


def _prompt(*lines: str) -> str:
    return "\n".join(lines)


def _box_format(item: ImageItem, image_size: ImageSize, codec: BoxCodec) -> tuple[str, str]:
    """(how an argument line is described, the prompt line listing the candidates or '')."""
    if item.candidates is None:
        return f"'ROLE: [x1, y1, x2, y2]' per argument, with {codec.description}", ""
    return (
        f"'ROLE: LABEL [x1, y1, x2, y2]' per argument, copying one of the candidates, with {codec.description}",
        _candidates_line(item, image_size, codec),
    )


def _candidates_line(item: ImageItem, image_size: ImageSize, codec: BoxCodec) -> str:
    """The prompt line listing the photo's candidates ('' without candidates)."""
    if item.candidates is None:
        return ""
    values = candidate_values(item.candidates, image_size, codec)
    return f"Candidates: {'; '.join(values) if values else 'none'}"


def _box_value(item: ImageItem, box, image_size: ImageSize, codec: BoxCodec) -> str:
    """A box argument's value: free codes, or the listed candidate with the same codes."""
    codes = codec.encode(box, image_size)
    if item.candidates is None:
        return codec.format(codes)
    for d in item.candidates:
        if codec.encode(d.box, image_size) == codes:
            return candidate_value(d, image_size, codec)
    raise ValueError(
        f"{item.image_id}: argument box {codec.format(codes)} is none of the candidates; "
        "ground the events first (m2e2.candidates.ground_item)"
    )


def _candidate_context(item: ImageItem, image_size: ImageSize, codec: BoxCodec) -> tuple[str, ...] | None:
    return None if item.candidates is None else candidate_values(item.candidates, image_size, codec)


# ---------------------------------------------------------------- renderers


def _target(lines: list[str]) -> str:
    return "\n".join(lines) if lines else NONE


def render_text_ee(sentence: Sentence, brief: bool = False) -> Example:
    """Sentence -> all events with triggers and argument spans."""
    words = sentence.words
    lines = []
    for e in canonical_text_events(sentence.events, words):
        lines.append(f"{EVENT}{SEP}{e.event_type}")
        lines.append(span_line(TRIGGER, words, e.trigger))
        lines.extend(span_line(a.role, words, a.span) for a in e.arguments)
    prompt = _prompt(
        "Task: extract events from the sentence.",
        *_instructions(
            brief,
            f"Event types (argument roles): {_schema_line(ontology.TEXT_ROLES)}.",
            "For each event write 'event: TYPE', then 'trigger: WORDS', then 'ROLE: WORDS' per "
            f"argument. {_SPAN_RULE} Write 'none' if there is no event.",
        ),
        f"Sentence: {' '.join(words)}",
    )
    return Example("text_ee", sentence.sentence_id, prompt, _target(lines), Context("text_ee", words=words))


def render_text_mention(sentence: Sentence, brief: bool = False) -> Example:
    """Sentence -> event types and triggers only (stage 2, mention identification)."""
    words = sentence.words
    lines = []
    for e in canonical_text_events(sentence.events, words):
        lines.append(f"{EVENT}{SEP}{e.event_type}")
        lines.append(span_line(TRIGGER, words, e.trigger))
    prompt = _prompt(
        "Task: find the event mentions in the sentence.",
        *_instructions(
            brief,
            f"Event types: {', '.join(ontology.EVENT_TYPES)}.",
            f"For each event write 'event: TYPE', then 'trigger: WORDS'. {_SPAN_RULE} "
            "Write 'none' if there is no event.",
        ),
        f"Sentence: {' '.join(words)}",
    )
    return Example("text_mention", sentence.sentence_id, prompt, _target(lines), Context("text_mention", words=words))


def render_text_argument(sentence: Sentence, event: TextEvent, brief: bool = False) -> Example:
    """Sentence + one event's type and trigger -> that event's arguments.

    At inference `event` is a predicted mention (its arguments are ignored by the prompt).
    """
    words = sentence.words
    (e,) = canonical_text_events([event], words)
    roles = ontology.TEXT_ROLES[e.event_type]
    prompt = _prompt(
        "Task: extract the arguments of the given event from the sentence.",
        *_instructions(
            brief,
            f"Roles of {e.event_type}: {', '.join(roles)}.",
            f"For each argument write 'ROLE: WORDS'. {_SPAN_RULE} Write 'none' if there is none.",
        ),
        f"Sentence: {' '.join(words)}",
        f"{EVENT}{SEP}{e.event_type}",
        span_line(TRIGGER, words, e.trigger),
    )
    lines = [span_line(a.role, words, a.span) for a in e.arguments]
    return Example(
        "text_argument",
        sentence.sentence_id,
        prompt,
        _target(lines),
        Context("text_argument", words=words, event_type=e.event_type, trigger=e.trigger),
    )


def render_visual_ee(item: ImageItem, image_size: ImageSize, codec: BoxCodec) -> Example:
    """Image -> its event types and role boxes in the codec's numbers (with `item.candidates`:
    each box names a listed candidate, `LABEL [codes]`)."""
    lines = []
    for e in canonical_image_events(item.events, image_size, codec):
        lines.append(f"{EVENT}{SEP}{e.event_type}")
        lines.extend(f"{a.role}{SEP}{_box_value(item, a.box, image_size, codec)}" for a in e.arguments)
    rule, listed = _box_format(item, image_size, codec)
    prompt = _prompt(
        "Task: extract the event shown in the image.",
        f"Event types (argument roles): {_schema_line(ontology.IMAGE_ROLES)}.",
        f"Write 'event: TYPE', then {rule}. Write 'none' if there is no event.",
        *([listed] if listed else []),
    )
    return Example(
        "visual_ee",
        item.image_id,
        prompt,
        _target(lines),
        Context(
            "visual_ee",
            image_size=tuple(image_size),
            codec=codec,
            candidates=_candidate_context(item, image_size, codec),
        ),
        item.path,
    )


def render_image_mention(item: ImageItem) -> Example:
    """Image -> its event types only (stage 2, mention identification)."""
    lines = [f"{EVENT}{SEP}{e.event_type}" for e in sorted(item.events, key=lambda e: type_key(e.event_type))]
    prompt = _prompt(
        "Task: find the events shown in the image.",
        f"Event types: {', '.join(ontology.EVENT_TYPES)}.",
        "Write 'event: TYPE' per event, or 'none' if there is no event.",
    )
    return Example("image_mention", item.image_id, prompt, _target(lines), Context("image_mention"), item.path)


def render_image_argument(item: ImageItem, event: ImageEvent, image_size: ImageSize, codec: BoxCodec) -> Example:
    """Image + an event type -> that event's role boxes (with `item.candidates`: each box
    names a listed candidate, `LABEL [codes]`)."""
    (e,) = canonical_image_events([event], image_size, codec)
    roles = ontology.IMAGE_ROLES[e.event_type]
    rule, listed = _box_format(item, image_size, codec)
    prompt = _prompt(
        "Task: locate the arguments of the given event in the image.",
        f"Roles of {e.event_type}: {', '.join(roles)}.",
        f"Write {rule}. Write 'none' if there is none.",
        *([listed] if listed else []),
        f"{EVENT}{SEP}{e.event_type}",
    )
    lines = [f"{a.role}{SEP}{_box_value(item, a.box, image_size, codec)}" for a in e.arguments]
    return Example(
        "image_argument",
        item.image_id,
        prompt,
        _target(lines),
        Context(
            "image_argument",
            image_size=tuple(image_size),
            codec=codec,
            event_type=e.event_type,
            candidates=_candidate_context(item, image_size, codec),
        ),
        item.path,
    )


def shared_events(pair: MultimediaPair) -> tuple[TextEvent, ImageEvent] | None:
    """The pair's shared event in each modality: the sentence's first event of the pair's type
    (grammar order) and the photo's event of that type; None when the pair shares none."""
    if pair.event_type is None:
        return None
    text = [
        e for e in canonical_text_events(pair.sentence.events, pair.sentence.words) if e.event_type == pair.event_type
    ]
    image = [e for e in pair.image.events if e.event_type == pair.event_type]
    if not text or not image:
        raise ValueError(
            f"pair ({pair.sentence.sentence_id}, {pair.image.image_id}): no {pair.event_type} event in "
            f"{'the sentence' if not text else 'the photo'}"
        )
    return text[0], image[0]


def render_multimedia(pair: MultimediaPair, image_size: ImageSize, codec: BoxCodec, brief: bool = False) -> Example:
    """Sentence + photo of one document -> the event both report (type, trigger, text argument
    spans, then `image ROLE: BOX` lines; with `pair.image.candidates` each box names a listed
    candidate), or `none` when they share no event."""
    words, item = pair.sentence.words, pair.image
    lines = []
    shared = shared_events(pair)
    if shared is not None:
        text, image = shared
        (image,) = canonical_image_events([image], image_size, codec)
        lines.append(f"{EVENT}{SEP}{text.event_type}")
        lines.append(span_line(TRIGGER, words, text.trigger))
        lines.extend(span_line(a.role, words, a.span) for a in text.arguments)
        lines.extend(f"{IMAGE_ROLE}{a.role}{SEP}{_box_value(item, a.box, image_size, codec)}" for a in image.arguments)
    listed = _candidates_line(item, image_size, codec)
    box = "[x1, y1, x2, y2]" if item.candidates is None else "LABEL [x1, y1, x2, y2] (one of the candidates)"
    prompt = _prompt(
        "Task: find the event that both the sentence and the image report.",
        *_instructions(
            brief,
            f"Event types (argument roles): {_schema_line(ontology.TEXT_ROLES)}.",
            "Write 'event: TYPE', then 'trigger: WORDS', then 'ROLE: WORDS' per argument in the sentence "
            f"and '{IMAGE_ROLE}ROLE: {box}' per argument in the image, with {codec.description}. "
            f"{_SPAN_RULE} Write 'none' if they report no common event.",
        ),
        *([listed] if listed else []),
        f"Sentence: {' '.join(words)}",
    )
    return Example(
        MULTIMEDIA,
        f"{pair.sentence.sentence_id}\t{item.image_id}",
        prompt,
        _target(lines),
        Context(
            MULTIMEDIA,
            words=words,
            image_size=tuple(image_size),
            codec=codec,
            candidates=_candidate_context(item, image_size, codec),
        ),
        item.path,
    )


def render_mnre(record: MNRERecord) -> Example:
    """Sentence + image + head + tail -> their relation (MNRE)."""
    words = record.tokens
    if record.relation not in MNRE_RELATIONS:
        raise ValueError(f"{record.record_id}: {record.relation!r} is not an MNRE relation")
    prompt = _prompt(
        "Task: classify the relation between the head and tail entities, using the sentence and the image.",
        f"Relations: {', '.join(MNRE_RELATIONS)}.",
        "Write 'relation: LABEL'.",
        f"Sentence: {' '.join(words)}",
        span_line("head", words, record.head),
        span_line("tail", words, record.tail),
    )
    return Example(
        "mnre",
        record.record_id,
        prompt,
        f"{RELATION}{SEP}{record.relation}",
        Context("mnre", words=words),
        record.image,
    )


def render(
    task: str,
    record,
    *,
    image_size: ImageSize | None = None,
    codec: BoxCodec | None = None,
    brief: bool = False,
) -> list[Example]:
    """All examples of `task` for one record (argument tasks: one per event); `brief`: the
    text tasks' prompts without schema and format lines."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {TASKS}")
    if task == "mnre":
        return [render_mnre(record)]
    if task == MULTIMEDIA:
        if not isinstance(record, MultimediaPair):
            raise TypeError(f"task {task} renders a MultimediaPair, got {type(record).__name__}")
        if image_size is None or codec is None:
            raise ValueError(f"task {task} needs image_size and codec")
        return [render_multimedia(record, image_size, codec, brief)]
    if task in TEXT_TASKS:
        if not isinstance(record, Sentence):
            raise TypeError(f"task {task} renders a Sentence, got {type(record).__name__}")
        if task == "text_ee":
            return [render_text_ee(record, brief)]
        if task == "text_mention":
            return [render_text_mention(record, brief)]
        return [render_text_argument(record, e, brief) for e in canonical_text_events(record.events, record.words)]
    if not isinstance(record, ImageItem):
        raise TypeError(f"task {task} renders an ImageItem, got {type(record).__name__}")
    if task == "image_mention":
        return [render_image_mention(record)]
    if image_size is None or codec is None:
        raise ValueError(f"task {task} needs image_size and codec")
    if task == "visual_ee":
        return [render_visual_ee(record, image_size, codec)]
    return [
        render_image_argument(record, e, image_size, codec)
        for e in sorted(record.events, key=lambda e: type_key(e.event_type))
    ]
