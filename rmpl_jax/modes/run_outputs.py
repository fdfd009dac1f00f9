"""What a training run leaves for people to read, beside its checkpoints: the run card
(`W/run.md`), the training curves (`W/curves.png`; the TensorBoard events and
`W/<stage>/metrics.jsonl` come from `train/metrics_log.py`), and on the demo the held-out
report (`W/report.html`). The train mode calls these at a few points; they only collect and
write, so the training loop stays what it is."""

from __future__ import annotations

import os

import jax
import numpy as np

from rmpl_jax.data.curriculum import Sources
from rmpl_jax.eval.run_card import RunCard, StageSummary
from rmpl_jax.io import paths
from rmpl_jax.train.curves import write_curves
from rmpl_jax.train.loop import StageResult
from rmpl_jax.train.metrics_log import METRICS_FILE

SKIPPED_DECODE_STATS = ("missing_images", "sentences_with_missing_images", "unfinished")


def _weights(config, lora_regex: str) -> str:
    """Which weights the run starts from and which it trains (`lora_regex`: the LoRA targets
    after the family's default filled an empty `model.lora_targets`)."""
    m = config.model
    if not m.hf_dir:
        return "random init, every weight trained (demo)"
    trained = [f"LoRA rank {m.lora_rank} on `{lora_regex}`"] if m.lora_rank > 0 else []
    trained += [f"`{m.trainable_regex}`"] if m.trainable_regex else []
    return "pretrained; trains " + (" plus ".join(trained) or "nothing the config names")


def start_card(
    config, config_json: str, workdir: str, hf_dir: str, model_type: str, lora_regex: str, sources: Sources, heldout
):
    """The card of a run that is starting: model, data sizes and what reading the data skipped."""
    model = {
        "model directory": f"`{hf_dir}`",
        "model type": model_type,
        "weights": _weights(config, lora_regex),
        "dtype": config.model.dtype,
        "image side": config.data.image_side,
        "batch size (global)": config.data.batch_size,
    }
    data = {"training records": sources.summary()}
    if heldout is not None:
        corpus = heldout.corpus
        data["held-out data"] = f"{len(corpus.sentences)} sentences, {len(corpus.images)} photos ({heldout.name})"
    skips = [r.summary() for r in sources.reports if r.skipped or r.counts]
    skips += [f"{r.source}: skipped {p}" for r in sources.reports for p in r.problems]
    return RunCard(workdir, config_json, model, data, skips=skips)


def stage_summary(name: str, stage, result: StageResult) -> StageSummary:
    """One stage's line of the card, from what `train_stage` returned (`stage`: the stage's
    config block). A task of positive weight without a source had no examples."""
    sources, state, losses = result.sources, result.state, result.losses
    present = {s.name for s in sources}
    trainable = sum(int(np.prod(v.shape)) for v in state.trainable.values())
    frozen = sum(int(np.prod(v.shape)) for v in state.frozen.values())
    k = max(1, len(losses) // 10)
    return StageSummary(
        name=name,
        tasks={s.name: (len(s.examples), s.weight) for s in sources},
        left_out=tuple(t for t, w in stage.tasks.items() if w > 0 and t not in present),
        first_step=result.first_step,
        last_step=int(state.step),
        total_steps=stage.steps,
        seconds=result.loop_seconds,
        compile_seconds=result.compile_seconds,
        trainable_params=trainable,
        total_params=trainable + frozen,
        loss=(float(np.mean(losses[:k])), float(np.mean(losses[-k:]))) if losses else None,
        input_tokens=result.counts.get("input_tokens", 0.0),
        batch_tokens=result.counts.get("batch_tokens", 0.0),
        examples=result.counts.get("examples", 0.0),
    )


def note_heldout(card: RunCard, heldout_name: str, metrics: dict, report_path: str) -> None:
    """Adds the held-out scores (of the data `heldout_name` names) and what decoding skipped
    or left unfinished."""
    card.scores = metrics
    card.scores_about = f"Held-out data ({heldout_name}), strict M2E2 protocol (percent)."
    decode = metrics.get("decode", {})
    for key in SKIPPED_DECODE_STATS:
        if decode.get(key):
            card.skips.append(f"held-out decoding: {key} = {decode[key]}")
    for task, n in (decode.get("parse_failures") or {}).items():
        if n:
            failed = (decode.get("items_with_failures") or {}).get(task, "?")
            card.skips.append(f"held-out decoding: {n} outputs of {task} did not parse ({failed} items)")
    card.outputs.append(report_path)


def finish_run(card: RunCard, stage_names) -> None:
    """Writes `W/curves.png` and `W/run.md` (process 0 only) and prints where they are."""
    if jax.process_index() != 0:
        return
    for s in card.stages:
        card.skips += [f"{s.name}: task {t} had no examples and was left out of the mixture" for t in s.left_out]
    curves = write_curves(card.workdir, list(stage_names))
    logs = [os.path.join(card.workdir, n, METRICS_FILE) for n in stage_names]
    card.outputs += [p for p in logs if paths.exists(p)]
    if curves:
        card.outputs.append(curves)
    path = card.write(os.path.join(card.workdir, "run.md"))
    print(f"wrote {path}" + (f" and {curves}" if curves else ""))
