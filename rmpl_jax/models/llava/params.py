"""LLaVA checkpoints: the HF name table (language model, CLIP tower, projector), loading an
HF directory straight into target shardings, and exporting one transformers loads.

The table is written in the layout transformers 5 saves (`language_model.model.*`,
`language_model.lm_head.weight`, `vision_tower.*`, `multi_modal_projector.*`); `canonical`
maps the other spellings onto it: the llava-hf Hub files (`vision_tower.vision_model.*`) and
transformers' in-memory names (`model.language_model.*`, `model.vision_tower.*`, `lm_head`).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from rmpl_jax.models.decoder import decoder_name_rules
from rmpl_jax.models.hf.names import NameRule
from rmpl_jax.models.hf.safetensors_io import export_state, load_state
from rmpl_jax.models.llama.model import decoder_dims
from rmpl_jax.models.llava.config import ClipVisionConfig, LlavaConfig
from rmpl_jax.models.llava.model import Llava, abstract_model, with_dtype

LM_PREFIX = "language_model.model."
LM_HEAD = "language_model.lm_head.weight"
_IGNORED = (r".*rotary_emb\.inv_freq", r"vision_tower\.embeddings\.position_ids")
# (alternative prefix, the table's prefix), tried in order
_PREFIXES = (
    ("model.language_model.", LM_PREFIX),
    ("model.vision_tower.vision_model.", "vision_tower."),
    ("model.vision_tower.", "vision_tower."),
    ("vision_tower.vision_model.", "vision_tower."),
    ("model.multi_modal_projector.", "multi_modal_projector."),
)


def canonical_hf_name(name: str) -> str:
    """Any spelling of a LLaVA tensor name -> the table's."""
    if name in ("lm_head.weight", "model.lm_head.weight"):
        return LM_HEAD
    for old, new in _PREFIXES:
        if name.startswith(old):
            return new + name[len(old) :]
    return name


def vision_name_rules(cfg: ClipVisionConfig, prefix: str = "vision_tower.") -> list[NameRule]:
    """HF CLIP tower names <-> our `vision_tower/...` leaves (q/k/v into one fused kernel)."""
    p = prefix.replace(".", r"\.")
    L = p + r"encoder\.layers\.(?P<layer>\d+)\."
    d, c, k = cfg.hidden_size, cfg.num_channels, cfg.patch_size
    rules = [
        NameRule(p + r"embeddings\.class_embedding", "vision_tower/class_embedding"),
        NameRule(p + r"embeddings\.position_embedding\.weight", "vision_tower/position_embedding"),
        NameRule(
            p + r"embeddings\.patch_embedding\.weight",
            "vision_tower/patch_embedding/kernel",
            flatten_to_2d=True,
            transpose=True,
            hf_shape=(d, c, k, k),
        ),
    ]
    for norm in ("pre_layrnorm", "post_layernorm"):
        rules += [
            NameRule(p + rf"{norm}\.weight", f"vision_tower/{norm}/scale"),
            NameRule(p + rf"{norm}\.bias", f"vision_tower/{norm}/bias"),
        ]
    for norm in ("layer_norm1", "layer_norm2"):
        rules += [
            NameRule(L + rf"{norm}\.weight", f"vision_tower/layers/{norm}/scale"),
            NameRule(L + rf"{norm}\.bias", f"vision_tower/layers/{norm}/bias"),
        ]
    for i, proj in enumerate(("q_proj", "k_proj", "v_proj")):
        span = (i * d, (i + 1) * d)
        rules += [
            NameRule(
                L + rf"self_attn\.{proj}\.weight",
                "vision_tower/layers/self_attn/qkv_proj/kernel",
                transpose=True,
                last_axis_slice=span,
            ),
            NameRule(
                L + rf"self_attn\.{proj}\.bias", "vision_tower/layers/self_attn/qkv_proj/bias", last_axis_slice=span
            ),
        ]
    for hf, ours in (("self_attn.out_proj", "self_attn/out_proj"), ("mlp.fc1", "mlp/fc1"), ("mlp.fc2", "mlp/fc2")):
        name = hf.replace(".", r"\.")
        rules += [
            NameRule(L + name + r"\.weight", f"vision_tower/layers/{ours}/kernel", transpose=True),
            NameRule(L + name + r"\.bias", f"vision_tower/layers/{ours}/bias"),
        ]
    return rules


def name_rules(cfg: LlavaConfig) -> list[NameRule]:
    """The whole table: Llama LM (under `language_model.`), CLIP tower, projector."""
    rules = []
    for rule in decoder_name_rules(decoder_dims(cfg.text), cfg.tie_word_embeddings, prefix=LM_PREFIX):
        rules.append(
            dataclasses.replace(rule, hf=r"language_model\.lm_head\.weight") if rule.ours == "lm_head/kernel" else rule
        )
    rules += vision_name_rules(cfg.vision)
    for layer in ("linear_1", "linear_2"):
        rules.append(
            NameRule(
                rf"multi_modal_projector\.{layer}\.weight", f"multi_modal_projector/{layer}/kernel", transpose=True
            )
        )
        if cfg.projector_bias:
            rules.append(NameRule(rf"multi_modal_projector\.{layer}\.bias", f"multi_modal_projector/{layer}/bias"))
    return rules


def load_hf(hf_dir, dtype: str | None = None, shardings=None, *, strict: bool = True, report=None, **options) -> Llava:
    """Loads an HF LLaVA directory (config.json + safetensors), one tensor at a time.

    shardings: None, a mapping from parameter path to `jax.sharding.Sharding`, or a callable
    (path, variable) -> Sharding | None. strict=False skips unexpected tensors, listed in
    `report` (a `LoadReport`) if given.
    """
    cfg = with_dtype(LlavaConfig.from_dir(hf_dir), dtype, options)
    model = abstract_model(cfg)
    ignore = list(_IGNORED)
    if cfg.tie_word_embeddings:
        ignore.append(r"language_model\.lm_head\.weight")  # some tied checkpoints still store the copy
    result = load_state(
        model, hf_dir, name_rules(cfg), canonical=canonical_hf_name, ignore=ignore, shardings=shardings, strict=strict
    )
    if report is not None:
        report.loaded, report.skipped = result.loaded, result.skipped
    return model


def export_hf(model: Llava, out_dir, dtype: str | None = None, *, max_shard_bytes: int = 4 << 30):
    """Writes safetensors in transformers 5's layout (LoRA merged, cast to `dtype` if given)
    and config.json."""
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
