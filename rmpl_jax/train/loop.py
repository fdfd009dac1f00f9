"""One training stage: the model (HF weights + LoRA, or the demo from scratch), its train state,
the task mixture streamed through the sharded step, metrics, the numeric guard, checkpoints
(resume and preemption); and the step factory the benchmarks share with it.

    run = Run(config, workdir, hf_dir, from_scratch, family, processor, codec, sources, candidates, mesh, skips)
    result = train_stage(run, "stage1", init_from=None)   # result.model: the trained weights
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import numpy as np
from flax import nnx

from rmpl_jax.data import packing, pipeline
from rmpl_jax.data.curriculum import CandidateSettings, Sources, TextTaskSettings, stage_tasks
from rmpl_jax.data.featurize import Featurizer
from rmpl_jax.data.multimedia_pairs import PairSettings
from rmpl_jax.io.progress import progress
from rmpl_jax.io.skips import SkipRegistry
from rmpl_jax.models import lora
from rmpl_jax.models.family import ModelFamily, Processor
from rmpl_jax.train import checkpoint, distributed
from rmpl_jax.train import sharding as shd
from rmpl_jax.train.loss import target_budget
from rmpl_jax.train.metrics_log import MetricsLog
from rmpl_jax.train.model_setup import (
    batch_multiple,
    family_and_config,
    global_batch,
    lora_targets,
    model_options,
)
from rmpl_jax.train.numeric_guard import NumericGuard
from rmpl_jax.train.optimizer import make_optimizer
from rmpl_jax.train.preemption import Preempted, PreemptionWatch
from rmpl_jax.train.state import TrainState, abstract, create_train_state, split_model
from rmpl_jax.train.step import TrainStep, make_train_step
from rmpl_jax.train.step_metrics import StepMetrics


@dataclasses.dataclass
class Run:
    """What every stage of a run shares."""

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
    skips: SkipRegistry


@dataclasses.dataclass
class StageResult:
    """A trained stage: the model with its weights, where its checkpoints are, and what the
    run card reports (its task sources, final state, first step of this run, loop and
    compile seconds, the losses read)."""

    model: object
    checkpoints: str
    sources: list
    state: TrainState
    first_step: int
    loop_seconds: float
    compile_seconds: float | None
    losses: list[float]
    # Sums over the steps of this run: input_tokens (padding not counted), batch_tokens (the
    # rows' token slots), examples.
    counts: dict[str, float] = dataclasses.field(default_factory=dict)


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


def example_names(batch: dict, sources: list[pipeline.TaskSource]) -> list[str]:
    """Pops the batch's ids (host bookkeeping, not model input) and names its examples (a
    packed batch's [rows, slots] ids: -1 in empty slots)."""
    tasks, indices = (np.asarray(batch.pop(k)) for k in pipeline.ID_KEYS)
    if indices.ndim == 2:
        tasks = np.broadcast_to(tasks[:, None], indices.shape)
    pairs = [(t, i) for t, i in zip(tasks.ravel().tolist(), indices.ravel().tolist()) if i >= 0]
    return [f"{sources[t].name}:{sources[t].examples[i].item_id}" for t, i in pairs]


def stage_optimizer(config, stage):
    """(AdamW, learning-rate schedule) of a stage's config block, as the run trains it."""
    return make_optimizer(
        stage.learning_rate,
        warmup_steps=stage.warmup_steps,
        total_steps=stage.steps,
        weight_decay=config.train.weight_decay,
    )


def stage_train_step(config, family: ModelFamily, layout, tx, mesh, state, schedule, max_targets) -> TrainStep:
    """The stage's train step as a run builds it, with the run's options (the step that
    `tools/bench.py` times and `tools/aot_memory.py` compiles)."""
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
        model_inputs=family.model_inputs,
    )


def answer_budget(featurize: Featurizer, sources: list[pipeline.TaskSource]) -> int:
    """Answer positions per row the step gathers for the LM head: the stage's longest answer
    (measured on every example, so all processes agree), rounded up."""
    longest = max((int(featurize.target_lengths(s.examples).max(initial=1)) for s in sources), default=1)
    budget = target_budget(longest)
    print(f"  LM head at answer positions: longest answer {longest} tokens, {budget} per row")
    return budget


def train_stage(run: Run, name: str, init_from: str | None) -> StageResult:
    """Trains one stage (resuming from its newest checkpoint, else starting from `init_from`)."""
    config, stage = run.config, run.config[name]
    print(f"== {name}: {dict(stage.tasks)} for {stage.steps} steps")
    model = build_model(run)
    regex = "." if run.from_scratch else (config.model.trainable_regex or None)
    layout, trainable, frozen = split_model(model, regex)
    tx, schedule = stage_optimizer(config, stage)
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
    plans = None
    if config.data.get("packing", False):
        plans, max_targets = packing.plan_sources(
            sources,
            featurize,
            batch_size=config.data.batch_size,
            length=packing.pack_length(config.data.get("pack_length", 0), config.data.buckets),
            rows=config.data.get("pack_rows", 0),
            row_multiple=batch_multiple(run.mesh, config.train.grad_accum),
            head_at_targets=config.train.head_at_targets,
            static_keys=run.family.static_batch_keys,
        )
    else:
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
            packing=plans,
        )
    )
    if data_state is not None:
        iterator.set_state(data_state)

    step = stage_train_step(config, run.family, layout, tx, run.mesh, state, schedule, max_targets)
    start = int(state.step)
    compile_s = None
    if start < stage.steps:
        batch = next(iterator)
        names = example_names(batch, sources)
        first = global_batch(batch, run.mesh, run.family)
        t0 = time.time()
        step.compile(abstract(state), first, print_fn=lambda s: print("  compiled step:", s))
        compile_s = time.time() - t0
        print(f"  compile {compile_s:.1f}s")
    losses = []
    counts = dict.fromkeys(("input_tokens", "batch_tokens", "examples"), 0.0)
    lead = jax.process_index() == 0
    log = MetricsLog(os.path.join(run.workdir, name), config.train.log_every, lead)
    guard = NumericGuard(name, ckpt_dir)
    reads = StepMetrics(guard, log)
    last_saved = manager.latest_step()
    done = start  # the state's step, counted on the host: reading state.step would wait on the device
    t_loop = time.time()
    try:
        with progress(stage.steps, name, "step", initial=start, disable=not lead) as bar, PreemptionWatch() as stop:

            def note(read):
                losses.extend(values["loss"] for _, values in read)
                for _, values in read:
                    for key in counts:
                        counts[key] += values.get(key, 0.0)
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
                    names = example_names(batch, sources)
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
    model = layout.merge(state.trainable, state.frozen)
    if counts["batch_tokens"]:
        share = 1.0 - counts["input_tokens"] / counts["batch_tokens"]
        print(f"  {name}: {counts['input_tokens'] / loop_s:.0f} input tokens/s, padding {100 * share:.1f}% of the rows")
    return StageResult(model, ckpt_dir, sources, state, start, loop_s, compile_s, losses, counts)
