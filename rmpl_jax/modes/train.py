"""`mode=train`: the two-stage curriculum. Each stage builds (or restores) a train state,
streams its task mixture through the sharded step, checkpoints with Orbax, and hands its
trainable weights to the next stage; with no data configured the run trains the demo
model on the synthetic corpus and scores held-out synthetic data under the strict protocol.
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import numpy as np
from flax import nnx

from rmpl_jax.data import pipeline
from rmpl_jax.data.curriculum import (
    CandidateSettings,
    Sources,
    TextTaskSettings,
    real_sources,
    stage_tasks,
    synthetic_sources,
    uses_m2e2_text,
)
from rmpl_jax.data.featurize import Featurizer
from rmpl_jax.data.m2e2_docs import m2e2_documents
from rmpl_jax.data.multimedia_pairs import PairSettings
from rmpl_jax.eval.heldout import HeldoutData, write_scores
from rmpl_jax.eval.run_card import RunCard
from rmpl_jax.infer.predict import predict_records
from rmpl_jax.io import paths
from rmpl_jax.io.errors import ConfigError
from rmpl_jax.io.progress import progress
from rmpl_jax.io.run_config import write_run_config
from rmpl_jax.io.skips import SkipRegistry
from rmpl_jax.m2e2 import render
from rmpl_jax.m2e2.candidates import oracle_summary
from rmpl_jax.m2e2.grammar import MULTIMEDIA
from rmpl_jax.models import lora
from rmpl_jax.models.family import ModelFamily, Processor, write_demo_model
from rmpl_jax.modes.model_setup import (
    check_tasks_fit,
    family_and_config,
    global_batch,
    lora_targets,
    mesh_shape,
    model_options,
)
from rmpl_jax.modes.run_outputs import finish_run, note_heldout, stage_summary, start_card
from rmpl_jax.modes.validate import validate_train
from rmpl_jax.train import checkpoint, distributed
from rmpl_jax.train import sharding as shd
from rmpl_jax.train.export import export_model
from rmpl_jax.train.loss import target_budget
from rmpl_jax.train.metrics_log import MetricsLog
from rmpl_jax.train.numeric_guard import NumericGuard
from rmpl_jax.train.optimizer import make_optimizer
from rmpl_jax.train.preemption import Preempted, PreemptionWatch
from rmpl_jax.train.state import abstract, create_train_state, split_model
from rmpl_jax.train.step import make_train_step
from rmpl_jax.train.step_metrics import StepMetrics


@dataclasses.dataclass
class Run:
    """What every stage shares."""

    config: object
    workdir: str
    hf_dir: str
    from_scratch: bool
    family: ModelFamily
    processor: Processor
    codec: object
    sources: Sources
    candidates: CandidateSettings
    mesh: object
    card: RunCard
    skips: SkipRegistry


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
    write_demo_model(
        out,
        texts,
        vocab_size=demo.vocab_size,
        text=demo.text.to_dict(),
        vision=demo.vision.to_dict(),
        image_side=config.data.image_side,
    )
    return out


def build_model(run: Run):
    """The stage's model: HF weights (+ LoRA adapters) or the randomly initialised demo."""
    cfg = run.config.model
    options = model_options(cfg, pretrained=not run.from_scratch)
    family, model_config = family_and_config(run.hf_dir, **options)
    if run.from_scratch:
        return family.build(model_config, dtype=cfg.dtype, rngs=nnx.Rngs(run.config.seed))
    # Each weight goes straight to its shards on the mesh (no full copy on one device).
    model = family.load_hf(run.hf_dir, dtype=cfg.dtype, shardings=shd.variable_sharding(run.mesh), **options)
    if cfg.lora_rank > 0:
        targets = lora_targets(cfg.lora_targets, family)
        lora.apply_lora(model, cfg.lora_rank, cfg.lora_alpha, targets, rngs=nnx.Rngs(run.config.seed))
    return model


def _example_names(batch: dict, sources: list[pipeline.TaskSource]) -> list[str]:
    """Pops the batch's ids (host bookkeeping, not model input) and names its examples."""
    tasks, indices = (batch.pop(k) for k in pipeline.ID_KEYS)
    return [f"{sources[t].name}:{sources[t].examples[i].item_id}" for t, i in zip(tasks.tolist(), indices.tolist())]


def stage_train_step(config, family: ModelFamily, layout, tx, mesh, state, schedule, max_targets):
    """The stage's train step as a run builds it (also what `tools/aot_memory.py` compiles)."""
    return make_train_step(
        layout,
        tx,
        mesh,
        state,
        lr_schedule=schedule,
        grad_accum_steps=config.train.grad_accum,
        loss_chunk_size=config.train.loss_chunk,
        max_targets=max_targets,
        batch_logical_axes=family.batch_logical_axes,
        static_keys=family.static_batch_keys,
    )


