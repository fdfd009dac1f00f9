"""What each stage trains on: source records -> rendered examples per task, as weighted
Grain task sources.

Stage 1 (unified schema): text_ee, visual_ee, mnre. Stage 2 (progressive): text_mention,
image_mention, text_argument, image_argument, and (by config) multimedia: a sentence and a
photo of one document, from the data's cross-media pairs (`data/multimedia_pairs.py`). Image
tasks see every photo resized to one square side (static shapes), so their boxes are moved
into that frame before rendering.

Nothing unusable reaches the Grain pipeline: photos are checked when the sources are read
(`data/images.py`), examples longer than the largest bucket are measured before training
(`data/lengths.py`), and a task whose examples come with and without photos (MNRE with
some photos missing) becomes two sources, so no batch mixes them. What is left out is
counted in the run's `SkipRegistry`, or is an error in strict mode.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from rmpl_jax.data.detections import attach_candidates, read_detections
from rmpl_jax.data.hashed_share import in_share
from rmpl_jax.data.images import check_photos
from rmpl_jax.data.imsitu import read_imsitu
from rmpl_jax.data.jmee import read_jmee
from rmpl_jax.data.lengths import drop_too_long
from rmpl_jax.data.m2e2_docs import m2e2_documents
from rmpl_jax.data.mnre import read_mnre
from rmpl_jax.data.multimedia_pairs import PairSettings, training_pairs
from rmpl_jax.data.oneie import read_oneie
from rmpl_jax.data.pipeline import TaskSource
from rmpl_jax.data.synthetic import SyntheticSplit, generate_corpus
from rmpl_jax.data.synthetic_detections import synthetic_detections
from rmpl_jax.io.errors import ConfigError
from rmpl_jax.io.read_report import ReadReport
from rmpl_jax.io.shared_data import shared_data_path
from rmpl_jax.io.skips import SkipRegistry
from rmpl_jax.m2e2 import grammar, ontology, render
from rmpl_jax.m2e2.boxes import BoxCodec
from rmpl_jax.m2e2.candidates import ground_item, scaled
from rmpl_jax.m2e2.records import (
    Box,
    BoxArgument,
    CorefPair,
    ImageEvent,
    ImageItem,
    MNRERecord,
    MultimediaPair,
    Sentence,
)


@dataclasses.dataclass(frozen=True)
class Sources:
    """Training records of one run. image_sizes: image_id -> (width, height); coref: the
    cross-media pairs (sentence, photo, type) of the sentences and photos."""

    sentences: tuple[Sentence, ...] = ()
    images: tuple[ImageItem, ...] = ()
    image_sizes: Mapping[str, tuple[int, int]] = dataclasses.field(default_factory=dict)
    relations: tuple[MNRERecord, ...] = ()
    coref: tuple[CorefPair, ...] = ()
    reports: tuple[ReadReport, ...] = ()  # what reading each source kept, skipped and dropped

    def summary(self) -> str:
        return f"{len(self.sentences)} sentences, {len(self.images)} images, {len(self.relations)} relation examples"


def scale_to_frame(item: ImageItem, size: tuple[int, int], side: int) -> ImageItem:
    """The item's boxes (and candidates) in the side x side frame the model sees."""
    sx, sy = side / size[0], side / size[1]
    events = tuple(
        ImageEvent(
            e.event_type,
            tuple(
                BoxArgument(a.role, Box(a.box.x1 * sx, a.box.y1 * sy, a.box.x2 * sx, a.box.y2 * sy))
                for a in e.arguments
            ),
        )
        for e in item.events
    )
    return dataclasses.replace(item, events=events, candidates=scaled(item.candidates, sx, sy))


@dataclasses.dataclass(frozen=True)
class CandidateSettings:
    """`data.candidates` of a config: which tasks list detector candidates and name one per
    box; gold boxes are grounded to a candidate at IoU >= min_iou (else dropped, counted);
    a prompt lists at most max_per_image detections of score >= min_score."""

    tasks: tuple[str, ...] = ()
    min_iou: float = 0.5
    min_score: float = 0.25
    max_per_image: int = 10

    @classmethod
    def from_config(cls, block) -> CandidateSettings:
        if block is None or not block.use:
            return cls()
        default = cls()
        return cls(
            tuple(block.tasks),
            float(block.get("min_iou", default.min_iou)),  # predict grounds nothing: no min_iou there
            float(block.min_score),
            int(block.max_per_image),
        )


