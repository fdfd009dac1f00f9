"""Reader for the M2E2 annotations: sentences, annotated photos, cross-media pairs.

Text comes in two files (text-only and multimedia) whose shared sentence ids carry
different events; they are merged per `sentence_id`. Every photo a sentence refers to
or the image-event files annotate becomes an `ImageItem` of the gold corpus, with events
when annotated; `path` is set when an images directory is given and holds the file.

What a predictor may look at comes from `candidate_photos`: the photos the documents
themselves reference, plus the images directory's files, never the gold event files (10
annotated photos are named by no sentence; a candidate list built from the gold would
leak which photos have events).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable
from typing import Any

from rmpl_jax.data.images import check_photos
from rmpl_jax.data.jmee import sentence_from_jmee
from rmpl_jax.io.lines import numbered_lines
from rmpl_jax.io.paths import exists, file_lookup, is_dir, list_names
from rmpl_jax.io.read_report import DataError, ReadReport, load_json, require
from rmpl_jax.io.skips import SkipRegistry
from rmpl_jax.m2e2 import ontology
from rmpl_jax.m2e2.corpus import M2E2Corpus
from rmpl_jax.m2e2.records import (
    Box,
    BoxArgument,
    CorefPair,
    ImageEvent,
    ImageItem,
    Sentence,
    image_id_of,
)

TEXT_FILES = ("text_only_event.json", "text_multimedia_event.json")
IMAGE_FILES = ("image_only_event.json", "image_multimedia_event.json")
COREF_FILE = "crossmedia_coref.txt"


def _merge(a: Sentence, b: Sentence, where: str) -> Sentence:
    if a.words != b.words:
        raise DataError(f"{where}: sentence {a.sentence_id} appears twice with different words")
    events = a.events + tuple(e for e in b.events if e not in a.events)
    entities = a.entities + tuple(m for m in b.entities if m not in a.entities)
    images = a.images + tuple(i for i in b.images if i not in a.images)
    return dataclasses.replace(a, events=events, entities=entities, images=images)


def read_sentences(paths: list[str], report: ReadReport) -> dict[str, Sentence]:
    """Reads and merges JMEE-format sentence files, in order."""
    sentences: dict[str, Sentence] = {}
    for path in paths:
        data = load_json(path)
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of sentences")
        for index, raw in enumerate(data):
            where = f"{path}: record {index}"
            try:
                sentence = sentence_from_jmee(raw, where, report)
                if sentence.sentence_id in sentences:
                    sentence = _merge(sentences[sentence.sentence_id], sentence, where)
            except DataError as e:
                report.skip(e)
                continue
            sentences[sentence.sentence_id] = sentence
    return sentences


def parse_image_event(raw: Any, where: str) -> ImageEvent:
    """`{event_type, role: {ROLE: [[flag, x1, y1, x2, y2], ...]}}` -> ImageEvent; the type must
    be one of the 8 and each role one of its image roles."""
    event_type = require(raw, "event_type", str, where)
    if event_type not in ontology.IMAGE_ROLES:
        raise DataError(f"{where}: key 'event_type' {event_type!r} is not an M2E2 event type")
    args = []
    for role, boxes in require(raw, "role", dict, where).items():
        if not ontology.is_image_role(event_type, role):
            raise DataError(
                f"{where}: role {role!r} is not an image role of {event_type} "
                f"(one of {', '.join(ontology.IMAGE_ROLES[event_type])})"
            )
        if not isinstance(boxes, list):
            raise DataError(f"{where}: role {role}: expected a list of boxes, got {type(boxes).__name__}")
        for entry in boxes:
            if (
                not isinstance(entry, list)
                or len(entry) != 5
                or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in entry[1:]
                )
            ):
                raise DataError(f"{where}: role {role}: box must be [flag, x1, y1, x2, y2], got {entry!r}")
            x1, y1, x2, y2 = (float(v) for v in entry[1:])
            if x2 < x1 or y2 < y1:
                raise DataError(f"{where}: role {role}: box {entry[1:]} has x2 < x1 or y2 < y1")
            args.append(BoxArgument(role, Box(x1, y1, x2, y2)))
    return ImageEvent(event_type, tuple(args))


def read_image_events(paths: list[str], report: ReadReport) -> dict[str, ImageEvent]:
    events: dict[str, ImageEvent] = {}
    for path in paths:
        data = load_json(path)
        if not isinstance(data, dict):
            raise DataError(f"{path}: expected a JSON object keyed by image id")
        for image_id, raw in data.items():
            where = f"{path}: image {image_id}"
            try:
                if image_id in events:
                    raise DataError(f"{where}: image annotated twice")
                events[image_id] = parse_image_event(raw, where)
            except DataError as e:
                report.skip(e)
    return events


def read_coref(path: str, report: ReadReport) -> tuple[CorefPair, ...]:
    """`sentence_id TAB image_file TAB event_type` per line."""
    pairs = []
    for lineno, line in numbered_lines(path, on_error=report.skip):
        fields = line.split("\t")
        if len(fields) != 3 or not all(fields):
            report.skip(DataError(f"{path}:{lineno}: expected 3 tab-separated fields"))
            continue
        pairs.append(CorefPair(fields[0], image_id_of(fields[1]), fields[2]))
    return tuple(dict.fromkeys(pairs))


def read_m2e2(annotations_dir: str, images_dir: str | None = None, *, lenient: bool = False) -> M2E2Corpus:
    """Reads the five M2E2 annotation files from `annotations_dir`.

    Strict mode raises DataError naming the file and record on bad input; lenient mode
    skips bad records and counts them in `corpus.report`. With `images_dir`, images
    that sentences reference but the directory lacks are listed in `missing_images`
    (as `candidate_photos` finds them).
    """
    report = ReadReport(source=annotations_dir, lenient=lenient)
    for name in TEXT_FILES + IMAGE_FILES + (COREF_FILE,):
        if not exists(os.path.join(annotations_dir, name)):
            raise DataError(f"{annotations_dir}: missing M2E2 file {name}")
    sentences = read_sentences([os.path.join(annotations_dir, n) for n in TEXT_FILES], report)
    image_events = read_image_events([os.path.join(annotations_dir, n) for n in IMAGE_FILES], report)
    coref = read_coref(os.path.join(annotations_dir, COREF_FILE), report)

    image_ids = dict.fromkeys(image_id_of(f) for s in sentences.values() for f in s.images)
    image_ids.update(dict.fromkeys(image_events))
    find = _photo_lookup(images_dir)
    images = {}
    for image_id in image_ids:
        event = image_events.get(image_id)
        images[image_id] = ImageItem(image_id, (event,) if event else (), find(image_id))
    _, missing = candidate_photos(sentences.values(), images_dir)
    report.records = len(sentences) + len(image_events) + len(coref)
    return M2E2Corpus(sentences, images, coref, missing, report)


PHOTO_SUFFIX = ".jpg"


def _photo_lookup(images_dir: str | None):
    """`find(image_id)`: the photo's path in `images_dir`, None when it is not there."""
    if images_dir is None:
        return lambda image_id: None
    find = file_lookup(images_dir)
    return lambda image_id: find(image_id + PHOTO_SUFFIX)


