"""Gemma 3 with vision: the HF name table (language model, SigLIP tower, projector), building,
loading an HF directory straight into target shardings, and exporting one transformers loads.

The table is written in the layout transformers 5 saves (`language_model.model.*`,
`vision_tower.*`, `multi_modal_projector.*`); `canonical_hf_name` maps the other spellings
onto it: the Hub's files (`vision_tower.vision_model.*`) and transformers' in-memory names
(`model.language_model.*`, `model.vision_tower.*`, `lm_head`).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx

from rmpl_jax.models.decoder import decoder_name_rules
from rmpl_jax.models.gemma3.model import Gemma3
from rmpl_jax.models.gemma3.multimodal_config import Gemma3Config
from rmpl_jax.models.gemma3.projector import projector_name_rules
from rmpl_jax.models.gemma3.text_model import decoder_dims
from rmpl_jax.models.gemma3.vision import vision_name_rules
from rmpl_jax.models.hf.names import NameRule
from rmpl_jax.models.hf.safetensors_io import export_state, load_state
from rmpl_jax.models.llama.model import with_dtype

LM_PREFIX = "language_model.model."
_IGNORED = (r".*rotary_emb\..*inv_freq", r".*embed_scale", r"vision_tower\.embeddings\.position_ids")
# (alternative prefix, the table's prefix), tried in order
_PREFIXES = (
    ("model.language_model.", LM_PREFIX),
    ("model.vision_tower.vision_model.", "vision_tower."),
    ("model.vision_tower.", "vision_tower."),
    ("vision_tower.vision_model.", "vision_tower."),
    ("model.multi_modal_projector.", "multi_modal_projector."),
)
_LM_HEADS = ("lm_head.weight", "model.lm_head.weight", "language_model.lm_head.weight")


def canonical_hf_name(name: str) -> str:
    """Any spelling of a Gemma 3 tensor name -> the table's."""
    if name in _LM_HEADS:
        return "lm_head.weight"
    for old, new in _PREFIXES:
        if name.startswith(old):
            return new + name[len(old) :]
    return name


def name_rules(cfg: Gemma3Config) -> list[NameRule]:
    """The whole table: the language model (under `language_model.model.`), tower, projector."""
    rules = decoder_name_rules(decoder_dims(cfg.text), cfg.tie_word_embeddings, prefix=LM_PREFIX)
    return rules + vision_name_rules(cfg.vision) + projector_name_rules()


def abstract_model(config: Gemma3Config) -> Gemma3:
    """The model with ShapeDtypeStructs instead of arrays (no memory, no compute)."""
    return nnx.eval_shape(lambda: Gemma3(config, rngs=nnx.Rngs(0)))


def build(config: Gemma3Config, dtype: str | None = None, rngs: nnx.Rngs | None = None, **options) -> Gemma3:
    """A randomly initialised model (`options`: remat_policy, attention_impl, fusion flags)."""
    return Gemma3(with_dtype(config, dtype, options), rngs=rngs if rngs is not None else nnx.Rngs(0))


def load_hf(hf_dir, dtype: str | None = None, shardings=None, *, strict: bool = True, report=None, **options) -> Gemma3:
    """Loads an HF Gemma 3 directory (config.json + safetensors), one tensor at a time;
    `shardings`, `strict` and `report` as `llama.params.load_hf`."""
    cfg = with_dtype(Gemma3Config.from_dir(hf_dir), dtype, options)
    model = abstract_model(cfg)
    ignore = list(_IGNORED)
    if cfg.tie_word_embeddings:
        ignore.append(r"lm_head\.weight")  # some tied checkpoints still store the copy
    result = load_state(
        model, hf_dir, name_rules(cfg), canonical=canonical_hf_name, ignore=ignore, shardings=shardings, strict=strict
    )
    if report is not None:
        report.loaded, report.skipped = result.loaded, result.skipped
    return model


def export_hf(model: Gemma3, out_dir, dtype: str | None = None, *, max_shard_bytes: int = 4 << 30):
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