@dataclasses.dataclass(frozen=True)
class TextTaskSettings:
    """How the text tasks are built from a config's `data` block: `brief` prompts (no schema
    lines, `data.prompts="brief"`) and the share of sentences without events kept in the
    tasks that ask for every event of a sentence (`data.eventless_share`; M2E2's text is 80%
    such sentences, and a small model trained on all of them learns to answer 'none')."""

    brief: bool = False
    eventless_share: float = 1.0

    @classmethod
    def from_config(cls, data) -> TextTaskSettings:
        return cls(data.get("prompts", "full") == "brief", float(data.get("eventless_share", 1.0)))

    def keeps(self, sentence: Sentence) -> bool:
        """Whether a sentence is kept: always with events; without, a fixed share chosen by a
        hash of its id (the same sentences in every run and process)."""
        return bool(sentence.events) or in_share(sentence.sentence_id, self.eventless_share)


def with_detections(items, detections, settings: CandidateSettings, skips: SkipRegistry, what: str) -> list[ImageItem]:
    """Items with their candidates attached; photos the detections do not name are counted."""
    items, unnamed = attach_candidates(
        items, detections, min_score=settings.min_score, max_count=settings.max_per_image
    )
    if unnamed:
        skips.add(
            f"{what}: photos without detections (no candidates: their answer can only be 'none')",
            unnamed[0],
            count=len(unnamed),
        )
    return items


def synthetic_sources(
    workdir: str,
    *,
    seed: int,
    train_docs: int,
    heldout_docs: int,
    candidates: CandidateSettings = CandidateSettings(),
    skips: SkipRegistry | None = None,
) -> tuple[Sources, SyntheticSplit]:
    """The embedded default corpus: (training sources, held-out split). With candidate tasks,
    every photo carries the synthetic detector's boxes (`data/synthetic_detections.py`)."""
    corpus = generate_corpus(
        os.path.join(workdir, "synthetic_images"), seed=seed, train_docs=train_docs, heldout_docs=heldout_docs
    )
    train, heldout = corpus["train"], corpus["heldout"]
    if candidates.tasks:
        skips = skips if skips is not None else SkipRegistry()
        for name in ("train", "heldout"):
            split = corpus[name]
            found = synthetic_detections(split, seed=seed)
            items = with_detections(split.images, found, candidates, skips, f"synthetic {name}")
            corpus[name] = dataclasses.replace(split, images=tuple(items))
        train, heldout = corpus["train"], corpus["heldout"]
    return Sources(train.sentences, train.images, train.image_sizes, coref=train.pairs), heldout


def uses_m2e2_text(data) -> bool:
    """Whether the `data` block trains on M2E2's own text (`data.m2e2.use`)."""
    return bool(data.get("m2e2") and data.m2e2.use)


def real_sources(data, skips: SkipRegistry, candidates: CandidateSettings = CandidateSettings()) -> Sources:
    """Sources named in the config's `data` block (any may be empty). Bad records and
    unreadable photos are errors, or skipped and counted in `skips` when `data.lenient`."""

    sentences, images, sizes, relations, reports = [], [], {}, [], []
    if uses_m2e2_text(data):
        found = m2e2_documents(data.m2e2, data.m2e2.train_part, lenient=data.lenient)
        print(f"M2E2 text, {data.m2e2.train_part!r} documents: {found.report.summary()}; kept {len(found.sentences)}")
        reports.append(found.report)
        skips.add_read_report(found.report)
        sentences += found.sentences.values()
    if data.ace_path:
        reader = read_oneie if data.ace_path.endswith((".jsonl", ".oneie")) else read_jmee
        found, report = reader(data.ace_path, lenient=data.lenient)
        print(report.summary())
        reports.append(report)
        skips.add_read_report(report)
        sentences += found
    if data.imsitu_path:
        mapping = ontology.load_imsitu_mapping(data.imsitu_mapping or shared_data_path("imsitu", "ace_sr_mapping.txt"))
        found, found_sizes, report = read_imsitu(
            data.imsitu_path, mapping, images_dir=data.imsitu_images or None, lenient=data.lenient
        )
        print(report.summary())
        reports.append(report)
        skips.add_read_report(report)
        readable = check_photos(
            (i.path for i in found if i.path), lenient=data.lenient, skips=skips, what=data.imsitu_path
        )
        found = [i for i in found if i.path in readable]
        if candidates.tasks and data.candidates.imsitu_detections:
            detections, report = read_detections(data.candidates.imsitu_detections, lenient=data.lenient)
            print(report.summary())
            skips.add_read_report(report)
            found = with_detections(found, detections, candidates, skips, data.candidates.imsitu_detections)
        images += found
        sizes.update(found_sizes)
    if data.mnre_path:
        found, report = read_mnre(data.mnre_path, images_dir=data.mnre_images or None, lenient=data.lenient)
        print(report.summary())
        reports.append(report)
        skips.add_read_report(report)
        if data.mnre_images and report.counts["images_missing"]:
            skips.add(f"{data.mnre_path}: photo missing, trained text-only", count=report.counts["images_missing"])
        readable = check_photos(
            (r.image for r in found if r.image), lenient=data.lenient, skips=skips, what=data.mnre_path
        )
        relations += [
            r if r.image is None or r.image in readable else dataclasses.replace(r, image=None) for r in found
        ]
    return Sources(tuple(sentences), tuple(images), sizes, tuple(relations), tuple(reports))