def candidate_photos(
    sentences: Iterable[Sentence], images_dir: str | None, *, unreferenced: bool = True
) -> tuple[list[ImageItem], tuple[str, ...]]:
    """The photos a predictor may decode, without events, and the ids of those missing.

    Candidates are the photos the sentences' documents reference (their `image` lists), in
    order, then (with `unreferenced`) the other `*.jpg` files of `images_dir`, sorted; only
    the ones on disk get a `path`. Gold labels play no part. `missing` lists referenced
    photos that `images_dir` lacks (empty without an images directory).
    """
    referenced = dict.fromkeys(image_id_of(f) for s in sentences for f in s.images)
    ids = dict(referenced)
    if images_dir is not None and unreferenced and is_dir(images_dir):
        on_disk = sorted(image_id_of(n) for n in list_names(images_dir) if n.endswith(PHOTO_SUFFIX))
        ids.update(dict.fromkeys(on_disk))
    find = _photo_lookup(images_dir)
    photos = [ImageItem(image_id, (), find(image_id)) for image_id in ids]
    missing = () if images_dir is None else tuple(p.image_id for p in photos if p.path is None)
    return photos, missing


def readable_photos(
    sentences: Iterable[Sentence],
    images_dir: str | None,
    *,
    lenient: bool,
    skips: SkipRegistry,
    unreferenced: bool = True,
) -> list[ImageItem]:
    """`candidate_photos`, each photo checked (`data/images.py`): a photo that is missing or
    (lenient) unreadable keeps no `path`, so its sentences are decoded text-only, and is
    counted in `skips`; an unreadable one is an error otherwise."""
    photos, missing = candidate_photos(sentences, images_dir, unreferenced=unreferenced)
    if missing:
        skips.add("photo missing from images_dir (its sentences decoded text-only)", missing[0], count=len(missing))
    readable = check_photos(
        (p.path for p in photos if p.path),
        lenient=lenient,
        skips=skips,
        what="M2E2 (its sentences decoded text-only)",
        lenient_flag="--config.lenient=True",
    )
    return [p if p.path is None or p.path in readable else dataclasses.replace(p, path=None) for p in photos]
