"""What a run takes from the model's family besides the weights: the family and its config of
an HF directory, the LoRA targets that `lora_targets=""` stands for, the placement of a batch
(static image layout, image inputs without a per-example axis), and the image tasks a
text-only model leaves out (reported, not an error: the run trains the text tasks)."""

from __future__ import annotations

import json
import math
import os

import jax
import numpy as np

from rmpl_jax.io.errors import ConfigError
from rmpl_jax.m2e2.grammar import VISION_TASKS
from rmpl_jax.models.family import ModelFamily, family_for_dir
from rmpl_jax.train import distributed
from rmpl_jax.train import sharding as shd


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


def drop_image_tasks(config, family: ModelFamily, model_config) -> list[str]:
    """For a model without vision: sets the weight of every image task of the run's stages to 0
    and drops MNRE's photos (`data.mnre_images`; MNRE then trains on its text), so the run
    trains the text tasks. Returns one line per change, for the log and the run card; a
    model with vision is left as it is ([])."""
    if family.has_vision(model_config):
        return []
    notes = []
    for stage in config.stages:
        for task, weight in config[stage].tasks.items():
            if weight > 0 and task in VISION_TASKS:
                config[stage].tasks[task] = 0.0
                notes.append(f"{stage}: task {task}: the text-only {family.name} model takes no photos, left out")
        if config[stage].tasks.get("mnre", 0) > 0 and config.data.mnre_images:
            notes.append(f"{stage}: task mnre: the text-only {family.name} model takes no photos, trained on its text")
    if config.data.mnre_images:
        config.data.mnre_images = ""
    return notes


def batch_multiple(mesh, grad_accum: int) -> int:
    """What a global batch's rows must be a multiple of: the mesh's data-parallel devices
    times the microbatches, and the processes (each contributes equally)."""
    data_axes = shd.normalize_rules(None, mesh)["batch"]
    return math.lcm(math.prod(mesh.shape[a] for a in data_axes) * grad_accum, jax.process_count())


def global_batch(batch: dict, mesh, family: ModelFamily) -> dict:
    """Device arrays for a host batch; the family's static keys (one row per photo or photo
    slot, equal within a batch) stay host constants covering the global batch."""
    static = {k: np.asarray(batch.pop(k)) for k in family.static_batch_keys if k in batch}
    for key, rows in static.items():
        if not (rows == rows[:1]).all():
            raise ValueError(f"batch[{key!r}] differs between examples: photos of one batch must share a size")
    local_rows = batch["input_ids"].shape[0]
    out = distributed.global_batch(batch, mesh, logical_axes=family.batch_logical_axes)
    for key, rows in static.items():
        out[key] = np.tile(rows[:1], (len(rows) * out["input_ids"].shape[0] // local_rows, 1))
    return out
