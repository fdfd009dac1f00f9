"""What a run takes from the model's family besides the weights: the family and its config of
an HF directory, the LoRA targets that `lora_targets=""` stands for, the placement of a batch
(static image layout, image inputs without a per-example axis), and the check that a
text-only model is not asked for image tasks — a config error before anything compiles."""

from __future__ import annotations

import json
import os

import jax
import numpy as np

from rmpl_jax.io.errors import ConfigError
from rmpl_jax.m2e2.grammar import VISION_TASKS
from rmpl_jax.models.family import ModelFamily, family_for_dir
from rmpl_jax.train import distributed


def family_and_config(hf_dir: str, **options):
    """(family, family config) of an HF directory; `options` set the config's run-time fields."""
    family = family_for_dir(hf_dir)
    with open(os.path.join(hf_dir, "config.json")) as f:
        return family, family.config_from_hf(json.load(f), **options)


REMAT_CHOICES = ("auto", "none", "full", "dots")
ATTENTION_CHOICES = ("auto", "xla", "cudnn")
# The fsdp axis takes every device: parameters are sharded, and batches still split over it.
HF_MESH, DEMO_MESH = (1, -1, 1), (-1, 1, 1)


def model_options(model_config, pretrained: bool) -> dict:
    """`remat_policy` and `attention_impl` of `model.remat` / `model.attention`.

    auto: remat 'full' for HF models (a 7B step does not fit without it) and none for the tiny
    demo; attention 'cudnn' (flash attention) on GPUs in bf16/fp16, else XLA's.
    """
    remat = model_config.get("remat", "auto") or "auto"
    attention = model_config.get("attention", "auto") or "auto"
    if remat not in REMAT_CHOICES:
        raise ConfigError(f"--config.model.remat={remat!r}: expected one of {REMAT_CHOICES}")
    if attention not in ATTENTION_CHOICES:
        raise ConfigError(f"--config.model.attention={attention!r}: expected one of {ATTENTION_CHOICES}")
    if remat == "auto":
        remat = "full" if pretrained else "none"
    if attention == "auto":
        half = str(model_config.get("dtype", "")) in ("bfloat16", "float16")
        attention = "cudnn" if jax.default_backend() == "gpu" and half else "xla"
    return {
        "remat_policy": None if remat == "none" else remat,
        "attention_impl": None if attention == "xla" else attention,
    }


def mesh_shape(config) -> tuple[int, ...]:
    """`mesh_shape`, or when it is empty: fsdp over every device for HF models (parameters
    sharded), data parallel for the demo model."""
    if config.mesh_shape:
        return tuple(config.mesh_shape)
    return HF_MESH if config.model.hf_dir else DEMO_MESH


def lora_targets(regex: str, family: ModelFamily) -> str:
    """The configured LoRA target regex, or the family's default when it is empty."""
    return regex or family.default_lora_targets


def check_tasks_fit(config, family: ModelFamily, model_config) -> None:
    """Raises naming the image tasks (and the overrides that drop them) when a training config
    asks a model without vision for them. MNRE counts as an image task when its photos are
    configured (`data.mnre_images`); without them it trains on text alone."""
    if family.has_vision(model_config):
        return
    problems, fixes = [], []
    for stage in config.stages:
        tasks = [t for t, w in config[stage].tasks.items() if w > 0 and t in VISION_TASKS]
        if tasks:
            problems.append(f"{stage}: {', '.join(tasks)}")
            fixes += [f"--config.{stage}.tasks.{t}=0" for t in tasks]
        if config[stage].tasks.get("mnre", 0) > 0 and config.data.mnre_images:
            problems.append(f"{stage}: mnre with photos (data.mnre_images)")
            fixes.append("--config.data.mnre_images=''")
    if problems:
        raise ValueError(
            f"model.hf_dir={config.model.hf_dir} is a text-only {family.name} model, but the config asks "
            f"for image tasks ({'; '.join(problems)}). Drop them with: {' '.join(fixes)}"
        )


def global_batch(batch: dict, mesh, family: ModelFamily) -> dict:
    """Device arrays for a host batch; the family's static keys (one row per example, equal
    within a batch) stay host constants covering the global batch."""
    static = {k: batch.pop(k) for k in family.static_batch_keys if k in batch}
    out = distributed.global_batch(batch, mesh, logical_axes=family.batch_logical_axes)
    for key, rows in static.items():
        out[key] = np.tile(rows[:1], (out["input_ids"].shape[0], 1))
    return out
