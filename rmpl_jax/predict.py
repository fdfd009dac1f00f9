"""Predictions on M2E2-shaped data: items -> prompts -> batched (constrained) decoding ->
parse -> predictions (JSONL) -> strict scores. `mode=predict` runs it on M2E2; the training
loop calls `predict_records` on held-out data.

Per item:
- every sentence: task `text_ee` (events, triggers, argument spans) -> a `text` record;
- every photo with a file: task `visual_ee` (event type, role boxes) -> an `image` record.
  Photos without a file are counted as missing; their sentences fall back to text only.
Prompts are the training prompts (`tasks.render_*` of the item without its gold events,
chat-formatted by `Featurizer.prompt_features`), images resized to `image_side` as in training;
box codes are read in that square frame and mapped back to the photo's pixels.

Cross-media coreference (no gold labels involved): for every sentence and every photo of its
document (the sentence's `images` field), if the photo's predicted event (its first one, the
one the scorer reads) has a type that the sentence's predicted events also have, the pair
becomes a `coref` record of that type.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from rmpl_jax import tasks
from rmpl_jax.boxes import BoxCodec, codec_for, square_frame_codec
from rmpl_jax.constrained import END_OF_TURN, example_constraint, task_grammar, value_shape, vocab_for
from rmpl_jax.decode import DEFAULT_BUCKETS, Decoder, Prompt, pick_bucket
from rmpl_jax.featurize import Featurizer
from rmpl_jax.predictions import ImagePrediction, PredictionSet, TextPrediction
from rmpl_jax.records import Box, BoxArgument, CorefPair, ImageEvent, ImageItem, Sentence, image_id_of


@dataclasses.dataclass
class _Item:
    key: str
    example: tasks.Example
    prompt: Prompt | None = None  # built lazily for images (pixels are large)


def _image_size(item: ImageItem, sizes: Mapping[str, tuple[int, int]] | None) -> tuple[int, int]:
    if sizes is not None and item.image_id in sizes:
        w, h = sizes[item.image_id]
        return int(w), int(h)
    from PIL import Image

    with Image.open(item.path) as im:  # reads the header only
        return im.size


def _to_original(events, frame: tuple[int, int], size: tuple[int, int]) -> tuple[ImageEvent, ...]:
    """Boxes read in the model's frame -> the photo's pixels."""
    sx, sy = size[0] / frame[0], size[1] / frame[1]
    return tuple(ImageEvent(e.event_type, tuple(
        BoxArgument(a.role, Box(a.box.x1 * sx, a.box.y1 * sy, a.box.x2 * sx, a.box.y2 * sy))
        for a in e.arguments)) for e in events)


def coref_pairs(sentences: Iterable[Sentence], text: Mapping[str, TextPrediction],
                images: Mapping[str, ImagePrediction]) -> list[CorefPair]:
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


PIPELINES = ("joint", "stage2")


def _decode(runner: "_Run", task: str, items: list[_Item], sort: bool,
            failures: dict[str, list[int]]) -> dict[str, tasks.Parsed]:
    """Decodes and parses one task's items; counts parse failures per task."""
    runner.bar.total += len(items)
    runner.bar.refresh()
    runner.stats["decoded_items"] += len(items)
    out = runner.texts(task, items, sort)
    parsed = {}
    counts = failures.setdefault(task, [0, 0])
    for item in items:
        p = tasks.parse(out[item.key], item.example.context)
        counts[0] += p.failures
        counts[1] += int(p.failures > 0)
        parsed[item.key] = p
    return parsed


def _text_events(runner, sentences: list[Sentence], pipeline: str, failures) -> dict[str, list]:
    blank = {s.sentence_id: dataclasses.replace(s, events=()) for s in sentences}
    if pipeline == "joint":
        items = [_Item(k, tasks.render_text_ee(s)) for k, s in blank.items()]
        return {k: list(p.events) for k, p in _decode(runner, "text_ee", items, True, failures).items()}
    items = [_Item(k, tasks.render_text_mention(s)) for k, s in blank.items()]
    mentions = _decode(runner, "text_mention", items, True, failures)
    arg_items = [_Item(f"{k}\t{n}", tasks.render_text_argument(blank[k], e))
                 for k, p in mentions.items() for n, e in enumerate(p.events)]
    events: dict[str, list] = {k: [] for k in blank}
    for key, p in _decode(runner, "text_argument", arg_items, True, failures).items():
        events[key.split("\t")[0]].extend(p.events)
    return events