def answer_budget(featurize: Featurizer, sources: list[pipeline.TaskSource]) -> int:
    """Answer positions per row the step gathers for the LM head: the stage's longest answer
    (measured on every example, so all processes agree), rounded up."""
    longest = max((int(featurize.target_lengths(s.examples).max(initial=1)) for s in sources), default=1)
    budget = target_budget(longest)
    print(f"  LM head at answer positions: longest answer {longest} tokens, {budget} per row")
    return budget


def train_stage(run: Run, name: str, init_from: str | None):
    """Trains one stage; returns (model with the trained weights, checkpoint directory)."""
    config, stage = run.config, run.config[name]
    print(f"== {name}: {dict(stage.tasks)} for {stage.steps} steps")
    model = build_model(run)
    regex = "." if run.from_scratch else (config.model.trainable_regex or None)
    layout, trainable, frozen = split_model(model, regex)
    tx, schedule = make_optimizer(
        stage.learning_rate,
        warmup_steps=stage.warmup_steps,
        total_steps=stage.steps,
        weight_decay=config.train.weight_decay,
    )
    state = create_train_state(layout, trainable, frozen, tx, run.mesh, seed=config.seed)
    # The state holds the weights now (frozen ones are the loaded arrays, not copies); the
    # model's own references would keep a second set alive through the stage.
    del model, trainable, frozen
    ckpt_dir = os.path.join(run.workdir, name, "checkpoints")
    manager = checkpoint.CheckpointManager(
        ckpt_dir, max_to_keep=config.checkpoint.keep, save_interval_steps=config.checkpoint.every
    )
    data_state = None
    restored = manager.restore_newest_readable(state)
    if restored is not None:
        state, data_state = restored
        print(f"resumed {name} from step {int(state.step)}")
    elif init_from:
        state, report = checkpoint.init_from(init_from, state)
        print(f"initialised {name} from {init_from}: {report}")

    featurize = Featurizer(run.processor, config.data.image_side)
    batch_size = distributed.local_batch_size(config.data.batch_size)
    sources = stage_tasks(
        stage.tasks,
        run.sources,
        run.codec,
        config.data.image_side,
        token_lengths=featurize.token_lengths,
        max_tokens=max(config.data.buckets),
        lenient=config.data.lenient,
        skips=run.skips,
        candidates=run.candidates,
        text=TextTaskSettings.from_config(config.data),
        pairs=PairSettings.from_config(config.data.get("multimedia")),
    )
    for source in sources:
        print(f"  task {source.name}: {len(source.examples)} examples, weight {source.weight}")
    max_targets = answer_budget(featurize, sources) if config.train.head_at_targets else None
    iterator = iter(
        pipeline.mixture(
            sources,
            featurize,
            batch_size=batch_size,
            buckets=config.data.buckets,
            pad_id=run.processor.tokenizer.pad_token_id,
            seed=config.seed,
            shard_index=jax.process_index(),
            shard_count=jax.process_count(),
            num_workers=config.data.num_workers,
            prefetch=config.data.get("prefetch", 2),
        )
    )
    if data_state is not None:
        iterator.set_state(data_state)

    step = stage_train_step(config, run.family, layout, tx, run.mesh, state, schedule, max_targets)
    start = int(state.step)
    compile_s = None
    if start < stage.steps:
        batch = next(iterator)
        names = _example_names(batch, sources)
        first = global_batch(batch, run.mesh, run.family)
        t0 = time.time()
        step.compile(abstract(state), first, print_fn=lambda s: print("  compiled step:", s))
        compile_s = time.time() - t0
        print(f"  compile {compile_s:.1f}s")
    losses = []
    lead = jax.process_index() == 0
    log = MetricsLog(os.path.join(run.workdir, name), config.train.log_every, lead, start)
    guard = NumericGuard(name, ckpt_dir)
    reads = StepMetrics(guard, log)
    last_saved = manager.latest_step()
    done = start  # the state's step, counted on the host: reading state.step would wait on the device
    t_loop = time.time()
    try:
        with progress(stage.steps, name, "step", initial=start, disable=not lead) as bar, PreemptionWatch() as stop:

            def note(read):
                losses.extend(values["loss"] for _, values in read)
                if read:
                    bar.set_postfix(loss=f"{losses[-1]:.3f}")

            batch = first if start < stage.steps else None
            while done < stage.steps:
                guard.note_batch(done + 1, names)
                state, device_metrics = step(state, batch)  # dispatched; runs while the host goes on
                done += 1
                reads.add(done, device_metrics)
                bar.update(1)
                stopping = stop.reached(done)
                # Checkpoint decisions come from the step count: no collective unless saving.
                saving = stopping or manager.due(done)
                data_state = iterator.get_state() if saving else None  # before the next batch is drawn
                if done < stage.steps and not stopping:
                    batch = next(iterator)  # prefetched in the background (pipeline.mixture)
                    names = _example_names(batch, sources)
                    batch = global_batch(batch, run.mesh, run.family)
                if saving:  # the guard sees every step before it is saved
                    note(reads.read(last_saved))
                    manager.save(state, data_state=data_state, force=True)
                    log.sync()  # a remote log has every line up to the checkpoint
                    last_saved = done
                else:  # reads lag one step, so the device always has the next step queued
                    lagged = [s for s in reads.pending if s < done and reads.due(s)]
                    if lagged:
                        note(reads.read(last_saved, through=lagged[-1]))
                if stopping:
                    raise Preempted(f"{name}: stopped by SIGTERM at step {done}, saved in {ckpt_dir}; rerun to resume")
            note(reads.read(last_saved))
        if last_saved != done:
            manager.save(state, data_state=iterator.get_state(), force=True)
    finally:
        manager.close()  # waits for pending saves
        log.close()
    loop_s = time.time() - t_loop
    if losses:
        k = max(1, len(losses) // 10)
        print(f"  {name} loss: first {np.mean(losses[:k]):.3f} -> last {np.mean(losses[-k:]):.3f}")
    run.card.stages.append(stage_summary(name, stage, sources, state, start, loop_s, compile_s, losses))
    return layout.merge(state.trainable, state.frozen), ckpt_dir


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
    resolved = config.copy_and_resolve_references()
    resolved.model.hf_dir = hf_dir
    if jax.process_index() == 0:
        write_run_config(workdir, resolved)
    family, model_config = family_and_config(hf_dir)
    check_tasks_fit(config, family, model_config)
    processor = family.processor(hf_dir)
    if processor.tokenizer is None:
        raise ConfigError(f"--config.model.hf_dir={hf_dir}: training needs tokenizer files in the model directory")
    config_json = resolved.to_json_best_effort(indent=1, sort_keys=True)
    lora_regex = lora_targets(config.model.lora_targets, family)
    card = start_card(config, config_json, workdir, hf_dir, model_config.model_type, lora_regex, sources, heldout)
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
        card,
        skips,
    )

    model = None
    for name in config.stages:
        model = None  # the previous stage's weights live on in its checkpoint, not in memory
        model, init_from = train_stage(run_, name, init_from)
    if model is not None and config.export:
        export_model(model, hf_dir, workdir)
    metrics = {}
    if heldout is not None and model is not None and config.eval.heldout:
        metrics = score_heldout(model, run_, heldout)
    finish_run(card, config.stages)
    return metrics


