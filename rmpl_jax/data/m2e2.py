"""Reader for the M2E2 annotations: sentences, annotated photos, cross-media pairs.

Text comes in two files (text-only and multimedia) whose shared sentence ids carry
different events; they are merged per `sentence_id`. Every photo a sentence refers to
becomes an `ImageItem`, with events when annotated; `path` is set when an images
directory is given and holds the file.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from rmpl_jax.data.problems import DataError, Problems, SkipReport
from rmpl_jax.records import (Box, BoxArgument, CorefPair, EntityMention, ImageEvent,
                              ImageItem, Sentence, Span, TextArgument, TextEvent,
                              doc_id_of, image_id_of)

TEXT_FILES = ("text_only_event.json", "text_multimedia_event.json")
IMAGE_FILES = ("image_only_event.json", "image_multimedia_event.json")
COREF_FILE = "crossmedia_coref.txt"


@dataclasses.dataclass(frozen=True)
class M2E2Corpus:
    """The whole benchmark, keyed by id (insertion order = file order)."""

    sentences: dict[str, Sentence]
    images: dict[str, ImageItem]
    coref: tuple[CorefPair, ...]
    missing_images: tuple[str, ...]  # referenced but absent from images_dir (empty if none given)
    skipped: SkipReport

    def annotated_images(self) -> dict[str, ImageItem]:
        return {k: v for k, v in self.images.items() if v.events}


def load_json(path: str) -> Any:
    """Parses a JSON file; a truncated or invalid file raises DataError naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None


def _span(obj: Any, words: list[str]) -> Span:
    start, end = obj["start"], obj["end"]
    if not (isinstance(start, int) and isinstance(end, int)) or not 0 <= start < end <= len(words):
        raise _OutOfRange(f"span [{start}, {end}) outside the sentence's {len(words)} tokens")
    return Span(start, end, " ".join(words[start:end]))


class _OutOfRange(Exception):
    pass


def parse_sentence(raw: Any) -> Sentence:
    """One JMEE-style sentence dict -> Sentence; raises KeyError/TypeError/_OutOfRange."""
    if not isinstance(raw, dict):
        raise TypeError(f"expected an object, got {type(raw).__name__}")
    words = raw["words"]
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise TypeError("`words` must be a list of strings")
    events = []
    for e in raw["golden-event-mentions"]:
        args = tuple(TextArgument(a["role"], _span(a, words)) for a in e["arguments"])
        events.append(TextEvent(e["event_type"], _span(e["trigger"], words), args))
    entities = tuple(EntityMention(m["entity-type"], _span(m, words))
                     for m in raw.get("golden-entity-mentions", ()))
    sentence_id = raw["sentence_id"]
    return Sentence(sentence_id=sentence_id, words=tuple(words), events=tuple(events),
                    entities=entities, doc_id=doc_id_of(sentence_id),
                    images=tuple(raw.get("image", ())))


def _merge(a: Sentence, b: Sentence) -> Sentence:
    if a.words != b.words:
        raise _OutOfRange(f"sentence {a.sentence_id} appears twice with different words")
    events = a.events + tuple(e for e in b.events if e not in a.events)
    entities = a.entities + tuple(m for m in b.entities if m not in a.entities)
    images = a.images + tuple(i for i in b.images if i not in a.images)
    return dataclasses.replace(a, events=events, entities=entities, images=images)


def read_sentences(paths: list[str], problems: Problems) -> dict[str, Sentence]:
    """Reads and merges JMEE-format sentence files, in order."""
    sentences: dict[str, Sentence] = {}
    for path in paths:
        data = load_json(path)
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of sentences")
        for index, raw in enumerate(data):
            sid = raw.get("sentence_id", "?") if isinstance(raw, dict) else "?"
            where = f"{path}: record {index} (sentence_id {sid})"
            try:
                sentence = parse_sentence(raw)
                if sentence.sentence_id in sentences:
                    sentence = _merge(sentences[sentence.sentence_id], sentence)
            except KeyError as e:
                problems.bad(f"missing key {e.args[0]!r}", where)
                continue
            except (TypeError, _OutOfRange) as e:
                problems.bad(str(e), where)
                continue
            sentences[sentence.sentence_id] = sentence
    return sentences