def _image_events(runner, present: list[ImageItem], frames, codec, pipeline: str,
                  failures) -> dict[str, list]:
    blank = {i.image_id: dataclasses.replace(i, events=()) for i in present}
    if pipeline == "joint":
        items = [_Item(k, tasks.render_visual_ee(i, frames[k], codec)) for k, i in blank.items()]
        return {k: list(p.events) for k, p in _decode(runner, "visual_ee", items, False, failures).items()}
    items = [_Item(k, tasks.render_image_mention(i)) for k, i in blank.items()]
    mentions = _decode(runner, "image_mention", items, False, failures)
    arg_items = [_Item(f"{k}\t{n}", tasks.render_image_argument(blank[k], e, frames[k], codec))
                 for k, p in mentions.items() for n, e in enumerate(p.events)]
    events: dict[str, list] = {k: [] for k in blank}
    for key, p in _decode(runner, "image_argument", arg_items, False, failures).items():
        events[key.split("\t")[0]].extend(p.events)
    return events


class _Run:
    """Decodes the items of one task in length-sorted batches, one batch in flight while the
    next is prepared (tokenizing, pixels, constraint tables run on the host meanwhile)."""

    def __init__(self, decoder: Decoder, featurizer: Featurizer, constrained: bool, bar, stats: dict):
        self.decoder, self.featurizer = decoder, featurizer
        self.constrained, self.bar, self.stats = constrained, bar, stats
        self.vocab = vocab_for(featurizer.processor.tokenizer)
        self.names = featurizer.processor.tokenizer.convert_ids_to_tokens(list(range(len(self.vocab.pieces))))

    def _prompt(self, item: _Item, grammar) -> Prompt:
        if item.prompt is None:
            f = self.featurizer.prompt_features(item.example)
            item.prompt = Prompt(f["input_ids"], f.get("pixel_values"), f.get("image_grid_thw"))
        if grammar is not None and item.prompt.constraint is None:
            item.prompt = dataclasses.replace(item.prompt,
                                              constraint=example_constraint(grammar, item.example.context))
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
            batch = [items[i] for i in order[start:start + bs]]
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