def heldout_pipeline(config) -> str:
    """`eval.pipeline`, where 'auto' follows the last stage: 'multimedia' when it trains the
    multimedia task, else 'stage2' after stage 2 and 'joint' after stage 1 alone."""
    chosen = config.eval.get("pipeline", "auto")
    if chosen != "auto":
        return chosen
    last = config.stages[-1]
    if config[last].tasks.get(MULTIMEDIA, 0) > 0:
        return "multimedia"
    return "stage2" if last == "stage2" else "joint"


def score_heldout(model, run: Run, heldout: HeldoutData) -> dict:
    """Decodes the held-out data (the synthetic split, or M2E2 documents of a split) with the
    last stage's tasks and scores it (`W/heldout/predictions.jsonl`, `W/heldout/metrics.json`,
    the page `W/report.html`)."""
    config = run.config
    corpus = heldout.corpus
    predictions, stats = predict_records(
        model,
        run.processor,
        sentences=corpus.sentences.values(),
        images=corpus.images.values(),
        image_sizes=heldout.image_sizes,
        codec=run.codec,
        image_side=config.data.image_side,
        batch_size=config.eval.batch_size,
        max_new_tokens=config.eval.max_new_tokens,
        buckets=tuple(config.eval.buckets),
        pipeline=heldout_pipeline(config),
        candidate_tasks=run.candidates.tasks,
        brief_prompts=config.data.get("prompts", "full") == "brief",
        no_event_penalty=config.eval.get("no_event_penalty", 0.0),
        pair_filter=config.eval.get("pair_filter", "events"),
    )
    if run.candidates.tasks:
        stats["candidate_oracle"] = oracle_summary(corpus.images.values())
        print(f"candidate oracle ceiling: {stats['candidate_oracle']}")
    report = os.path.join(run.workdir, "report.html")
    metrics = write_scores(corpus, predictions, stats, os.path.join(run.workdir, "heldout"), report)
    note_heldout(run.card, heldout.name, metrics, report)
    return metrics
