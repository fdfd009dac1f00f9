"""Qwen2-VL / Qwen2.5-VL checkpoints: the table between HF tensor names and our parameters
(language model and vision tower), loading an HF directory and exporting one.

One `NameRule` table serves both directions (`models.hf.safetensors_io` walks it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from rmpl_jax.models.decoder import decoder_name_rules
from rmpl_jax.models.hf.names import NameRule
from rmpl_jax.models.hf.safetensors_io import export_state, load_state
from rmpl_jax.models.qwen2_vl.config import Qwen2VLConfig
from rmpl_jax.models.qwen2_vl.model import (
    VISION_ATTR,
    Qwen2VL,
    abstract_model,
    decoder_dims,
    with_dtype,
)
from rmpl_jax.models.qwen2_vl.vision import VisionTower
from rmpl_jax.models.qwen2_vl.vision_config import VisionConfig


# -- HF names -------------------------------------------------------------------------------------
def lm_name_rules(cfg: Qwen2VLConfig) -> list[NameRule]:
    """HF tensor names (Hub layout: model.layers.N..., lm_head) <-> our language-model leaves."""
    return decoder_name_rules(decoder_dims(cfg), cfg.tie_word_embeddings)


def name_rules(cfg: Qwen2VLConfig) -> list[NameRule]:
    """Full table: language model plus the vision tower's rules (prefixed with 'visual')."""
    rules = lm_name_rules(cfg)
    if cfg.with_vision:
        vc = VisionConfig.from_hf(cfg.vision_config, cfg.model_type)
        # The conv kernel is stored flattened; export needs its 5-D HF shape back.
        patch_shape = (vc.width, vc.in_channels, vc.temporal_patch_size, vc.patch_size, vc.patch_size)
        for rule in vision_name_rules(vc, cfg.model_type):
            hf = rule.hf if rule.hf.startswith("visual") else r"visual\." + rule.hf
            extra = {}
            if rule.flatten_to_2d and rule.hf_shape is None:
                extra["hf_shape"] = patch_shape
            rules.append(dataclasses.replace(rule, hf=hf, ours=f"{VISION_ATTR}/{rule.ours}", **extra))
    return rules


def canonical_hf_name(name: str) -> str:
    """Maps transformers-5 in-memory names (model.language_model.*, model.visual.*) to the
    Hub layout (model.*, visual.*) that checkpoints use and transformers writes."""
    if name.startswith("model.language_model."):
        return "model." + name[len("model.language_model.") :]
    if name.startswith("model.visual."):
        return name[len("model.") :]
    return name


# -- vision tower -----------------------------------------------------------------------------