def predict_records(model, processor, *, sentences: Iterable[Sentence], images: Iterable[ImageItem] = (),
                    image_sizes: Mapping[str, tuple[int, int]] | None = None, codec: BoxCodec | None = None,
                    image_side: int | None = None, batch_size: int = 16, max_new_tokens: int = 128,
                    constrained: bool = True, temperature: float = 0.0,
                    buckets: Sequence[int] = DEFAULT_BUCKETS, progress: bool = True,
                    seed: int = 0, pipeline: str = "joint") -> tuple[PredictionSet, dict]:
    """Text events for every sentence, image events for every photo with a file, coref pairs.

    pipeline: "joint" asks for whole events at once (stage-1 tasks text_ee, visual_ee);
    "stage2" first identifies event mentions (text_mention, image_mention), then asks for
    each mention's arguments (text_argument, image_argument) — what stage 2 trains.

    model: an NNX Qwen2VL (LoRA adapters may be attached). processor: `QwenProcessor` with a
    tokenizer. image_sizes: image_id -> (width, height) of the photo (read from the file when
    absent). codec: the box codec used in training (default: the family's). image_side: the
    training square side (None: photos at their own size). Returns (predictions, stats):
    stats counts items, missing photos, parse failures per task, unfinished generations,
    tokens, seconds and items/s.
    """
    from tqdm import tqdm

    if pipeline not in PIPELINES:
        raise ValueError(f"pipeline {pipeline!r} is not one of {PIPELINES}")
    tokenizer = processor.tokenizer
    if tokenizer is None:
        raise ValueError(f"{processor.source}: predicting needs tokenizer files in the model directory")
    sentences = list(sentences)
    images = list(images)
    codec = codec or codec_for(processor.model_type)
    eos = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    decoder = Decoder(model, batch_size=batch_size, max_new_tokens=max_new_tokens, eos_ids=(eos,),
                      pad_id=pad, buckets=buckets, temperature=temperature, seed=seed)
    traces_before = decoder.traces
    featurizer = Featurizer(processor, image_side)

    known = {i.image_id: i for i in images}
    present = [i for i in images if i.path]
    missing = sorted({i.image_id for i in images if not i.path}
                     | {image_id_of(f) for s in sentences for f in s.images} - set(known))
    sizes = {item.image_id: _image_size(item, image_sizes) for item in present}
    frames = {k: (image_side, image_side) if image_side else size for k, size in sizes.items()}

    stats = {"sentences": len(sentences), "images": len(present), "missing_images": len(missing),
             "missing_image_ids": missing[:50],
             "sentences_with_missing_images": sum(
                 1 for s in sentences if any(image_id_of(f) in set(missing) for f in s.images)),
             "constrained": bool(constrained), "pipeline": pipeline, "decoded_items": 0, "tokens": 0,
             "unfinished": 0}
    bar = tqdm(total=0, unit="item", desc="predict", disable=not progress)
    runner = _Run(decoder, featurizer, constrained, bar, stats)
    failures: dict[str, list[int]] = {}
    start = time.perf_counter()
    text_events = _text_events(runner, sentences, pipeline, failures)
    image_events = _image_events(runner, present, frames, codec, pipeline, failures)
    seconds = time.perf_counter() - start
    bar.close()

    predictions = PredictionSet()
    predictions.text = [TextPrediction(s.sentence_id, tuple(text_events[s.sentence_id]))
                        for s in sentences]
    predictions.images = [ImagePrediction(i.image_id, _to_original(
        image_events[i.image_id], frames[i.image_id], sizes[i.image_id])) for i in present]
    predictions.coref = coref_pairs(sentences, {p.sentence_id: p for p in predictions.text},
                                    {p.image_id: p for p in predictions.images})
    n = stats["decoded_items"]
    stats.update(
        parse_failures={k: v[0] for k, v in failures.items()},
        items_with_failures={k: v[1] for k, v in failures.items()},
        coref_pairs=len(predictions.coref), seconds=round(seconds, 3),
        items_per_s=round(n / seconds, 3) if seconds > 0 else None,
        tokens_per_s=round(stats["tokens"] / seconds, 1) if seconds > 0 else None,
        decode_compiles=decoder.traces - traces_before)
    return predictions, stats


# ------------------------------------------------------------------------------ mode=predict

def _checkpoint_params(directory: str, step: int | None):
    """(step, {name: array}) of the `params` item of a training checkpoint (rmpl_jax.checkpoint)."""
    import orbax.checkpoint as ocp

    directory = os.path.abspath(directory)
    mgr = ocp.CheckpointManager(directory, item_handlers={"params": ocp.StandardCheckpointHandler()},
                                options=ocp.CheckpointManagerOptions(create=False, read_only=True))
    try:
        step = mgr.latest_step() if step is None else step
        if step is None or step not in mgr.all_steps():
            raise FileNotFoundError(f"{directory}: no checkpoint{'' if step is None else f' for step {step}'} "
                                    f"(have {list(mgr.all_steps())})")
        params = mgr.restore(step, args=ocp.args.Composite(params=ocp.args.StandardRestore()))["params"]
    finally:
        mgr.close()
    return step, dict(params)


