"""`mode=train`: the two-stage curriculum, wired. The data sources (configured, or the synthetic
corpus and the demo model when none is), the family and what it leaves out, the run config
and card; then each stage through `train.loop.train_stage`, each handing its trainable weights
to the next; the export, and the held-out decode scored under the strict protocol.
"""

from __future__ import annotations

import os

import jax

from rmpl_jax.data.curriculum import (
    CandidateSettings,
    Sources,
    real_sources,
    synthetic_sources,
    uses_m2e2_text,
)
from rmpl_jax.data.m2e2_docs import m2e2_documents
from rmpl_jax.eval.heldout import HeldoutData, write_scores
from rmpl_jax.eval.run_card import RunCard
from rmpl_jax.infer.predict import predict_records
from rmpl_jax.infer.settings import DecodeSettings, resolve_pipeline
from rmpl_jax.io import paths
from rmpl_jax.io.errors import ConfigError
from rmpl_jax.io.run_config import write_run_config
from rmpl_jax.io.skips import SkipRegistry
from rmpl_jax.m2e2 import render
from rmpl_jax.m2e2.candidates import oracle_summary
from rmpl_jax.models.qwen2_vl.demo import write_demo_model_dir
from rmpl_jax.modes.run_outputs import finish_run, note_heldout, stage_summary, start_card
from rmpl_jax.modes.validate import validate_train
from rmpl_jax.train import distributed
from rmpl_jax.train import sharding as shd
from rmpl_jax.train.export import export_model
from rmpl_jax.train.loop import Run, train_stage
from rmpl_jax.train.model_setup import (
    drop_image_tasks,
    family_and_config,
    lora_targets,
    mesh_shape,
)


def generated_dir(workdir: str) -> str:
    """Where this process writes what it generates (synthetic photos, the demo tokenizer):
    the workdir for process 0, `process_<i>` in it for the others. Generation is seeded, so
    every process makes the same files, and processes sharing a disk never write one file
    at the same time; on separate disks each has its own copy. A remote workdir (gs://...)
    gets a local folder instead: the model directory and the photos are read as local files."""
    i = jax.process_index()
    local = paths.local_dir_for(workdir)
    return local if i == 0 else os.path.join(local, f"process_{i}")


def demo_model_dir(config, workdir: str, sources: Sources) -> str:
    """Writes the demo model directory (tokenizer learned from the training prompts)."""
    out = os.path.join(workdir, "demo_model")
    if os.path.exists(os.path.join(out, "config.json")):
        return out
    texts = []
    for task in ("text_ee", "text_mention", "text_argument"):
        texts += [ex.prompt + "\n" + ex.target for s in sources.sentences for ex in render.render(task, s)]
    texts += [ex.prompt + "\n" + ex.target for i in sources.images[:200] for ex in render.render("image_mention", i)]
    demo = config.model.demo
    write_demo_model_dir(  # the demo is a tiny Qwen2.5-VL
        out,
        texts,
        vocab_size=demo.vocab_size,
        text=demo.text.to_dict(),
        vision=demo.vision.to_dict(),
        image_side=config.data.image_side,
    )
    return out


def run(config, workdir: str) -> dict:
    """Runs `config.stages` in order; returns the held-out metrics (demo) or {}. Prints what
    was skipped, by reason, when it ends (also when it stops early)."""
    distributed.initialize_from_config(config.distributed)
    init_from = validate_train(config, workdir)
    skips = SkipRegistry()
    try:
        return _run(config, workdir, init_from, skips)
    finally:
        if jax.process_index() == 0:
            print(skips.report())


