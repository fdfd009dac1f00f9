"""Predictions on M2E2-shaped data: items -> prompts -> batched (constrained) decoding ->
parse -> predictions. `mode=predict` (`modes/predict.py`) runs it on M2E2; the training run
calls `predict_records` on held-out data.

Per item:
- every sentence: task `text_ee` (events, triggers, argument spans) -> a `text` record;
- every photo with a file: task `visual_ee` (event type, role boxes) -> an `image` record.
  Photos without a file are counted as missing; their sentences fall back to text only.
  A model without vision (a text-only family) skips every photo and counts them
  (`images_skipped_text_only`): its predictions are text only.
Prompts are the training prompts (`render.render_*` of the item without its gold events,
chat-formatted by `Featurizer.prompt_features`), images resized to `image_side` as in training;
box codes are read in that square frame and mapped back to the photo's pixels.

Cross-media coreference (no gold labels involved), pipelines "joint" and "stage2": for every
sentence and every photo of its document (the sentence's `images` field), if the photo's
predicted event (its first one, the one the scorer reads) has a type that the sentence's
predicted events also have, the pair becomes a `coref` record of that type. Pipeline
"multimedia" decodes text and photos as "stage2" does, then asks the model about every
(sentence, photo-on-disk) pair of a document (task `multimedia`, sentence and photo in one
prompt); every pair answered with an event of type T becomes a coref record of type T. The text
and image records stay those of the single-modality decode: merging the joint answers into them
lowered text_event and image_event on a synthetic dev split, with no gain in the multimedia
settings (benchmarks/demo_cpu.md).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping, Sequence

from rmpl_jax.data.featurize import Featurizer
from rmpl_jax.data.images import open_photo
from rmpl_jax.data.multimedia_pairs import document_photos
from rmpl_jax.infer.constrained import (
    example_constraint,
    task_grammar,
    value_shape,
    vocab_for,
)
from rmpl_jax.infer.decode import Decoder, Prompt, pick_bucket
from rmpl_jax.infer.settings import PIPELINES, DecodeSettings
from rmpl_jax.io.progress import progress as progress_bar
from rmpl_jax.m2e2 import grammar, parse, render
from rmpl_jax.m2e2.boxes import BoxCodec
from rmpl_jax.m2e2.candidates import scaled
from rmpl_jax.m2e2.predictions import ImagePrediction, PredictionSet, TextPrediction
from rmpl_jax.m2e2.records import (
    Box,
    BoxArgument,
    CorefPair,
    ImageEvent,
    ImageItem,
    MultimediaPair,
    Sentence,
    image_id_of,
)
from rmpl_jax.models.family import family_of


@dataclasses.dataclass
class _Item:
    key: str
    example: grammar.Example
    prompt: Prompt | None = None  # built lazily for images (pixels are large)


def _image_size(item: ImageItem, sizes: Mapping[str, tuple[int, int]] | None) -> tuple[int, int]:
    if sizes is not None and item.image_id in sizes:
        w, h = sizes[item.image_id]
        return int(w), int(h)
    with open_photo(item.path) as im:  # reads the header only (of a local file)
        return im.size


def _to_original(events, frame: tuple[int, int], size: tuple[int, int]) -> tuple[ImageEvent, ...]:
    """Boxes read in the model's frame -> the photo's pixels."""
    sx, sy = size[0] / frame[0], size[1] / frame[1]
    return tuple(
        ImageEvent(
            e.event_type,
            tuple(
                BoxArgument(a.role, Box(a.box.x1 * sx, a.box.y1 * sy, a.box.x2 * sx, a.box.y2 * sy))
                for a in e.arguments
            ),
        )
        for e in events
    )


def coref_pairs(
    sentences: Iterable[Sentence], text: Mapping[str, TextPrediction], images: Mapping[str, ImagePrediction]
) -> list[CorefPair]:
    """The module docstring's rule: a sentence and a photo of its document whose predicted
    event types meet (the photo's first event) form a pair of that type."""
    out = []
    for s in sentences:
        pred = text.get(s.sentence_id)
        types = {e.event_type for e in pred.events} if pred else set()
        for name in dict.fromkeys(s.images):
            image = images.get(image_id_of(name))
            if image is not None and image.events and image.events[0].event_type in types:
                out.append(CorefPair(s.sentence_id, image.image_id, image.events[0].event_type))
    return list(dict.fromkeys(out))


def _decode(
    runner: _Run, task: str, items: list[_Item], sort: bool, failures: dict[str, list[int]]
) -> dict[str, grammar.Parsed]:
    """Decodes and parses one task's items; counts parse failures per task."""
    runner.bar.total += len(items)
    runner.bar.refresh()
    runner.stats["decoded_items"] += len(items)
    out = runner.texts(task, items, sort)
    parsed = {}
    counts = failures.setdefault(task, [0, 0])
    for item in items:
        p = parse.parse(out[item.key], item.example.context)
        counts[0] += p.failures
        counts[1] += int(p.failures > 0)
        parsed[item.key] = p
    return parsed


def _text_events(runner, sentences: list[Sentence], pipeline: str, failures, brief: bool) -> dict[str, list]:
    blank = {s.sentence_id: dataclasses.replace(s, events=()) for s in sentences}
    if pipeline == "joint":
        items = [_Item(k, render.render_text_ee(s, brief)) for k, s in blank.items()]
        return {k: list(p.events) for k, p in _decode(runner, "text_ee", items, True, failures).items()}
    items = [_Item(k, render.render_text_mention(s, brief)) for k, s in blank.items()]
    mentions = _decode(runner, "text_mention", items, True, failures)
    arg_items = [
        _Item(f"{k}\t{n}", render.render_text_argument(blank[k], e, brief))
        for k, p in mentions.items()
        for n, e in enumerate(p.events)
    ]
    events: dict[str, list] = {k: [] for k in blank}
    for key, p in _decode(runner, "text_argument", arg_items, True, failures).items():
        events[key.split("\t")[0]].extend(p.events)
    return events


def _in_frame(item: ImageItem, task: str, candidate_tasks, frame, size) -> ImageItem:
    """The bare item the prompt of `task` shows: no events; candidates, scaled into the
    model's frame, only when the task lists them."""
    if task not in candidate_tasks or item.candidates is None:
        return dataclasses.replace(item, events=(), candidates=None)
    return dataclasses.replace(
        item, events=(), candidates=scaled(item.candidates, frame[0] / size[0], frame[1] / size[1])
    )


def _image_events(
    runner, present: list[ImageItem], frames, sizes, codec, pipeline: str, failures, candidate_tasks
) -> dict[str, list]:
    task = "visual_ee" if pipeline == "joint" else "image_argument"
    blank = {i.image_id: _in_frame(i, task, candidate_tasks, frames[i.image_id], sizes[i.image_id]) for i in present}
    if pipeline == "joint":
        items = [_Item(k, render.render_visual_ee(i, frames[k], codec)) for k, i in blank.items()]
        return {k: list(p.events) for k, p in _decode(runner, "visual_ee", items, False, failures).items()}
    items = [_Item(k, render.render_image_mention(i)) for k, i in blank.items()]
    mentions = _decode(runner, "image_mention", items, False, failures)
    arg_items = [
        _Item(f"{k}\t{n}", render.render_image_argument(blank[k], e, frames[k], codec))
        for k, p in mentions.items()
        for n, e in enumerate(p.events)
    ]
    events: dict[str, list] = {k: [] for k in blank}
    for key, p in _decode(runner, "image_argument", arg_items, False, failures).items():
        events[key.split("\t")[0]].extend(p.events)
    return events


def _multimedia_answers(
    runner, pairs: list[tuple[Sentence, ImageItem]], frames, sizes, codec, failures, candidate_tasks, brief
) -> dict[tuple[str, str], tuple]:
    """(sentence_id, image_id) -> the multimedia answer of each (sentence, photo) pair."""
    items = []
    for sentence, photo in pairs:
        k = photo.image_id
        framed = _in_frame(photo, grammar.MULTIMEDIA, candidate_tasks, frames[k], sizes[k])
        blank = MultimediaPair(dataclasses.replace(sentence, events=()), framed)
        items.append(_Item(f"{sentence.sentence_id}\t{k}", render.render_multimedia(blank, frames[k], codec, brief)))
    parsed = _decode(runner, grammar.MULTIMEDIA, items, False, failures)
    return {tuple(item.key.split("\t")): parsed[item.key].events for item in items}


class _Run:
    """Decodes the items of one task in length-sorted batches, one batch in flight while the
    next is prepared (tokenizing, pixels, constraint tables run on the host meanwhile)."""

    def __init__(self, decoder: Decoder, featurizer: Featurizer, constrained: bool, bar, stats: dict):
        self.decoder, self.featurizer = decoder, featurizer
        self.constrained, self.bar, self.stats = constrained, bar, stats
        self.vocab = vocab_for(featurizer.processor.tokenizer, featurizer.processor.end_of_turn)
        self.names = featurizer.processor.tokenizer.convert_ids_to_tokens(list(range(len(self.vocab.pieces))))

    def _prompt(self, item: _Item, grammar) -> Prompt:
        if item.prompt is None:
            f = self.featurizer.prompt_features(item.example)
            images = {k: v for k, v in f.items() if k != "input_ids"}
            item.prompt = Prompt(f["input_ids"], images or None)
        if grammar is not None and item.prompt.constraint is None:
            item.prompt = dataclasses.replace(item.prompt, constraint=example_constraint(grammar, item.example.context))
        return item.prompt

    def texts(self, task: str, items: Sequence[_Item], sort: bool) -> dict[str, str]:
        if not items:
            return {}
        grammar = task_grammar(task, self.vocab) if self.constrained else None
        order = list(range(len(items)))
        hints: dict[int, tuple[int, int]] = {}
        if sort:  # similar lengths share a bucket: less padding
            for item in items:
                self._prompt(item, grammar)
            order.sort(key=lambda i: len(items[i].prompt.input_ids))
            if grammar is not None:  # one value-table shape per prompt bucket: one compile each
                by_bucket: dict[int, list] = {}
                for item in items:
                    bucket = pick_bucket(len(item.prompt.input_ids), self.decoder.buckets)
                    by_bucket.setdefault(bucket, []).append(item.prompt.constraint)
                hints = {b: value_shape(cs) for b, cs in by_bucket.items()}
        out: dict[str, str] = {}
        pending = None
        bs = self.decoder.batch_size
        for start in range(0, len(order) + bs, bs):
            batch = [items[i] for i in order[start : start + bs]]
            submitted = None
            if batch:
                prompts = [self._prompt(it, grammar) for it in batch]
                hint = hints.get(pick_bucket(max(len(p.input_ids) for p in prompts), self.decoder.buckets))
                submitted = (batch, self.decoder.submit(prompts, grammar, shape_hint=hint))
                if not sort:
                    for it in batch:  # free the pixels
                        it.prompt = None
            if pending is not None:
                done_items, handle = pending
                for it, gen in zip(done_items, handle.result()):
                    out[it.key] = self.vocab.text(gen.tokens, self.names)
                    self.stats["tokens"] += len(gen.tokens)
                    self.stats["unfinished"] += int(not gen.finished)
                self.bar.update(len(done_items))
            pending = submitted
        return out


def predict_records(
    model,
    processor,
    settings: DecodeSettings,
    *,
    sentences: Iterable[Sentence],
    images: Iterable[ImageItem] = (),
    image_sizes: Mapping[str, tuple[int, int]] | None = None,
    codec: BoxCodec | None = None,
    image_side: int | None = None,
    progress: bool = True,
    seed: int = 0,
    candidate_tasks: Sequence[str] = (),
    brief_prompts: bool = False,
) -> tuple[PredictionSet, dict]:
    """Text events for every sentence, image events for every photo with a file, coref pairs.

    settings: how to decode (`infer.settings.DecodeSettings`: batch size, budget, buckets,
    constrained or not, temperature, no_event_penalty, pipeline and pair_filter); its pipeline
    must be resolved ('auto' is a config value: `DecodeSettings.resolved`). "joint" asks for
    whole events at once (stage-1 tasks text_ee, visual_ee); "stage2" first identifies event
    mentions (text_mention, image_mention), then asks for each mention's arguments
    (text_argument, image_argument) — what stage 2 trains; "multimedia" is "stage2" plus the
    multimedia task on (sentence, photo) pairs of a document, whose answers decide the coref
    records (the module docstring). pair_filter (multimedia): "events" asks only about pairs
    whose sentence and photo both got an event from the stage-2 decode (gold-free; fewer pairs,
    and on a synthetic dev split a little better than "all"); "all" about every document pair.
    no_event_penalty lowers the logits of a `none` answer to the mention tasks and the
    multimedia task (`Decoder`), so more sentences, photos and pairs get events.
    candidate_tasks: the box tasks (visual_ee, image_argument) whose prompts list each photo's
    `candidates` (detector boxes) and whose boxes copy one of them (`m2e2/candidates.py`).
    brief_prompts: the text tasks' prompts as trained with `data.prompts="brief"`. seed: the
    sampling seed (temperature > 0).

    model: a family's model (`models.family.CausalLM`; LoRA adapters may be attached).
    processor: the family's processor, with a tokenizer. image_sizes: image_id -> (width,
    height) of the photo (read from the file when absent). codec: the box codec used in
    training (`ModelFamily.box_codec`; needed when the model takes images). image_side: the
    training square side (None: photos at their own size). Returns (predictions, stats):
    stats counts items, missing photos, photos skipped by a text-only model, parse failures
    per task, unfinished generations, tokens, seconds and items/s.
    """
    if settings.pipeline not in PIPELINES:
        raise ValueError(
            f"pipeline {settings.pipeline!r} is not one of {PIPELINES} (resolve 'auto' with DecodeSettings.resolved)"
        )
    pipeline, pair_filter, constrained = settings.pipeline, settings.pair_filter, settings.constrained
    tokenizer = processor.tokenizer
    if tokenizer is None:
        raise ValueError(f"{processor.source}: predicting needs tokenizer files in the model directory")
    sentences = list(sentences)
    images = list(images)
    takes_images = family_of(model).has_vision(model.config)
    if takes_images and codec is None and any(i.path for i in images):
        raise ValueError("predicting photos needs the box codec the model was trained with (codec=)")
    eos = tokenizer.convert_tokens_to_ids(processor.end_of_turn)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    decoder = Decoder(
        model,
        batch_size=settings.batch_size,
        max_new_tokens=settings.max_new_tokens,
        eos_ids=(eos,),
        pad_id=pad,
        buckets=settings.buckets,
        temperature=settings.temperature,
        seed=seed,
        no_event_penalty=settings.no_event_penalty,
    )
    traces_before = decoder.traces
    featurizer = Featurizer(processor, image_side)

    known = {i.image_id: i for i in images}
    present = [i for i in images if i.path]
    skipped = present if not takes_images else []
    present = present if takes_images else []
    missing = sorted(
        {i.image_id for i in images if not i.path} | {image_id_of(f) for s in sentences for f in s.images} - set(known)
    )
    sizes = {item.image_id: _image_size(item, image_sizes) for item in present}
    frames = {k: (image_side, image_side) if image_side else size for k, size in sizes.items()}

    stats = {
        "sentences": len(sentences),
        "images": len(present),
        "missing_images": len(missing),
        "images_skipped_text_only": len(skipped),
        "missing_image_ids": missing[:50],
        "sentences_with_missing_images": sum(
            1 for s in sentences if any(image_id_of(f) in set(missing) for f in s.images)
        ),
        "constrained": bool(constrained),
        "pipeline": pipeline,
        "pair_filter": pair_filter if pipeline == "multimedia" else None,
        "candidate_tasks": list(candidate_tasks),
        "no_event_penalty": float(settings.no_event_penalty),
        "decoded_items": 0,
        "tokens": 0,
        "unfinished": 0,
    }
    bar = progress_bar(0, "predict", "item", disable=not progress)
    runner = _Run(decoder, featurizer, constrained, bar, stats)
    failures: dict[str, list[int]] = {}
    start = time.perf_counter()
    per_item = "joint" if pipeline == "joint" else "stage2"
    text_events = _text_events(runner, sentences, per_item, failures, brief_prompts)
    image_events = _image_events(runner, present, frames, sizes, codec, per_item, failures, tuple(candidate_tasks))
    coref = None
    if pipeline == "multimedia":  # the documents' own pairs (no gold), photos on disk
        photos = {i.image_id: i for i in present}
        pairs = [
            (s, photo)
            for s in sentences
            for photo in document_photos(s, photos)
            if pair_filter == "all" or (text_events[s.sentence_id] and image_events[photo.image_id])
        ]
        before = time.perf_counter()
        answers = _multimedia_answers(
            runner, pairs, frames, sizes, codec, failures, tuple(candidate_tasks), brief_prompts
        )
        coref = [CorefPair(s, i, events[0].event_type) for (s, i), events in answers.items() if events]
        stats["multimedia_pairs"] = len(pairs)
        stats["multimedia_seconds"] = round(time.perf_counter() - before, 3)
    seconds = time.perf_counter() - start
    bar.close()

    predictions = PredictionSet()
    predictions.text = [TextPrediction(s.sentence_id, tuple(text_events[s.sentence_id])) for s in sentences]
    predictions.images = [
        ImagePrediction(i.image_id, _to_original(image_events[i.image_id], frames[i.image_id], sizes[i.image_id]))
        for i in present
    ]
    if coref is None:
        coref = coref_pairs(
            sentences, {p.sentence_id: p for p in predictions.text}, {p.image_id: p for p in predictions.images}
        )
    predictions.coref = coref
    n = stats["decoded_items"]
    stats.update(
        parse_failures={k: v[0] for k, v in failures.items()},
        items_with_failures={k: v[1] for k, v in failures.items()},
        coref_pairs=len(predictions.coref),
        seconds=round(seconds, 3),
        items_per_s=round(n / seconds, 3) if seconds > 0 else None,
        tokens_per_s=round(stats["tokens"] / seconds, 1) if seconds > 0 else None,
        decode_compiles=decoder.traces - traces_before,
    )
    return predictions, stats