def load_model(model_config, checkpoint: str = "", checkpoint_step: int | None = None):
    """The model of `model_config.hf_dir` (HF weights if it has safetensors, else random init),
    with a training checkpoint's params (LoRA adapters are attached first when it has them)."""
    from flax import nnx

    from rmpl_jax import train_step as ts
    from rmpl_jax.models import lora, registry

    hf_dir = model_config.hf_dir
    if not hf_dir:
        raise ValueError("config.model.hf_dir is required (an HF directory, or a run's demo_model/)")
    family = registry.family_for_dir(hf_dir)
    dtype = model_config.get("dtype", "float32")
    if glob.glob(os.path.join(hf_dir, "*.safetensors")):
        model = family.load_hf(hf_dir, dtype=dtype)
    elif checkpoint:
        with open(os.path.join(hf_dir, "config.json")) as f:
            model = family.build(family.config_from_hf(json.load(f)), dtype=dtype, rngs=nnx.Rngs(0))
    else:
        raise ValueError(f"{hf_dir} holds no *.safetensors weights and no checkpoint was given")
    if not checkpoint:
        return model, None
    step, params = _checkpoint_params(checkpoint, checkpoint_step)
    if any("lora_" in name for name in params):
        lora.apply_lora(model, model_config.lora_rank, model_config.lora_alpha, model_config.lora_targets,
                        rngs=nnx.Rngs(0))
    layout, trainable, frozen = ts.split_model(model, ".")
    unknown = sorted(set(params) - set(trainable))
    if unknown:
        raise ValueError(f"{checkpoint} step {step}: params not in the model: {unknown[:5]}"
                         f"{' ...' if len(unknown) > 5 else ''} (check lora_rank/lora_targets)")
    for name, value in params.items():
        if tuple(value.shape) != tuple(trainable[name].shape):
            raise ValueError(f"{checkpoint} step {step}: {name} has shape {tuple(value.shape)}, "
                             f"the model {tuple(trainable[name].shape)} (check lora_rank)")
        trainable[name] = np.asarray(value).astype(trainable[name].dtype)
    print(f"loaded {len(params)} params from {checkpoint} step {step}")
    return layout.merge(trainable, frozen), step


def _limit(corpus, n: int):
    """The first n sentences with their photos and pairs (a smoke run scores only those)."""
    sentences = dict(list(corpus.sentences.items())[:n])
    ids = {image_id_of(f) for s in sentences.values() for f in s.images}
    images = {k: v for k, v in corpus.images.items() if k in ids}
    coref = tuple(c for c in corpus.coref if c.sentence_id in sentences and c.image_id in images)
    missing = tuple(i for i in corpus.missing_images if i in ids)
    return dataclasses.replace(corpus, sentences=sentences, images=images, coref=coref,
                               missing_images=missing)


def run(config, workdir: str) -> dict:
    """`mode=predict`: writes workdir/predictions.jsonl and workdir/metrics.json (strict)."""
    from rmpl_jax.data.m2e2 import read_m2e2
    from rmpl_jax.evaluate import score
    from rmpl_jax.paths import shared_data_path
    from rmpl_jax.predictions import read_predictions, write_predictions
    from rmpl_jax.processor import QwenProcessor
    from rmpl_jax.score_table import format_table

    m2e2_dir = config.m2e2_dir or shared_data_path("m2e2")
    corpus = read_m2e2(m2e2_dir, config.images_dir or None, lenient=config.lenient)
    if config.limit:
        corpus = _limit(corpus, int(config.limit))
    print(f"M2E2: {len(corpus.sentences)} sentences, {len(corpus.images)} photos "
          f"({sum(1 for i in corpus.images.values() if i.path)} on disk), {len(corpus.coref)} pairs")
    step = config.checkpoint_step if config.checkpoint_step >= 0 else None
    model, step = load_model(config.model, config.checkpoint, step)
    processor = QwenProcessor.from_dir(config.model.hf_dir)
    side = config.image_side or None
    if side:
        codec = square_frame_codec(processor.model_type, side, processor.patch_size * processor.merge_size)
    else:
        codec = codec_for(processor.model_type)
    predictions, stats = predict_records(
        model, processor, sentences=corpus.sentences.values(), images=corpus.images.values(),
        codec=codec, image_side=side, batch_size=config.batch_size, max_new_tokens=config.max_new_tokens,
        constrained=config.constrained, temperature=config.temperature, buckets=tuple(config.buckets),
        seed=config.seed, pipeline=config.pipeline)
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "predictions.jsonl")
    write_predictions(path, predictions)
    report = score(corpus, read_predictions(path))  # scores what the file says, validated
    print(format_table(report))
    print(json.dumps({k: v for k, v in stats.items() if k != "missing_image_ids"}))
    metrics = report.as_dict()
    metrics["predict"] = dict(stats, checkpoint=config.checkpoint or None, checkpoint_step=step,
                              limit=int(config.limit))
    with open(os.path.join(workdir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1)
    print(f"wrote {path} and {os.path.join(workdir, 'metrics.json')}")
    return metrics