def vision_name_rules(vision_config: VisionConfig | Mapping[str, Any], model_type: str | None = None) -> list[NameRule]:
    """HF tensor names (relative to the tower, e.g. 'blocks.3.attn.qkv.weight'; on disk the
    tower sits under 'visual.', in transformers 5 modules under 'model.visual.') -> our
    leaf paths relative to the tower."""
    cfg = vision_config if isinstance(vision_config, VisionConfig) else VisionConfig.from_hf(vision_config, model_type)
    blk = r"blocks\.(?P<layer>\d+)\."
    rules = [
        NameRule(
            r"patch_embed\.proj\.weight",
            "patch_embed/kernel",
            flatten_to_2d=True,
            transpose=True,
            hf_shape=(cfg.width, cfg.in_channels, cfg.temporal_patch_size, cfg.patch_size, cfg.patch_size),
        ),
        NameRule(blk + r"norm1\.weight", "blocks/norm1/scale"),
        NameRule(blk + r"norm2\.weight", "blocks/norm2/scale"),
        NameRule(blk + r"attn\.qkv\.weight", "blocks/attn/qkv/kernel", transpose=True),
        NameRule(blk + r"attn\.qkv\.bias", "blocks/attn/qkv/bias"),
        NameRule(blk + r"attn\.proj\.weight", "blocks/attn/proj/kernel", transpose=True),
        NameRule(blk + r"attn\.proj\.bias", "blocks/attn/proj/bias"),
        NameRule(r"merger\.ln_q\.weight", "merger/norm/scale"),
        NameRule(r"merger\.mlp\.0\.weight", "merger/fc1/kernel", transpose=True),
        NameRule(r"merger\.mlp\.0\.bias", "merger/fc1/bias"),
        NameRule(r"merger\.mlp\.2\.weight", "merger/fc2/kernel", transpose=True),
        NameRule(r"merger\.mlp\.2\.bias", "merger/fc2/bias"),
    ]
    if cfg.norm_kind == "layer":
        rules += [
            NameRule(blk + r"norm1\.bias", "blocks/norm1/bias"),
            NameRule(blk + r"norm2\.bias", "blocks/norm2/bias"),
            NameRule(r"merger\.ln_q\.bias", "merger/norm/bias"),
        ]
    if cfg.variant == "qwen2_5_vl":
        f = cfg.mlp_dim
        rules += [
            NameRule(
                blk + r"mlp\.gate_proj\.weight", "blocks/mlp/gate_up/kernel", transpose=True, last_axis_slice=(0, f)
            ),
            NameRule(
                blk + r"mlp\.up_proj\.weight", "blocks/mlp/gate_up/kernel", transpose=True, last_axis_slice=(f, 2 * f)
            ),
            NameRule(blk + r"mlp\.gate_proj\.bias", "blocks/mlp/gate_up/bias", last_axis_slice=(0, f)),
            NameRule(blk + r"mlp\.up_proj\.bias", "blocks/mlp/gate_up/bias", last_axis_slice=(f, 2 * f)),
            NameRule(blk + r"mlp\.down_proj\.weight", "blocks/mlp/down/kernel", transpose=True),
            NameRule(blk + r"mlp\.down_proj\.bias", "blocks/mlp/down/bias"),
        ]
    else:
        rules += [
            NameRule(blk + r"mlp\.fc1\.weight", "blocks/mlp/fc1/kernel", transpose=True),
            NameRule(blk + r"mlp\.fc1\.bias", "blocks/mlp/fc1/bias"),
            NameRule(blk + r"mlp\.fc2\.weight", "blocks/mlp/fc2/kernel", transpose=True),
            NameRule(blk + r"mlp\.fc2\.bias", "blocks/mlp/fc2/bias"),
        ]
    return rules


def vision_params_from_hf(
    config: VisionConfig, tensors: Mapping[str, Any], prefix: str = "", *, shapes: Mapping[str, tuple] | None = None
) -> dict[str, np.ndarray]:
    """Our leaves ('/'-path -> numpy array) from HF tensors named `prefix + <tower name>`.

    A small, self-contained loader for tests and tools (the full-model loader lives in
    hf_io). Every tensor whose name starts with `prefix` (all of them when prefix is '')
    is a tower tensor and must be used and every leaf (every layer row, every fused
    slice) filled; anything else raises naming the tensor or leaf. `shapes` are the leaf
    shapes; by default they come from an abstract VisionTower.
    """
    if shapes is None:
        shapes = vision_leaf_shapes(config)
    rules = vision_name_rules(config)
    out = {path: np.zeros(shape, np.float32) for path, shape in shapes.items()}
    filled: dict[str, np.ndarray] = {
        path: np.zeros(shape[:1] + shape[-1:], bool) if path.startswith("blocks/") else np.zeros(shape[-1:], bool)
        for path, shape in shapes.items()
    }
    tower_names = [k for k in tensors if k.startswith(prefix)]
    for name in tower_names:
        rel = name[len(prefix) :]
        hits = [(r, m) for r in rules if (m := r.match(rel))]
        if not hits:
            raise KeyError(f"HF tensor {name!r} matches no vision name rule")
        rule, match = hits[0]
        if rule.ours not in out:
            raise KeyError(f"rule for {name!r} targets {rule.ours!r}, which the tower does not have")
        value = rule.to_ours(np.asarray(tensors[name], np.float32))
        start, stop = rule.last_axis_slice or (0, out[rule.ours].shape[-1])
        layer = match.groupdict().get("layer")
        if layer is not None and int(layer) >= out[rule.ours].shape[0]:
            raise ValueError(f"HF tensor {name!r}: layer {layer} >= depth {out[rule.ours].shape[0]}")
        target = out[rule.ours] if layer is None else out[rule.ours][int(layer)]
        expected = target[..., start:stop].shape
        if value.shape != expected:
            raise ValueError(f"HF tensor {name!r} has shape {value.shape} after mapping; {rule.ours} needs {expected}")
        target[..., start:stop] = value
        mark = filled[rule.ours] if layer is None else filled[rule.ours][int(layer)]
        mark[start:stop] = True
    missing = [p for p, m in filled.items() if not m.all()]
    if missing:
        raise KeyError(f"no HF tensor (prefix {prefix!r}) filled vision leaves {missing}")
    return out


