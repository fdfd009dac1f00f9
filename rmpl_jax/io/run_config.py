"""A training run's resolved config, written as `W/config.json` when the run starts and
copied into its export, so that predicting and exporting read the image side, LoRA settings
and dtype the model was trained with instead of asking for them again."""

from __future__ import annotations

import json
import os
from typing import Any

from rmpl_jax.io import paths

CONFIG_FILE = "config.json"  # in a run directory
EXPORT_FILE = "rmpl_run_config.json"  # in an exported model directory (config.json is HF's)


def write_run_config(workdir: str, config: Any) -> str:
    """Writes the config (an ml_collections ConfigDict) as `workdir/config.json`."""
    path = os.path.join(workdir, CONFIG_FILE)
    return paths.write_text(path, config.to_json_best_effort(indent=1, sort_keys=True) + "\n")


def _read(path: str) -> dict | None:
    try:
        value = json.loads(paths.read_bytes(path).decode("utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) and value.get("mode") == "train" else None


def find_run_config(path: str, levels: int = 3) -> dict | None:
    """The training run config that produced `path` (a checkpoints directory, a stage or run
    directory, or an exported model directory): the nearest `config.json` of a training run,
    or an export's copy, in `path` or up to `levels` parents. None when there is none."""
    path = paths.absolute(path)
    for _ in range(levels + 1):
        for name in (EXPORT_FILE, CONFIG_FILE):
            found = _read(os.path.join(path, name))
            if found is not None:
                return found
        path = paths.parent(path)
        if path is None:
            break
    return None