def _run(config, workdir: str, init_from: str | None, skips: SkipRegistry) -> dict:
    paths.make_dirs(workdir)
    data = config.data
    heldout = None
    candidates = CandidateSettings.from_config(data.get("candidates"))
    if candidates.tasks:
        print(f"candidate boxes: {candidates}")
    if any((data.ace_path, data.imsitu_path, data.mnre_path, uses_m2e2_text(data))):
        sources = real_sources(data, skips, candidates)
        if uses_m2e2_text(data) and data.m2e2.heldout_part:
            part = data.m2e2.heldout_part
            heldout = HeldoutData(f"M2E2 text, {part!r} documents", m2e2_documents(data.m2e2, part))
    else:
        model = config.model.hf_dir or "the demo model"
        print(f"no data configured: training {model} on the synthetic corpus")
        sources, split = synthetic_sources(
            generated_dir(workdir),
            seed=config.seed,
            train_docs=data.synthetic.train_docs,
            heldout_docs=data.synthetic.heldout_docs,
            candidates=candidates,
            skips=skips,
        )
        heldout = HeldoutData("synthetic", split.as_corpus(), split.image_sizes)
    print("training data:", sources.summary())
    from_scratch = not config.model.hf_dir
    hf_dir = os.path.abspath(config.model.hf_dir or demo_model_dir(config, generated_dir(workdir), sources))
    family, model_config = family_and_config(hf_dir)
    left_out = drop_image_tasks(config, family, model_config)
    for note in left_out:
        print(note)
    resolved = config.copy_and_resolve_references()
    resolved.model.hf_dir = hf_dir
    if jax.process_index() == 0:
        write_run_config(workdir, resolved)
    processor = family.processor(hf_dir)
    if processor.tokenizer is None:
        raise ConfigError(f"--config.model.hf_dir={hf_dir}: training needs tokenizer files in the model directory")
    config_json = resolved.to_json_best_effort(indent=1, sort_keys=True)
    lora_regex = lora_targets(config.model.lora_targets, family)
    card = start_card(config, config_json, workdir, hf_dir, model_config.model_type, lora_regex, sources, heldout)
    card.skips += left_out
    mesh = shd.make_mesh(mesh_shape(config))
    print(distributed.describe(mesh))
    run_ = Run(
        config,
        workdir,
        hf_dir,
        from_scratch,
        family,
        processor,
        family.box_codec(model_config, data.image_side),
        sources,
        candidates,
        mesh,
        skips,
    )

    model = None
    for name in config.stages:
        model = None  # the previous stage's weights live on in its checkpoint, not in memory
        result = train_stage(run_, name, init_from)
        card.stages.append(stage_summary(name, config[name], result))
        model, init_from = result.model, result.checkpoints
        del result
    if model is not None and config.export:
        export_model(model, hf_dir, workdir)
    metrics = {}
    if heldout is not None and model is not None and config.eval.heldout:
        metrics = score_heldout(model, run_, heldout, card)
    finish_run(card, config.stages)
    return metrics


def heldout_pipeline(config) -> str:
    """`decode.pipeline`, where 'auto' follows the last stage: 'multimedia' when it trains the
    multimedia task, else 'stage2' after stage 2 and 'joint' after stage 1 alone."""
    return resolve_pipeline(config.decode.pipeline, config.stages, config[config.stages[-1]].tasks)


def score_heldout(model, run: Run, heldout: HeldoutData, card: RunCard) -> dict:
    """Decodes the held-out data (the synthetic split, or M2E2 documents of a split) with the
    last stage's tasks and the `decode` settings, and scores it (`W/heldout/predictions.jsonl`,
    `W/heldout/metrics.json`, the page `W/report.html`)."""
    config = run.config
    corpus = heldout.corpus
    settings = DecodeSettings.from_config(config.decode).resolved(config.stages, config[config.stages[-1]].tasks)
    predictions, stats = predict_records(
        model,
        run.processor,
        settings,
        sentences=corpus.sentences.values(),
        images=corpus.images.values(),
        image_sizes=heldout.image_sizes,
        codec=run.codec,
        image_side=config.data.image_side,
        seed=config.seed,
        candidate_tasks=run.candidates.tasks,
        brief_prompts=config.data.get("prompts", "full") == "brief",
    )
    if run.candidates.tasks:
        stats["candidate_oracle"] = oracle_summary(corpus.images.values())
        print(f"candidate oracle ceiling: {stats['candidate_oracle']}")
    report = os.path.join(run.workdir, "report.html")
    metrics = write_scores(corpus, predictions, stats, os.path.join(run.workdir, "heldout"), report)
    note_heldout(card, heldout.name, metrics, report)
    return metrics