def vision_leaf_shapes(config: VisionConfig) -> dict[str, tuple[int, ...]]:
    """'/'-path -> shape of every parameter leaf, without allocating anything."""
    abstract = nnx.eval_shape(lambda: VisionTower(config, rngs=nnx.Rngs(0)))
    return {
        "/".join(map(str, path)): tuple(var.get_value().shape)
        for path, var in nnx.to_flat_state(nnx.state(abstract, nnx.Param))
    }


def vision_tower_from_hf(
    config: VisionConfig,
    tensors: Mapping[str, Any],
    prefix: str = "",
    *,
    dtype=jnp.float32,
    param_dtype=jnp.float32,
    **options,
) -> VisionTower:
    """Build a VisionTower whose weights come from HF tensors (see vision_params_from_hf);
    `options` (attention, implementation) go to VisionTower."""
    model = nnx.eval_shape(
        lambda: VisionTower(config, dtype=dtype, param_dtype=param_dtype, rngs=nnx.Rngs(0), **options)
    )
    arrays = vision_params_from_hf(config, tensors, prefix)
    flat = []
    for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        key = "/".join(map(str, path))
        flat.append((path, var.replace(jnp.asarray(arrays[key], param_dtype))))
    nnx.update(model, nnx.from_flat_state(flat))
    return model


# HF tensors that exist in some checkpoints and are deliberately not parameters here.
_IGNORED = (r".*rotary_emb\.inv_freq",)


def load_hf(
    hf_dir, dtype: str | None = None, shardings=None, *, strict: bool = True, report=None, **options
) -> Qwen2VL:
    """Loads an HF Qwen2-VL / Qwen2.5-VL directory (config.json + safetensors).

    shardings: None (default device), a mapping from parameter path ('layers/mlp/down_proj/kernel')
    to a `jax.sharding.Sharding`, or a callable (path, variable) -> Sharding | None.
    strict=False skips unexpected tensors, listed in `report` (an `hf_io.LoadReport`) if given.
    """
    cfg = with_dtype(Qwen2VLConfig.from_dir(hf_dir), dtype, options)
    model = abstract_model(cfg)
    ignore = list(_IGNORED)
    if cfg.tie_word_embeddings:
        ignore.append(r"lm_head\.weight")  # some tied checkpoints still store the copy
    if not cfg.with_vision:
        ignore.append(r"visual\..*")
    result = load_state(
        model, hf_dir, name_rules(cfg), canonical=canonical_hf_name, ignore=ignore, shardings=shardings, strict=strict
    )
    if report is not None:
        report.loaded, report.skipped = result.loaded, result.skipped
    return model


def export_hf(model: Qwen2VL, out_dir, dtype: str | None = None, *, max_shard_bytes: int = 4 << 30):
    """Writes an HF directory transformers loads: safetensors in the Hub layout (LoRA merged,
    cast to `dtype` if given, else the parameter dtype) and config.json."""
    cfg = model.config
    np_dtype = None if dtype is None else np.dtype(jnp.dtype(dtype))
    torch_dtype = str(np_dtype if np_dtype is not None else jnp.dtype(cfg.param_dtype))
    return export_state(
        model,
        out_dir,
        name_rules(cfg),
        cfg.to_hf(torch_dtype=torch_dtype),
        dtype=np_dtype,
        max_shard_bytes=max_shard_bytes,
    )