def parse_image_event(raw: Any) -> ImageEvent:
    """`{event_type, role: {ROLE: [[flag, x1, y1, x2, y2], ...]}}` -> ImageEvent."""
    if not isinstance(raw, dict):
        raise TypeError(f"expected an object, got {type(raw).__name__}")
    args = []
    for role, boxes in raw["role"].items():
        for entry in boxes:
            if not isinstance(entry, list) or len(entry) != 5:
                raise TypeError(f"role {role}: box must be [flag, x1, y1, x2, y2], got {entry!r}")
            x1, y1, x2, y2 = (float(v) for v in entry[1:])
            if x2 < x1 or y2 < y1:
                raise _OutOfRange(f"role {role}: box {entry[1:]} has x2 < x1 or y2 < y1")
            args.append(BoxArgument(role, Box(x1, y1, x2, y2)))
    return ImageEvent(raw["event_type"], tuple(args))


def read_image_events(paths: list[str], problems: Problems) -> dict[str, ImageEvent]:
    events: dict[str, ImageEvent] = {}
    for path in paths:
        data = load_json(path)
        if not isinstance(data, dict):
            raise DataError(f"{path}: expected a JSON object keyed by image id")
        for image_id, raw in data.items():
            where = f"{path}: image {image_id}"
            try:
                event = parse_image_event(raw)
            except KeyError as e:
                problems.bad(f"missing key {e.args[0]!r}", where)
                continue
            except (TypeError, ValueError, _OutOfRange) as e:
                problems.bad(str(e), where)
                continue
            if image_id in events:
                problems.bad("image annotated twice", where)
                continue
            events[image_id] = event
    return events


def read_coref(path: str, problems: Problems) -> tuple[CorefPair, ...]:
    """`sentence_id TAB image_file TAB event_type` per line."""
    pairs = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 3 or not all(fields):
                problems.bad("expected 3 tab-separated fields", f"{path}:{lineno}")
                continue
            pairs.append(CorefPair(fields[0], image_id_of(fields[1]), fields[2]))
    return tuple(dict.fromkeys(pairs))


def read_m2e2(annotations_dir: str, images_dir: str | None = None, *,
              lenient: bool = False) -> M2E2Corpus:
    """Reads the five M2E2 annotation files from `annotations_dir`.

    Strict mode raises DataError naming the file and record on bad input; lenient mode
    skips bad records and counts them in `corpus.skipped`. With `images_dir`, images
    that sentences reference but the directory lacks are listed in `missing_images`.
    """
    problems = Problems(lenient)
    for name in TEXT_FILES + IMAGE_FILES + (COREF_FILE,):
        if not os.path.exists(os.path.join(annotations_dir, name)):
            raise DataError(f"{annotations_dir}: missing M2E2 file {name}")
    sentences = read_sentences([os.path.join(annotations_dir, n) for n in TEXT_FILES], problems)
    image_events = read_image_events([os.path.join(annotations_dir, n) for n in IMAGE_FILES],
                                     problems)
    coref = read_coref(os.path.join(annotations_dir, COREF_FILE), problems)

    image_ids = dict.fromkeys(image_id_of(f) for s in sentences.values() for f in s.images)
    image_ids.update(dict.fromkeys(image_events))
    images, missing = {}, []
    for image_id in image_ids:
        path = None
        if images_dir is not None:
            candidate = os.path.join(images_dir, image_id + ".jpg")
            if os.path.exists(candidate):
                path = candidate
            else:
                missing.append(image_id)
        event = image_events.get(image_id)
        images[image_id] = ImageItem(image_id, (event,) if event else (), path)
    return M2E2Corpus(sentences, images, coref, tuple(missing), problems.report)
