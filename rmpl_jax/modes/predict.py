"""`mode=predict`: decode M2E2 with a trained model, write `W/predictions.jsonl`, the strict
scores `W/metrics.json` and the HTML report `W/report.html`.

The model is `model.hf_dir` (HF weights, or the architecture alone when a checkpoint brings the
weights) plus a training checkpoint's params. What the model was trained with — base model
directory, image side, LoRA rank/alpha/targets, dtype — comes from that run's `config.json`
(found beside the checkpoint, or in an export's directory) unless the config sets it.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os

import jax
import numpy as np
from flax import nnx

from rmpl_jax.data.curriculum import CandidateSettings, with_detections
from rmpl_jax.data.detections import read_detections
from rmpl_jax.data.m2e2 import read_m2e2, readable_photos
from rmpl_jax.eval.report import write_report
from rmpl_jax.eval.scorer import score
from rmpl_jax.eval.tables import format_table
from rmpl_jax.infer.predict import predict_records
from rmpl_jax.infer.settings import DecodeSettings
from rmpl_jax.io import paths
from rmpl_jax.io.run_config import find_run_config
from rmpl_jax.io.shared_data import shared_data_path
from rmpl_jax.io.skips import SkipRegistry
from rmpl_jax.m2e2.candidates import oracle_summary
from rmpl_jax.m2e2.doc_split import read_doc_split, select_documents
from rmpl_jax.m2e2.predictions import read_predictions, write_predictions
from rmpl_jax.m2e2.records import image_id_of
from rmpl_jax.models import lora
from rmpl_jax.modes.validate import validate_predict
from rmpl_jax.train import sharding as shd
from rmpl_jax.train.checkpoint import read_params
from rmpl_jax.train.model_setup import HF_MESH, family_and_config, lora_targets
from rmpl_jax.train.state import split_model

# Settings a prediction takes from the training run when its own config leaves them unset:
# (key in the predict config, key path in the run's config, default without a run).
FROM_RUN = (
    ("model.hf_dir", ("model", "hf_dir"), ""),
    ("model.dtype", ("model", "dtype"), "float32"),
    ("model.lora_rank", ("model", "lora_rank"), 16),
    ("model.lora_alpha", ("model", "lora_alpha"), 32.0),
    ("model.lora_targets", ("model", "lora_targets"), ""),  # '': the family's default
    ("image_side", ("data", "image_side"), 448),
    ("prompts", ("data", "prompts"), "full"),
    ("candidates.use", ("data", "candidates", "use"), False),
    ("candidates.tasks", ("data", "candidates", "tasks"), ("visual_ee", "image_argument")),
    ("candidates.min_score", ("data", "candidates", "min_score"), 0.25),
    ("candidates.max_per_image", ("data", "candidates", "max_per_image"), 10),
)


def _run_value(run: dict | None, path: tuple[str, ...]):
    value = run
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def resolve_from_run(config) -> dict | None:
    """Fills the FROM_RUN settings that `config` leaves unset (None or '') from the training
    run of `config.checkpoint` (or of `config.model.hf_dir`, an export); returns that run's
    config (None when none was found). Explicit settings always win."""
    run = None
    for place in (config.checkpoint, config.model.hf_dir):
        if place and run is None:
            run = find_run_config(place)
    for key, path, default in FROM_RUN:
        block, _, name = key.rpartition(".")
        holder = config[block] if block else config
        if holder[name] in (None, ""):
            found = _run_value(run, path)
            found = tuple(found) if isinstance(found, list) else found  # JSON lists: config tuples
            holder[name] = found if found not in (None, "") else default
    return run


def decode_settings(config, run: dict | None) -> DecodeSettings:
    """The `decode` block's settings, an 'auto' pipeline resolved by the stages of the training
    run (`run`: its config.json; None: 'stage2')."""
    stages = tuple(_run_value(run, ("stages",)) or ())
    last_tasks = _run_value(run, (stages[-1], "tasks")) if stages else None
    return DecodeSettings.from_config(config.decode).resolved(stages, last_tasks)


def load_model(model_config, checkpoint: str = "", checkpoint_step: int | None = None, *, merge: bool = False):
    """The model of `model_config.hf_dir` (HF weights if it has safetensors, else random init),
    with a training checkpoint's params (LoRA adapters are attached first when it has them).

    Every weight lives on the device mesh once, sharded over all devices (fsdp), so decoding
    never copies weights from the host; `merge` folds LoRA adapters into their kernels (one
    matmul per projection instead of three)."""
    hf_dir = model_config.hf_dir
    if not hf_dir:
        raise ValueError("config.model.hf_dir is required (an HF directory, or a run's demo_model/)")
    family, config = family_and_config(hf_dir)
    dtype = model_config.get("dtype") or "float32"
    mesh = shd.make_mesh(HF_MESH)
    if glob.glob(os.path.join(hf_dir, "*.safetensors")):
        model = family.load_hf(hf_dir, dtype=dtype, shardings=shd.variable_sharding(mesh))
    elif checkpoint:
        model = family.build(config, dtype=dtype, rngs=nnx.Rngs(0))
    else:
        raise ValueError(f"{hf_dir} holds no *.safetensors weights and no checkpoint was given")
    if not checkpoint:
        return _on_mesh(model, mesh, merge), None
    step, params = read_params(checkpoint, checkpoint_step)
    if any("lora_" in name for name in params):
        lora.apply_lora(
            model,
            model_config.lora_rank,
            model_config.lora_alpha,
            lora_targets(model_config.lora_targets, family),
            rngs=nnx.Rngs(0),
        )
    layout, trainable, frozen = split_model(model, ".")
    unknown = sorted(set(params) - set(trainable))
    if unknown:
        raise ValueError(
            f"{checkpoint} step {step}: params not in the model: {unknown[:5]}"
            f"{' ...' if len(unknown) > 5 else ''} (check lora_rank/lora_targets)"
        )
    for name, value in params.items():
        if tuple(value.shape) != tuple(trainable[name].shape):
            raise ValueError(
                f"{checkpoint} step {step}: {name} has shape {tuple(value.shape)}, "
                f"the model {tuple(trainable[name].shape)} (check lora_rank)"
            )
        trainable[name] = np.asarray(value).astype(trainable[name].dtype)
    print(f"loaded {len(params)} params from {checkpoint} step {step}")
    return _on_mesh(layout.merge(trainable, frozen), mesh, merge), step


def _on_mesh(model, mesh, merge: bool):
    """The model with every weight placed on its shards of `mesh` (loaded ones already are:
    no copy), LoRA merged when asked."""
    layout, trainable, frozen = split_model(model, ".")
    shardings = layout.param_shardings({**trainable, **frozen}, mesh)
    trainable, frozen = ({n: jax.device_put(v, shardings[n]) for n, v in d.items()} for d in (trainable, frozen))
    model = layout.merge(trainable, frozen)
    if merge and lora.has_lora(model):
        lora.merge_lora(model)
    return model


def _limit(corpus, n: int):
    """The first n sentences with their photos and pairs (a smoke run scores only those)."""
    sentences = dict(list(corpus.sentences.items())[:n])
    ids = {image_id_of(f) for s in sentences.values() for f in s.images}
    images = {k: v for k, v in corpus.images.items() if k in ids}
    coref = tuple(c for c in corpus.coref if c.sentence_id in sentences and c.image_id in images)
    missing = tuple(i for i in corpus.missing_images if i in ids)
    return dataclasses.replace(corpus, sentences=sentences, images=images, coref=coref, missing_images=missing)


def _photos_only(corpus):
    """The photos of images_dir alone, no sentences (a look at image scores on the few photos
    there are: every score but the image ones is empty)."""
    images = {k: v for k, v in corpus.images.items() if v.path}
    return dataclasses.replace(corpus, sentences={}, images=images, coref=(), missing_images=())


def run(config, workdir: str) -> dict:
    """Writes workdir/predictions.jsonl and workdir/metrics.json (strict); returns the metrics.
    Prints what was skipped, by reason, when it ends."""
    skips = SkipRegistry()
    try:
        return _run(config, workdir, skips)
    finally:
        print(skips.report())


def _run(config, workdir: str, skips: SkipRegistry) -> dict:
    config.checkpoint = validate_predict(config, workdir) or ""
    train_run = resolve_from_run(config)
    if train_run is not None:
        print(
            f"settings from the training run: hf_dir={config.model.hf_dir} dtype={config.model.dtype} "
            f"image_side={config.image_side} lora_rank={config.model.lora_rank}"
        )
    settings = decode_settings(config, train_run)
    print(f"decode: {settings}")
    m2e2_dir = config.m2e2_dir or shared_data_path("m2e2")
    corpus = read_m2e2(m2e2_dir, config.images_dir or None, lenient=config.lenient)
    skips.add_read_report(corpus.report)
    if config.get("split"):
        corpus = select_documents(corpus, read_doc_split(config.split), config.split_part, photos=True)
    if config.limit:
        corpus = _limit(corpus, int(config.limit))
    if config.photos_only:
        corpus = _photos_only(corpus)
    photos = readable_photos(
        corpus.sentences.values(),
        config.images_dir or None,
        lenient=config.lenient,
        skips=skips,
        # a smoke run or a split scores only its sentences' photos
        unreferenced=not (config.limit or config.get("split")),
    )
    print(
        f"M2E2: {len(corpus.sentences)} sentences, {len(photos)} candidate photos "
        f"({sum(1 for p in photos if p.path)} on disk and readable), {len(corpus.coref)} gold pairs"
    )
    candidates = CandidateSettings.from_config(config.candidates)
    oracle = None
    if candidates.tasks:
        path = config.candidates.detections or os.path.join(m2e2_dir, "yolov8_objects.json")
        detections, report = read_detections(path, lenient=config.lenient)
        print(report.summary())
        skips.add_read_report(report)
        photos = with_detections(photos, detections, candidates, skips, path)
        gold = with_detections(corpus.images.values(), detections, candidates, SkipRegistry(), path)
        oracle = oracle_summary(gold)
        print(f"candidate boxes from {path} for {candidates.tasks}; oracle ceiling: {oracle}")
    step = config.checkpoint_step if config.checkpoint_step >= 0 else None
    model, step = load_model(config.model, config.checkpoint, step, merge=config.merge_lora)
    family, model_config = family_and_config(config.model.hf_dir)
    processor = family.processor(config.model.hf_dir)
    side = config.image_side or None
    codec = family.box_codec(model_config, side)
    predictions, stats = predict_records(
        model,
        processor,
        settings,
        sentences=corpus.sentences.values(),
        images=photos,
        codec=codec,
        image_side=side,
        seed=config.seed,
        candidate_tasks=candidates.tasks,
        brief_prompts=config.prompts == "brief",
    )
    if oracle is not None:
        stats["candidate_oracle"] = oracle
    path = os.path.join(workdir, "predictions.jsonl")  # workdir: a local folder or a URL (gs://...)
    write_predictions(path, predictions)
    written = read_predictions(path)  # scores what the file says, validated
    report = score(corpus, written)
    print(format_table(report))
    print(json.dumps({k: v for k, v in stats.items() if k != "missing_image_ids"}))
    metrics = report.as_dict()
    metrics["predict"] = dict(
        stats, checkpoint=config.checkpoint or None, checkpoint_step=step, limit=int(config.limit)
    )
    metrics["skipped"] = skips.counts()
    metrics_path = paths.write_text(os.path.join(workdir, "metrics.json"), json.dumps(metrics, indent=1))
    page = os.path.join(workdir, "report.html")
    write_report(page, corpus, written, title=f"M2E2 predictions: {path}", notes=metrics["predict"])
    print(f"wrote {path}, {metrics_path} and {page}")
    return metrics