def _framed(task, item, sources, side, candidates: CandidateSettings, skips) -> ImageItem:
    """The photo in the model's frame; in a candidate task its gold boxes grounded to candidates
    (arguments without one at `min_iou` dropped and counted), elsewhere no candidates."""
    framed = scale_to_frame(item, sources.image_sizes[item.image_id], side)
    if task not in candidates.tasks or framed.candidates is None:
        return dataclasses.replace(framed, candidates=None)
    framed, dropped = ground_item(framed, candidates.min_iou)
    if dropped and skips is not None:
        skips.add(
            f"task {task}: image arguments without a candidate at IoU >= {candidates.min_iou}, left out of the target",
            item.image_id,
            count=dropped,
        )
    return framed


def task_examples(
    task: str,
    sources: Sources,
    codec: BoxCodec,
    side: int,
    candidates: CandidateSettings = CandidateSettings(),
    skips: SkipRegistry | None = None,
    text: TextTaskSettings = TextTaskSettings(),
    pairs: PairSettings | None = None,
) -> list[grammar.Example]:
    """Every example of `task` from the sources (image tasks: only photos on disk). In the
    candidate tasks, photos with candidates name one per box: each gold box is grounded to
    its best candidate, and arguments without one at `min_iou` are dropped and counted.
    `text`: brief prompts, and which eventless sentences text_mention and text_ee keep;
    `pairs`: which negatives the multimedia task trains on."""
    if task == "mnre":
        return [ex for r in sources.relations for ex in render.render("mnre", r)]
    if task == grammar.MULTIMEDIA:
        found = training_pairs(sources.sentences, sources.images, sources.coref, pairs or PairSettings(), skips=skips)
        framed = {}  # each photo framed (and grounded, its drops counted) once, however many pairs
        for p in found:
            if p.image.image_id not in framed:
                framed[p.image.image_id] = _framed(task, p.image, sources, side, candidates, skips)
        return [
            render.render_multimedia(
                MultimediaPair(p.sentence, framed[p.image.image_id], p.event_type), (side, side), codec, text.brief
            )
            for p in found
        ]
    if task in grammar.TEXT_TASKS:
        kept = [s for s in sources.sentences if task == "text_argument" or text.keeps(s)]
        return [ex for s in kept for ex in render.render(task, s, brief=text.brief)]
    out = []
    for item in sources.images:
        if item.path is None:
            continue
        framed = _framed(task, item, sources, side, candidates, skips)
        out += render.render(task, framed, image_size=(side, side), codec=codec)
    return out


def stage_tasks(
    weights: Mapping[str, float],
    sources: Sources,
    codec: BoxCodec,
    side: int,
    *,
    token_lengths: Callable[[Sequence[grammar.Example]], np.ndarray],
    max_tokens: int,
    lenient: bool,
    skips: SkipRegistry,
    candidates: CandidateSettings = CandidateSettings(),
    text: TextTaskSettings = TextTaskSettings(),
    pairs: PairSettings | None = None,
) -> list[TaskSource]:
    """Weighted task sources of a stage; a task of weight 0 (how a config override drops one)
    or with no examples is reported and left out.

    `token_lengths` measures examples (`Featurizer.token_lengths`); those over `max_tokens`
    are an error, or skipped and counted when `lenient`. A task with examples both with and
    without photos becomes two sources (`<task>` and `<task> (text only)`) sharing its weight
    in proportion to their sizes.
    """
    out = []
    for task, weight in weights.items():
        if task not in grammar.TASKS:
            raise ConfigError(f"stage task {task!r} is not one of {grammar.TASKS}")
        if weight <= 0:
            print(f"task {task}: weight {weight}, left out of the mixture")
            continue
        examples = task_examples(task, sources, codec, side, candidates, skips, text, pairs)
        lengths = token_lengths(examples)
        kept = drop_too_long(task, examples, lengths, max_tokens, lenient=lenient, skips=skips)
        length_of = {id(ex): int(n) for ex, n in zip(examples, lengths)}
        examples = kept
        if not examples:
            print(f"task {task}: no examples in the configured data, left out of the mixture")
            continue
        with_photo = [ex for ex in examples if ex.image is not None]
        text_only = [ex for ex in examples if ex.image is None]
        parts = (
            [(task, with_photo), (f"{task} (text only)", text_only)] if with_photo and text_only else [(task, examples)]
        )
        for name, part in parts:
            weight_part = float(weight) * len(part) / len(examples)
            out.append(TaskSource(name, part, weight_part, lengths=[length_of[id(ex)] for ex in part]))
    if not out:
        raise ConfigError(
            f"none of the stage's tasks {list(weights)} has examples left; check the data paths and what was skipped"
        )
    return out
