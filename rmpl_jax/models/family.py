"""HF `model_type` -> model family: how to build, load and export it.

    family = get_family("qwen2_5_vl")            # or family_for_dir(hf_dir)
    model = family.load_hf(hf_dir, dtype="bfloat16", shardings=None)
    family.export_hf(model, out_dir)

A family is one module plus one entry here.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rmpl_jax.models import qwen2_vl


@dataclasses.dataclass(frozen=True)
class Family:
    """The entry points of one model family.

    config_from_hf(hf_dict, **options) -> config
    build(config, dtype=None, rngs=None, **options) -> model (random weights)
    load_hf(hf_dir, dtype=None, shardings=None, *, strict=True, **options) -> model
    export_hf(model, out_dir, dtype=None) -> written files
    """

    name: str
    config_from_hf: Callable[..., Any]
    build: Callable[..., Any]
    load_hf: Callable[..., Any]
    export_hf: Callable[..., Any]
    abstract_model: Callable[..., Any]


_QWEN = dict(
    config_from_hf=qwen2_vl.Qwen2VLConfig.from_hf,
    build=qwen2_vl.build,
    load_hf=qwen2_vl.load_hf,
    export_hf=qwen2_vl.export_hf,
    abstract_model=qwen2_vl.abstract_model,
)

FAMILIES: dict[str, Family] = {
    "qwen2_vl": Family(name="qwen2_vl", **_QWEN),
    "qwen2_5_vl": Family(name="qwen2_5_vl", **_QWEN),
}


def register(model_type: str, family: Family) -> None:
    """Adds a family (e.g. from its own module); refuses to replace an existing one."""
    if model_type in FAMILIES:
        raise ValueError(f"model_type {model_type!r} is already registered")
    FAMILIES[model_type] = family


def get_family(model_type: str) -> Family:
    try:
        return FAMILIES[model_type]
    except KeyError:
        raise KeyError(f"unknown model_type {model_type!r}; known: {sorted(FAMILIES)}") from None


def family_for_dir(hf_dir: str | Path) -> Family:
    """The family of an HF directory, from config.json's model_type."""
    path = Path(hf_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no config.json")
    model_type = json.loads(path.read_text()).get("model_type")
    if model_type is None:
        raise KeyError(f"{path}: no 'model_type' key")
    return get_family(model_type)
