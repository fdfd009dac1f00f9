"""Export of a trained model: `W/export` holds HF safetensors with LoRA merged, config.json, the
processor's files (a directory transformers and `--config.model.hf_dir` load), the adapters
alone, and the run's config (what predicting needs besides the weights).

A remote workdir (gs://...) gets the export through a local temporary folder (safetensors
writes local files), uploaded file by file: the local disk needs room for one export."""

from __future__ import annotations

import os
import shutil
import tempfile

import jax
import numpy as np
from flax import nnx
from safetensors.numpy import save_file

from rmpl_jax.io import paths
from rmpl_jax.io.run_config import CONFIG_FILE, EXPORT_FILE
from rmpl_jax.models import lora
from rmpl_jax.models.family import family_for_dir

PROCESSOR_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
    "added_tokens.json",
    "preprocessor_config.json",
    "processor_config.json",
    "chat_template.jinja",
    "chat_template.json",
    "generation_config.json",
)
ADAPTERS_FILE = "adapters.safetensors"


def export_model(model: nnx.Module, hf_dir: str, workdir: str) -> str:
    """Writes `workdir/export` from the trained model whose base is `hf_dir`; every process
    calls it (weights are gathered), process 0 writes. Returns the directory."""
    out = os.path.join(workdir, "export")
    local = tempfile.mkdtemp(prefix="rmpl_export_") if paths.is_remote(out) else out
    try:
        _write_export(model, hf_dir, workdir, local)
        if local != out and jax.process_index() == 0:
            for name in sorted(os.listdir(local)):
                paths.copy_file(os.path.join(local, name), os.path.join(out, name))
    finally:
        if local != out:
            shutil.rmtree(local, ignore_errors=True)
    print(f"exported {out}")
    return out


def _write_export(model: nnx.Module, hf_dir: str, workdir: str, out: str) -> None:
    """The export's files in the local folder `out` (process 0 writes; all gather)."""
    family_for_dir(hf_dir).export_hf(model, out)
    if jax.process_index() != 0:
        return
    for name in PROCESSOR_FILES:
        if os.path.exists(os.path.join(hf_dir, name)):
            shutil.copy(os.path.join(hf_dir, name), out)
    run_config = os.path.join(workdir, CONFIG_FILE)
    if paths.exists(run_config):
        paths.copy_file(run_config, os.path.join(out, EXPORT_FILE))
    adapters = {
        "/".join(map(str, path)): np.asarray(jax.device_get(value))
        for path, value in nnx.to_flat_state(lora.lora_state(model))
    }
    if adapters:
        save_file(adapters, os.path.join(out, ADAPTERS_FILE))
