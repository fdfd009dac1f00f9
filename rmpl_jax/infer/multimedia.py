"""The learned cross-media decision: the `multimedia` task's answers on (sentence, photo) pairs
become the coref records, and what the joint view found is merged into the text and image events.

Merge rules (documented, gold-free):
- every pair answered with an event of type T is a `coref` record (sentence, photo, T);
- the answer's text event is added to the sentence's events unless one of the same type and
  trigger is already there (the single-modality decode keeps its own arguments);
- a photo whose first event (the one the scorer reads) has none of the types its pairs were
  answered with gets the first answer's image event in front: the joint view, which saw the
  sentence too, decides the photo's event. A photo whose first event agrees keeps its own
  event and boxes. Other answered types follow, one event per type.
"""

from __future__ import annotations

from collections.abc import Mapping

from rmpl_jax.m2e2.records import CorefPair


def _same_mention(a, b) -> bool:
    return (a.event_type, a.trigger.start, a.trigger.end) == (b.event_type, b.trigger.start, b.trigger.end)


def merge_answers(
    answers: Mapping[tuple[str, str], tuple],
    text_events: Mapping[str, list],
    image_events: Mapping[str, list],
) -> tuple[dict[str, list], dict[str, list], list[CorefPair]]:
    """answers: (sentence_id, image_id) -> the parsed answer, `(TextEvent, ImageEvent)` or ()
    (pairs in decoding order). Returns (text events, image events, coref records), the inputs
    left unchanged."""
    text = {k: list(v) for k, v in text_events.items()}
    images = {k: list(v) for k, v in image_events.items()}
    coref, shown = [], {}
    for (sentence_id, image_id), events in answers.items():
        if not events:
            continue
        said, seen = events
        coref.append(CorefPair(sentence_id, image_id, said.event_type))
        own = text.setdefault(sentence_id, [])
        if not any(_same_mention(e, said) for e in own):
            own.append(said)
        shown.setdefault(image_id, []).append(seen)
    for image_id, seen in shown.items():
        own = images.get(image_id, [])
        agrees = bool(own) and own[0].event_type in {e.event_type for e in seen}
        ordered = own if agrees else [seen[0], *own]
        types = {e.event_type for e in ordered}
        for e in seen:  # the other answered types follow (the scorer reads the first event only)
            if e.event_type not in types:
                ordered.append(e)
                types.add(e.event_type)
        first_of_type = {}
        for e in ordered:
            first_of_type.setdefault(e.event_type, e)
        images[image_id] = [e for e in ordered if first_of_type[e.event_type] is e]
    return text, images, list(dict.fromkeys(coref))
