"""Gemma 3 language-model checkpoints (`Gemma3ForCausalLM`): the HF name table, loading an HF
directory straight into target shardings, and exporting one transformers loads."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx

from rmpl_jax.models.decoder import decoder_name_rules
from rmpl_jax.models.gemma3.config import Gemma3TextConfig
from rmpl_jax.models.gemma3.text_model import Gemma3Text, decoder_dims
from rmpl_jax.models.hf.names import NameRule
from rmpl_jax.models.hf.safetensors_io import export_state, load_state
from rmpl_jax.models.llama.model import with_dtype

# HF tensors some checkpoints hold that are not parameters here.
_IGNORED = (r".*rotary_emb\..*inv_freq", r".*embed_scale")


def name_rules(cfg: Gemma3TextConfig) -> list[NameRule]:
    """HF names (model.layers.N..., model.embed_tokens, model.norm, lm_head) <-> our leaves."""
    return decoder_name_rules(decoder_dims(cfg), cfg.tie_word_embeddings)


def abstract_model(config: Gemma3TextConfig) -> Gemma3Text:
    """The model with ShapeDtypeStructs instead of arrays (no memory, no compute)."""
    return nnx.eval_shape(lambda: Gemma3Text(config, rngs=nnx.Rngs(0)))


def build(config: Gemma3TextConfig, dtype: str | None = None, rngs: nnx.Rngs | None = None, **options) -> Gemma3Text:
    """A randomly initialised model (`options`: remat_policy, attention_impl, fusion flags)."""
    return Gemma3Text(with_dtype(config, dtype, options), rngs=rngs if rngs is not None else nnx.Rngs(0))


def load_hf(
    hf_dir, dtype: str | None = None, shardings=None, *, strict: bool = True, report=None, **options
) -> Gemma3Text:
    """Loads an HF Gemma 3 text directory (config.json + safetensors), one tensor at a time;
    `shardings`, `strict` and `report` as `llama.params.load_hf`."""
    cfg = with_dtype(Gemma3TextConfig.from_dir(hf_dir), dtype, options)
    model = abstract_model(cfg)
    ignore = list(_IGNORED)
    if cfg.tie_word_embeddings:
        ignore.append(r"lm_head\.weight")  # some tied checkpoints still store the copy
    result = load_state(model, hf_dir, name_rules(cfg), ignore=ignore, shardings=shardings, strict=strict)
    if report is not None:
        report.loaded, report.skipped = result.loaded, result.skipped
    return model


def export_hf(model: Gemma3Text, out_dir, dtype: str | None = None, *, max_shard_bytes: int = 4 << 30):
    """Writes safetensors (LoRA merged, cast to `dtype` if given) and config.json."""
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
